"""A fake glucose meter with stored records (RACP), in-process or inside a hub process.

In-process tests construct :class:`GlucoseMeter` directly. A ``pulsebridge edge`` process reaches
meters through ``edge.ble_backend: tests.fake_glucose:FileMeterBackend``: the real ``BleakClient``
over a backend whose meters are described by the JSON file named in ``PULSEBRIDGE_TEST_METERS``
(``{address: {"count": N, "delay": seconds}}``), read again at every connection, so a test can
make a meter hold more records while the hub runs.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bleak.backends.device import BLEDevice

from tests.fake_ble import PERIPHERALS, FakeBleakBackend, FakePeripheral

GLUCOSE = 0x1808
METERS_ENV = "PULSEBRIDGE_TEST_METERS"
FIRST_RECORD = datetime(2024, 3, 14, 0, 0)  # noqa: DTZ001 - a BLE device clock has no zone
METER_CLOCK = bytes.fromhex("E8 07 03 0F 12 00 00 05 00 00")  # Current Time 2024-03-15 18:00:00, after every record


class GlucoseMeter(FakePeripheral):
    """Keeps ``count`` stored records; answers RACP report requests; can lose the link mid-transfer."""

    def __init__(
        self, address: str, count: int, drop_after: int | None, *, delay: float = 0.0, first: datetime | None = None
    ) -> None:
        super().__init__(address, GLUCOSE, {0x2A18: ["notify"], 0x2A52: ["write", "indicate"], 0x2A29: ["read"], 0x2A2B: ["read"]},
                         {0x2A29: b"Acme Health", 0x2A2B: METER_CLOCK})  # fmt: skip
        self.count = count
        self.drop_after = drop_after
        self.delay = delay
        self.first = first or datetime(2024, 3, 15, 7, 45)  # noqa: DTZ001 - a BLE device clock has no zone
        self.requests: list[bytes] = []
        self.sent = 0

    def record(self, sequence: int) -> bytes:
        taken = self.first + timedelta(minutes=sequence)
        stamp = taken.year.to_bytes(2, "little") + bytes([taken.month, taken.day, taken.hour, taken.minute, taken.second])
        return b"\x02" + sequence.to_bytes(2, "little") + stamp + bytes.fromhex("5F B0 11")  # 95 mg/dL, capillary, finger

    async def on_write(self, uuid16: int, data: bytes) -> None:
        await super().on_write(uuid16, data)
        if uuid16 == 0x2A52:
            self.requests.append(data)
            start = 1 if data == b"\x01\x01" else int.from_bytes(data[3:5], "little")
            asyncio.get_running_loop().create_task(self._transfer(start))

    async def _transfer(self, start: int) -> None:
        for sent_now, sequence in enumerate(range(start, self.count + 1)):
            if self.drop_after is not None and sent_now == self.drop_after:
                self.drop_after = None  # loses the link once
                self.drop_link()
                return
            if not self.connected:
                return
            self.notify(0x2A18, self.record(sequence))
            self.sent += 1
            await asyncio.sleep(self.delay)
        self.notify(0x2A52, b"\x06\x00\x01\x01")


def write_meters(path: Path, meters: dict[str, dict[str, float]]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(meters))
    temporary.replace(path)  # the hub never reads half a file


class FileMeterBackend(FakeBleakBackend):
    """Meters described by the ``PULSEBRIDGE_TEST_METERS`` file, records from 2024-03-14 00:00 a minute apart."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        address = address_or_ble_device if isinstance(address_or_ble_device, str) else address_or_ble_device.address
        spec = orjson.loads(Path(os.environ[METERS_ENV]).read_bytes()).get(address)
        meter = PERIPHERALS.get(address)
        if spec is not None:
            if not isinstance(meter, GlucoseMeter):
                meter = GlucoseMeter(address, 0, None, first=FIRST_RECORD)
            meter.count, meter.delay = int(spec["count"]), float(spec["delay"])
        super().__init__(address_or_ble_device, **kwargs)
