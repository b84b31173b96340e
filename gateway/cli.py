"""The ``pulsebridge`` command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

from device_adapters.errors import PulseBridgeError
from device_adapters.readings import DEVICE_ID_PATTERN
from edge_config import GatewaySettings, load_settings
from gateway import __version__
from gateway.access_cli import ACCESS_COMMANDS, add_access_commands, run_access
from gateway.auth.tokens import Role
from gateway.cli_support import UsageError, with_store
from gateway.cli_support import config_argument as _config_argument
from gateway.hub_cli import HUB_COMMANDS, add_hub_commands, run_hub_command
from gateway.outbox_cli import add_outbox_commands, run_outbox
from gateway.pipeline import mapper_for
from gateway.storage import ObservationStore

_PATIENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulsebridge", description="Personal health devices to FHIR: the PulseBridge gateway.")
    parser.add_argument("--version", action="version", version=f"pulsebridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway: MQTT ingest, storage and the FHIR API")
    _config_argument(serve)

    demo = commands.add_parser("demo", help="run everything in one process with an embedded broker, store and simulated devices")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    demo.add_argument("--patients", type=int, default=3, help="simulated patients, 1 to 3 (default 3)")
    demo.add_argument("--interval", type=float, default=1.0, help="seconds between simulated readings (default 1)")
    demo.add_argument("--data-dir", type=Path, help="keep the demo store here (default: a temporary folder)")
    demo.add_argument("--history-days", type=int, default=0, help="publish this many days of hourly readings first (default 0)")
    demo.add_argument("--password-stdin", action="store_true", help="read the demo accounts' dashboard password from stdin")

    check = commands.add_parser("check-config", help="validate the settings and say what is wrong")
    _config_argument(check)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    _config_argument(migrate)

    patients = commands.add_parser("patients", help="the patient registry").add_subparsers(dest="action", required=True)
    add_patient = patients.add_parser("add", help="register a patient; prints the patient id")
    add_patient.add_argument("--id", dest="patient_id", help="FHIR id (default: a new UUID)")
    add_patient.add_argument("--name", help="display name")
    add_patient.add_argument("--mrn", help="medical record number")
    _config_argument(add_patient)
    _config_argument(patients.add_parser("list", help="list patients"))
    identifier = patients.add_parser(
        "identifier", help="record an identifier an EHR knows the patient by (how pushes name the EHR's Patient)"
    )
    identifier.add_argument("patient_id")
    identifier.add_argument("system", help="the identifier's system URI, e.g. the EHR's MRN system (urn:oid:…)")
    identifier.add_argument("value")
    _config_argument(identifier)

    devices = commands.add_parser("devices", help="the device registry").add_subparsers(dest="action", required=True)
    add_device = devices.add_parser("add", help="register a device by its own id (the MQTT topic's device id)")
    add_device.add_argument("device_id")
    add_device.add_argument("--kind", help="what it is: watch, cuff, scale, thermometer, oximeter…")
    add_device.add_argument("--name", help="display name")
    _config_argument(add_device)
    _config_argument(devices.add_parser("list", help="list devices"))
    assign = devices.add_parser("assign", help="attribute a device's readings to a patient")
    assign.add_argument("device_id")
    assign.add_argument("patient_id")
    assign.add_argument(
        "--from",
        dest="valid_from",
        help="RFC 3339 time the assignment starts (default: the device's first assignment covers all its readings; "
        "a reassignment starts now)",
    )
    _config_argument(assign)

    _add_tools(commands)
    add_access_commands(commands)
    add_hub_commands(commands)
    return parser


def _add_tools(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The decode, ble, mqtt and quarantine commands."""
    mqtt = commands.add_parser("mqtt", help="the MQTT broker").add_subparsers(dest="action", required=True)
    credentials = mqtt.add_parser("credentials", help="Mosquitto password file and ACL for every registered device")
    credentials.add_argument("--out", type=Path, required=True, help="folder for passwd, acl, credentials.txt, mosquitto.conf")
    credentials.add_argument("--gateway-user", action="append", default=[], help="gateway user (repeat for several processes)")
    _config_argument(credentials)
    decode = commands.add_parser("decode", help="show what PulseBridge reads in a device payload").add_subparsers(
        dest="action", required=True
    )
    gatt = decode.add_parser("gatt", help="Bluetooth GATT bytes -> FHIR Observations (or the decoded value)")
    gatt.add_argument("uuid", nargs="?", help="characteristic UUID: 2A35 or the 128-bit form")
    gatt.add_argument("hex", nargs="?", help="the value as hex octets, spaces allowed")
    gatt.add_argument("--jsonl", action="store_true", help='read {"id", "uuid", "hex"} lines from standard input')
    gatt.add_argument("--patient", help="patient id for the Observations (default: a placeholder)")
    gatt.add_argument("--device", help="device id for the Observations (default: a placeholder)")

    mqtt_decode = decode.add_parser("mqtt", help="an MQTT payload -> readings -> FHIR Observations (the mapping debugger)")
    mqtt_decode.add_argument("payload", nargs="?", help="the payload (JSON text)")
    mqtt_decode.add_argument("--format", dest="payload_format", help="native, senml, theengs or a template name")
    mqtt_decode.add_argument("--topic", help="the topic it was published on (templates read the device from it)")
    mqtt_decode.add_argument("--templates", type=Path, help="mapping templates file")
    mqtt_decode.add_argument(
        "--jsonl", action="store_true", help='read {"id", "format", "payload", "topic"} lines from standard input'
    )
    mqtt_decode.add_argument("--patient", help="patient id for the Observations (default: a placeholder)")
    mqtt_decode.add_argument("--device", help="device id (default: a placeholder)")

    ble = commands.add_parser("ble", help="Bluetooth LE (needs a radio)").add_subparsers(dest="action", required=True)
    scan = ble.add_parser("scan", help="list nearby health devices")
    scan.add_argument("--seconds", type=float, default=10.0)
    pair = ble.add_parser("pair", help="bond with a device")
    pair.add_argument("address")

    quarantine = commands.add_parser("quarantine", help="inputs that could not be stored").add_subparsers(
        dest="action", required=True
    )
    list_quarantine = quarantine.add_parser("list", help="the most recent quarantine rows")
    list_quarantine.add_argument("--limit", type=int, default=20)
    list_quarantine.add_argument("--reason", help="only rows with this reason code")
    _config_argument(list_quarantine)
    show_quarantine = quarantine.add_parser("show", help="one row with its raw payload")
    show_quarantine.add_argument("row_id", type=int)
    _config_argument(show_quarantine)
    replay_quarantine = quarantine.add_parser("replay", help="run quarantined inputs through the pipeline again (after a fix)")
    replay_quarantine.add_argument("row_ids", type=int, nargs="*", help="row ids (default: every row with --reason)")
    replay_quarantine.add_argument("--reason", help="replay every row with this reason code")
    _config_argument(replay_quarantine)

    maintenance = commands.add_parser("maintenance", help="hourly rollups and raw retention").add_subparsers(
        dest="action", required=True
    )
    _config_argument(maintenance.add_parser("run", help="run one pass now: refresh rollups, then apply retention"))

    add_outbox_commands(commands)

    token = commands.add_parser("token", help="bearer tokens for the API").add_subparsers(dest="action", required=True)
    issue = token.add_parser("issue", help="print a token signed with the gateway's key (auth.signing_key_file)")
    issue.add_argument("subject", help="who the token is for: an account id, or a backend client's name")
    issue.add_argument("--role", required=True, choices=[role.value for role in Role])
    issue.add_argument("--scope", required=True, help='SMART scopes, e.g. "user/Observation.rs user/Patient.rs"')
    issue.add_argument("--patient", help="the patient in context (a patient's own id)")
    issue.add_argument("--minutes", type=int, default=60, help="lifetime (at most 60)")
    _config_argument(issue)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "outbox":
            run_outbox(args)
        elif args.command in HUB_COMMANDS:
            run_hub_command(args)
        else:
            (run_access if args.command in ACCESS_COMMANDS else _dispatch)(args)
    except PulseBridgeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


