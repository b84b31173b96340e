"""Connecting to real devices: find the device, then connect through bleak-retry-connector."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from device_adapters.ble.session import PairedDevice
from device_adapters.errors import ConfigError

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


def connect_with_backend(backend: str) -> Callable[[PairedDevice, Callable[[], None]], Awaitable[BleakClient]]:
    """A connector through a named bleak client backend (``module:Class``) instead of the platform's own."""
    module_name, _, class_name = backend.partition(":")
    try:
        backend_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ble backend {backend!r} cannot be loaded: {exc}") from exc

    async def connect(device: PairedDevice, disconnected: Callable[[], None]) -> BleakClient:
        client = BleakClient(device.address, lambda _: disconnected(), backend=backend_class)
        await client.connect()
        return client

    return connect
