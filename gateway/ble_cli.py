"""``pulsebridge ble scan`` and ``ble pair``: for machines with a Bluetooth radio."""

from __future__ import annotations

import argparse

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from device_adapters.ble.session import sig_uuid
from device_adapters.errors import PulseBridgeError

HEALTH_SERVICES = (0x180D, 0x1810, 0x1809, 0x181D, 0x181B, 0x1822, 0x1808, 0x181F)


class BluetoothUnavailableError(PulseBridgeError):
    """No usable Bluetooth adapter, or the device could not be reached."""


async def run_ble(args: argparse.Namespace) -> None:
    try:
        if args.action == "scan":
            found = await BleakScanner.discover(timeout=args.seconds, service_uuids=[sig_uuid(uuid) for uuid in HEALTH_SERVICES])
            for device in found:
                print(f"{device.address}\t{device.name or ''}")
        else:
            async with BleakClient(args.address) as client:
                await client.pair()
                print(f"paired with {args.address}")
    except (BleakError, OSError, TimeoutError) as exc:
        raise BluetoothUnavailableError(f"Bluetooth: {exc}".replace("\n", " ")) from exc