def _fail(message: str) -> NoReturn:
    print(f"pulsebridge: error: {message}", file=sys.stderr)
    sys.exit(2)


def _demo(args: argparse.Namespace) -> None:
    from gateway.demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = DemoOptions(history_days=max(0, min(args.history_days, 90)))
    if args.password_stdin:
        options = DemoOptions(sys.stdin.readline().strip(), options.history_days)
    asyncio.run(run_demo(args.port, args.data_dir, args.patients, args.interval, options))


def _dispatch(args: argparse.Namespace) -> None:
    match args.command:
        case "serve":
            _serve(load_settings(args.config))
        case "demo":
            _demo(args)
        case "check-config":
            settings = load_settings(args.config)
            mapper_for(settings)  # plausibility overrides name catalogue kinds: checked here too
            from gateway.maintenance import check_retention

            check_retention(settings.maintenance)
            from gateway.alerts.service import check_alert_settings

            check_alert_settings(settings.alerts)
            if settings.mqtt.templates_file is not None:
                from edge_config.mapping_templates import load_templates

                load_templates(settings.mqtt.templates_file)
            store_kind = settings.database.url.split("://", 1)[0]
            print(f"configuration OK: database {store_kind}, broker {settings.mqtt.host}:{settings.mqtt.port}")
        case "migrate":
            with_store(load_settings(args.config), lambda store: store.migrate())
            print("migrations applied")
        case "patients" | "devices" | "quarantine" | "mqtt" | "maintenance" | "token":
            _registry(args)
        case "decode":
            if args.action == "gatt":
                from gateway.decode_cli import run_decode_gatt

                run_decode_gatt(args.uuid, args.hex, jsonl=args.jsonl, patient=args.patient, device=args.device)
            else:
                from gateway.decode_mqtt import run_decode_mqtt

                run_decode_mqtt(args.payload_format, args.payload, jsonl=args.jsonl, topic=args.topic, templates=args.templates,
                                patient=args.patient, device=args.device)  # fmt: skip
        case "ble":
            from gateway.ble_cli import run_ble

            asyncio.run(run_ble(args))


