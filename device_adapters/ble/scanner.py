"""One shared scanner: advertisements of allow-listed devices become ``ble-adv`` frames.

BTHome sensors and many vendor devices never take a connection; they broadcast. Only addresses
on the allow-list (paired devices) are kept, so a neighbour's scale never enters the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from device_adapters.ble.advertisements import Advertisement, frame_of
from device_adapters.readings import Delivery

logger = logging.getLogger(__name__)

DetectionCallback = Callable[[BLEDevice, AdvertisementData], None]
ScannerFactory = Callable[[DetectionCallback], AbstractAsyncContextManager[object]]


def bleak_scanner(callback: DetectionCallback) -> AbstractAsyncContextManager[object]:
    return BleakScanner(detection_callback=callback)


def _no_ack() -> None:
    """Advertisements are broadcast: there is no one to acknowledge."""


class AdvertisementScanner:
    def __init__(self, devices: Mapping[str, str], scanner: ScannerFactory = bleak_scanner, *, queue_size: int = 2_000) -> None:
        self._devices = {address.upper(): device_id for address, device_id in devices.items()}
        self._scanner = scanner
        self._queue_size = queue_size

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        queue: asyncio.Queue[Delivery] = asyncio.Queue(self._queue_size)

        def seen(device: BLEDevice, data: AdvertisementData) -> None:
            device_id = self._devices.get(device.address.upper())
            if device_id is None:
                return
            advertisement = Advertisement(
                device.address,
                data.local_name,
                data.rssi,
                dict(data.service_data),
                dict(data.manufacturer_data),
                tuple(data.service_uuids),
            )
            try:
                queue.put_nowait(Delivery(frame_of(device_id, advertisement, datetime.now(UTC)), _no_ack))
            except asyncio.QueueFull:
                logger.warning("ble advertisements: queue full, dropping one from %s (it will advertise again)", device_id)

        async with self._scanner(seen):
            while True:
                yield await queue.get()
