"""Connecting to real devices: find the device, then connect through bleak-retry-connector."""

from __future__ import annotations

from collections.abc import Callable

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from device_adapters.ble.session import PairedDevice

FIND_TIMEOUT_SECONDS = 20.0
CONNECT_ATTEMPTS = 3


async def connect_with_retries(device: PairedDevice, disconnected: Callable[[], None]) -> BleakClient:
    """The session manager's connector on a host with a radio (not exercised in CI: no radio there)."""
    found = await BleakScanner.find_device_by_address(device.address, timeout=FIND_TIMEOUT_SECONDS)
    if found is None:
        raise BleakError(f"{device.device_id} ({device.address}) is not advertising nearby")
    return await establish_connection(
        BleakClient, found, device.device_id, disconnected_callback=lambda _: disconnected(), max_attempts=CONNECT_ATTEMPTS
    )