def _serve(settings: GatewaySettings) -> None:
    mapper_for(settings)  # fail fast on plausibility overrides naming unknown kinds
    from gateway.maintenance import check_retention

    check_retention(settings.maintenance)
    from gateway.alerts.service import check_alert_settings

    check_alert_settings(settings.alerts)
    if settings.mqtt.templates_file is not None:
        from edge_config.mapping_templates import load_templates

        load_templates(settings.mqtt.templates_file)  # a mistake is a one-line error with its line number
    import uvicorn

    from gateway.app import create_app

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Migrate before the server starts: an unreachable database is a one-line error, not a traceback.
    with_store(settings, lambda store: store.migrate())
    app = create_app(settings, migrate=False)
    _tune_collector()
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, log_level=settings.log_level.lower(), lifespan="on")


def _tune_collector() -> None:
    """Make the cyclic garbage collector cheap under ingest.

    Every reading allocates a dozen short-lived objects that reference counting frees; with the
    default threshold (700) the collector still runs every few readings and, now and then,
    walks every object the process holds. Freezing what start-up loaded takes it out of those
    walks, and a larger first threshold runs the collector a hundredth as often: decode and
    mapping of packs of 100 run about 30 % faster, for a few MB more garbage held at a time.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _add_patient(settings: GatewaySettings, args: argparse.Namespace) -> None:
    patient_id = args.patient_id or str(uuid.uuid4())
    if not _PATIENT_ID.fullmatch(patient_id):
        raise UsageError(f"patient id {patient_id!r}: use 1 to 64 letters, digits, '-' or '.'")
    with_store(settings, lambda store: store.add_patient(patient_id, args.name, args.mrn))
    print(patient_id)


def _add_patient_identifier(settings: GatewaySettings, args: argparse.Namespace) -> None:
    if not args.system.strip() or not args.value.strip():
        raise UsageError("an identifier needs a non-empty system and value")
    with_store(settings, lambda store: store.add_patient_identifier(args.patient_id, args.system, args.value))
    print(f"{args.patient_id}\t{args.system}|{args.value}")


def _list_patients(settings: GatewaySettings, _: argparse.Namespace) -> None:
    for patient in with_store(settings, lambda store: store.list_patients()):
        print(f"{patient.id}\t{patient.name or ''}\t{patient.mrn or ''}")


def _add_device(settings: GatewaySettings, args: argparse.Namespace) -> None:
    if not DEVICE_ID_PATTERN.fullmatch(args.device_id):
        raise UsageError(f"device id {args.device_id!r}: use 1 to 64 letters, digits, '.', '_', ':' or '-'")
    device = with_store(settings, lambda store: store.add_device(args.device_id, args.kind, args.name))
    print(f"{device.device_id}\tDevice/{device.resource_id}")


def _list_devices(settings: GatewaySettings, _: argparse.Namespace) -> None:
    for device in with_store(settings, lambda store: store.list_devices()):
        print(f"{device.device_id}\tDevice/{device.resource_id}\t{device.kind or ''}\t{device.display_name or ''}")


def _assign_device(settings: GatewaySettings, args: argparse.Namespace) -> None:
    valid_from = _aware_time(args.valid_from) if args.valid_from else None
    assignment = with_store(settings, lambda store: store.assign_device(args.device_id, args.patient_id, valid_from))
    since = assignment.valid_from.isoformat() if assignment.valid_from else "its first reading"
    print(f"{assignment.device_id} -> Patient/{assignment.patient_id} from {since}")


def _list_quarantine(settings: GatewaySettings, args: argparse.Namespace) -> None:
    for row in with_store(settings, lambda store: store.list_quarantine(args.limit, args.reason)):
        print(f"{row.last_seen.isoformat()}\t{row.reason}\t{row.stage}\t{row.channel}\tx{row.seen_count}\t{row.detail}")


def _show_quarantine(settings: GatewaySettings, args: argparse.Namespace) -> None:
    row = with_store(settings, lambda store: store.get_quarantine(args.row_id))
    if row is None:
        raise UsageError(f"no quarantine row {args.row_id}")
    try:
        payload = row.payload.decode("utf-8")
    except UnicodeDecodeError:
        payload = f"(not UTF-8) {row.payload.hex(' ')}"
    fields = [
        ("id", row.id), ("reason", row.reason), ("stage", row.stage), ("detail", row.detail), ("source", row.source),
        ("channel", row.channel), ("device", row.device_id or ""), ("item", "" if row.item_index is None else row.item_index),
        ("seen", row.seen_count), ("first seen", row.first_seen.isoformat()), ("last seen", row.last_seen.isoformat()),
        ("payload", payload),
    ]  # fmt: skip
    print("\n".join(f"{name}: {value}" for name, value in fields))


def _mqtt_credentials(settings: GatewaySettings, args: argparse.Namespace) -> None:
    from gateway.mqtt_credentials import build_credentials, write_credentials

    devices = with_store(settings, lambda store: store.list_devices())
    hubs = [hub.hub_id for hub in with_store(settings, lambda store: store.list_hubs())]
    gateway_users = args.gateway_user or [settings.mqtt.username or "pulsebridge-gateway"]
    written = write_credentials(build_credentials([device.device_id for device in devices], gateway_users, hubs), args.out)
    print(f"{len(devices)} device(s), {len(hubs)} hub(s), {len(gateway_users)} gateway user(s): {', '.join(map(str, written))}")
    print("passwords are in credentials.txt (owner-only): hand each device its own, then delete the file")


def _replay_quarantine(settings: GatewaySettings, args: argparse.Namespace) -> None:
    from device_adapters.ble.context import ClockBook
    from gateway.pipeline import IngestPipeline, decoders_for, mapper_for
    from gateway.quarantine import ReplayOutcome, replay

    if not args.row_ids and not args.reason:
        raise UsageError("name row ids, or --reason to replay every row with that reason")

    async def work(store: ObservationStore) -> list[ReplayOutcome]:
        pipeline = IngestPipeline(
            store, settings.ingest, mapper_for(settings), decoders_for(settings, ClockBook()), destinations=settings.destinations
        )
        rows = (
            [await store.get_quarantine(row_id) for row_id in args.row_ids]
            if args.row_ids
            else await store.list_quarantine(10_000, args.reason)
        )
        missing = [row_id for row_id, row in zip(args.row_ids, rows, strict=False) if row is None]
        if missing:
            raise UsageError(f"no quarantine row {', '.join(map(str, missing))}")
        return [await replay(store, pipeline, row) for row in rows if row is not None]

    for outcome in with_store(settings, work):
        still = f", still refused: {', '.join(outcome.still_quarantined)}" if outcome.still_quarantined else ""
        print(f"row {outcome.row_id}: stored {outcome.stored}, duplicates {outcome.duplicates}{still}")


def _run_maintenance(settings: GatewaySettings, _: argparse.Namespace) -> None:
    from gateway.maintenance import run_once

    report = with_store(settings, lambda store: run_once(store, settings.maintenance))
    if not report.ran:
        print("another gateway process is running maintenance: nothing done")
        return
    print(
        f"rollup buckets refreshed {report.buckets_refreshed}, raw rows deleted {report.rows_deleted}, "
        f"chunks dropped {report.chunks_dropped}"
    )


def _issue_token(settings: GatewaySettings, args: argparse.Namespace) -> None:
    from gateway.auth.tokens import LocalIssuer

    if settings.auth.signing_key_file is None:
        raise UsageError("auth.signing_key_file is not set: the gateway's key is in its memory, so no token can be made here")
    issuer = LocalIssuer.from_key_file(settings.auth.issuer, settings.auth.audience, settings.auth.signing_key_file)
    lifetime = timedelta(minutes=args.minutes)
    print(issuer.issue(args.subject, Role(args.role), args.scope, patient_id=args.patient, lifetime=lifetime))


_REGISTRY_COMMANDS: dict[tuple[str, str], Callable[[GatewaySettings, argparse.Namespace], None]] = {
    ("patients", "add"): _add_patient,
    ("patients", "identifier"): _add_patient_identifier,
    ("patients", "list"): _list_patients,
    ("devices", "add"): _add_device,
    ("devices", "list"): _list_devices,
    ("devices", "assign"): _assign_device,
    ("quarantine", "list"): _list_quarantine,
    ("quarantine", "show"): _show_quarantine,
    ("quarantine", "replay"): _replay_quarantine,
    ("mqtt", "credentials"): _mqtt_credentials,
    ("maintenance", "run"): _run_maintenance,
    ("token", "issue"): _issue_token,
}


def _registry(args: argparse.Namespace) -> None:
    _REGISTRY_COMMANDS[args.command, args.action](load_settings(args.config), args)


def _aware_time(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--from {text!r} is not an RFC 3339 time") from exc
    if instant.tzinfo is None:
        raise UsageError(f"--from {text!r} needs a UTC offset (Z or ±hh:mm)")
    return instant
