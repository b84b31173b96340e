"""``pulsebridge edge`` (run a hub) and ``pulsebridge hubs pair|unpair|list`` (the gateway's side)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime, timedelta

from device_adapters.readings import DEVICE_ID_PATTERN
from edge_config import load_settings
from gateway.cli_support import UsageError, config_argument, with_store
from gateway.hub_link import hub_state
from gateway.storage import ObservationStore

HUB_COMMANDS = frozenset({"edge", "hubs"})


def add_hub_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = commands.add_parser("edge", help="run the edge hub: Bluetooth devices -> local outbox -> upstream broker")
    config_argument(edge)
    hubs = commands.add_parser("hubs", help="edge hubs and the devices paired with them").add_subparsers(
        dest="action", required=True
    )
    pair = hubs.add_parser("pair", help="pair a registered device with a hub (the hub gets it within seconds)")
    pair.add_argument("hub_id")
    pair.add_argument("device_id")
    pair.add_argument(
        "--address", required=True, help="the device's Bluetooth address, or `mqtt` for a Wi-Fi device on the hub's local broker"
    )
    config_argument(pair)
    unpair = hubs.add_parser("unpair", help="the hub stops connecting to the device; its readings via the hub are refused")
    unpair.add_argument("hub_id")
    unpair.add_argument("device_id")
    config_argument(unpair)
    config_argument(hubs.add_parser("list", help="hubs (online, silent, offline), their queues, alarms and devices"))


def run_hub_command(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    if args.command == "edge":
        from gateway.edge.agent import run_edge  # noqa: PLC0415 - the hub's stack loads only for the hub

        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(run_edge(settings))
        return
    for name in ("hub_id", "device_id"):
        value = getattr(args, name, None)
        if value is not None and not DEVICE_ID_PATTERN.fullmatch(value):
            raise UsageError(f"{name.replace('_', ' ')} {value!r}: use 1 to 64 letters, digits, '.', '_', ':' or '-'")
    if args.action == "pair":
        with_store(settings, lambda store: store.pair_hub_device(args.hub_id, args.device_id, args.address, datetime.now(UTC)))
        print(f"{args.device_id} paired with hub {args.hub_id}")
    elif args.action == "unpair":
        if not with_store(settings, lambda store: store.unpair_hub_device(args.hub_id, args.device_id)):
            raise UsageError(f"{args.device_id} is not paired with hub {args.hub_id}")
        print(f"{args.device_id} unpaired from hub {args.hub_id}")
    else:
        for line in with_store(settings, lambda store: _hub_lines(store, timedelta(seconds=settings.edge.silent_after_seconds))):
            print(line)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


async def _hub_lines(store: ObservationStore, silent_after: timedelta) -> list[str]:
    now = datetime.now(UTC)
    lines = []
    devices = await store.hub_devices()
    for hub in await store.list_hubs():
        lines.append(
            f"{hub.hub_id}\t{hub_state(hub, now, silent_after)}\tqueue {_dash(hub.queue_depth)}"
            f"\tskew {_dash(hub.clock_skew_seconds)} s\talarms {','.join(hub.alarms) or '-'}\tversion {_dash(hub.version)}"
        )
        for device in (d for d in devices if d.hub_id == hub.hub_id):
            heard = device.last_seen_at is not None and now - device.last_seen_at <= silent_after
            seen = device.last_seen_at.isoformat() if device.last_seen_at else "never"
            lines.append(
                f"  {device.device_id}\t{device.address}\t{'online' if heard else 'silent'}"
                f"\tbattery {_dash(device.battery_percent)}\tlast seen {seen}"
            )
    return lines
