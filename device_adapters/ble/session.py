"""The bleak session manager: paired devices connected, their values delivered, stored records downloaded.

One task per paired device keeps it connected (reconnecting with back-off), reads Device
Information, compares the device clock with the gateway's (Current Time; set it when
configured), subscribes to every measurement characteristic the device has, and downloads
stored records through the Record Access Control Point: only records after the last sequence
number whose reading the database has committed. That cursor moves in the delivery's ``ack``,
which the pipeline calls after the commit, so a transfer cut by a disconnect resumes where the
committed data ends and nothing is lost or stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from bleak import BleakClient
from bleak.exc import BleakError

from device_adapters.ble.clock import device_timezone, encode_current_time, parse_current_time, parse_local_time_information
from device_adapters.ble.context import ClockBook, DeviceClock
from device_adapters.ble.decoder import SOURCE, channel_for
from device_adapters.ble.octets import GattParseError
from device_adapters.ble.racp import (
    RacpResponse,
    RacpResponseCode,
    parse_record_access_control_point,
    report_all_records,
    report_records_from,
)
from device_adapters.ble.registry import CHARACTERISTICS
from device_adapters.readings import Delivery, RawFrame

logger = logging.getLogger(__name__)

GLUCOSE_MEASUREMENT = 0x2A18
RECORD_ACCESS_CONTROL_POINT = 0x2A52
CURRENT_TIME = 0x2A2B
DEVICE_INFORMATION = {0x2A29: "manufacturer", 0x2A24: "model", 0x2A25: "serial_number", 0x2A26: "firmware"}
MEASUREMENTS = frozenset(uuid for uuid, characteristic in CHARACTERISTICS.items() if characteristic.to_readings is not None)
LOCAL_TIME_INFORMATION = 0x2A0F
BATTERY_LEVEL = 0x2A19
_SEQUENCE_END = 3  # flags octet, then the uint16 sequence number


def sig_uuid(uuid16: int) -> str:
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


def short_uuid(uuid: str) -> int | None:
    lowered = uuid.lower()
    if lowered.startswith("0000") and lowered.endswith("-0000-1000-8000-00805f9b34fb"):
        return int(lowered[4:8], 16)
    return None


@dataclass(frozen=True, slots=True)
class PairedDevice:
    device_id: str
    address: str


class CursorStore(Protocol):
    """The last stored-record sequence number committed per device."""

    def last(self, device_id: str) -> int | None: ...

    def advance(self, device_id: str, sequence: int) -> None: ...


@dataclass
class MemoryCursors:
    cursors: dict[str, int] = field(default_factory=dict)

    def last(self, device_id: str) -> int | None:
        return self.cursors.get(device_id)

    def advance(self, device_id: str, sequence: int) -> None:
        if sequence > self.cursors.get(device_id, -1):
            self.cursors[device_id] = sequence


Connector = Callable[[PairedDevice, Callable[[], None]], Awaitable[BleakClient]]
"""Connect one device, calling the callback when the link drops; returns the connected client."""


def stored_record_sequence(uuid16: int, payload: bytes) -> int | None:
    """The sequence number of a Glucose Measurement (the RACP cursor's unit); None for other values."""
    if uuid16 == GLUCOSE_MEASUREMENT and len(payload) >= _SEQUENCE_END:
        return int.from_bytes(payload[1:_SEQUENCE_END], "little")
    return None


def racp_request_after(cursor: int | None) -> bytes:
    """Report the stored records after ``cursor`` (all of them when nothing was committed yet)."""
    return report_all_records() if cursor is None else report_records_from(min(cursor + 1, 0xFFFF))


class BleSessionManager:
    """Async iterator over :class:`Delivery` values from every paired device."""

    def __init__(
        self,
        devices: Sequence[PairedDevice],
        connect: Connector,
        clocks: ClockBook,
        cursors: CursorStore,
        *,
        queue_size: int = 2_000,
        set_clock: bool = False,
        transfer_timeout: float = 120.0,
        reconnect_max_seconds: float = 30.0,
        on_device_information: Callable[[str, dict[str, str]], Awaitable[None]] | None = None,
    ) -> None:
        self._devices = tuple(devices)
        self._connect = connect
        self._clocks = clocks
        self._cursors = cursors
        self._queue_size = queue_size
        self._set_clock = set_clock
        self._transfer_timeout = transfer_timeout
        self._reconnect_max = reconnect_max_seconds
        self._on_device_information = on_device_information
        self.device_information: dict[str, dict[str, str]] = {}
        self.connections: dict[str, int] = {}

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        queue: asyncio.Queue[Delivery] = asyncio.Queue(self._queue_size)
        tasks = [
            asyncio.create_task(self._keep_connected(device, queue), name=f"ble-{device.device_id}") for device in self._devices
        ]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keep_connected(self, device: PairedDevice, queue: asyncio.Queue[Delivery]) -> None:
        backoff = 0.5
        while True:
            link_lost = asyncio.Event()
            try:
                client = await self._connect(device, link_lost.set)
            except (BleakError, TimeoutError, OSError) as exc:
                logger.info("ble %s: connection failed (%s); retrying in %.1f s", device.device_id, exc, backoff)
            else:
                self.connections[device.device_id] = self.connections.get(device.device_id, 0) + 1
                try:
                    await self._session(device, client, link_lost, queue)
                    backoff = 0.5
                except (BleakError, TimeoutError, OSError, GattParseError) as exc:
                    logger.info("ble %s: session ended (%s)", device.device_id, exc)
                finally:
                    with contextlib.suppress(BleakError, OSError, TimeoutError):
                        await client.disconnect()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._reconnect_max)

    async def _session(
        self, device: PairedDevice, client: BleakClient, link_lost: asyncio.Event, queue: asyncio.Queue[Delivery]
    ) -> None:
        available = {
            uuid for service in client.services for c in service.characteristics if (uuid := short_uuid(c.uuid)) is not None
        }
        await self._read_device_information(device, client, available)
        await self._compare_clocks(device, client, available)
        overflow = asyncio.Event()
        if BATTERY_LEVEL in available:  # read once at connection; devices that notify it send more later
            self._on_value(device, BATTERY_LEVEL, queue, overflow, None, await client.read_gatt_char(sig_uuid(BATTERY_LEVEL)))
        for uuid in sorted(available & MEASUREMENTS):
            await client.start_notify(sig_uuid(uuid), functools.partial(self._on_value, device, uuid, queue, overflow))
        if RECORD_ACCESS_CONTROL_POINT in available and GLUCOSE_MEASUREMENT in available:
            done = await self._download(device, client, link_lost, overflow)
            if done and not (available & MEASUREMENTS) - {GLUCOSE_MEASUREMENT}:
                return  # a meter that only has stored records: hang up once they are in
        await _first(link_lost, overflow)

    async def _read_device_information(self, device: PairedDevice, client: BleakClient, available: set[int]) -> None:
        information: dict[str, str] = {}
        for uuid, name in DEVICE_INFORMATION.items():
            if uuid in available:
                information[name] = (
                    bytes(await client.read_gatt_char(sig_uuid(uuid))).decode("utf-8", errors="replace").strip("\x00 ")
                )
        self.device_information[device.device_id] = information
        if information and self._on_device_information is not None:
            await self._on_device_information(device.device_id, information)

    async def _compare_clocks(self, device: PairedDevice, client: BleakClient, available: set[int]) -> None:
        """Coincident time stamp: the device clock read at a known gateway time, in the device's zone."""
        zone: tzinfo = self._clocks.get(device.device_id).zone
        if LOCAL_TIME_INFORMATION in available:
            local = parse_local_time_information(bytes(await client.read_gatt_char(sig_uuid(LOCAL_TIME_INFORMATION))))
            zone = device_timezone(local) or zone
        if CURRENT_TIME not in available:
            self._clocks.set(device.device_id, DeviceClock(zone=zone))
            return
        if self._set_clock:
            await client.write_gatt_char(
                sig_uuid(CURRENT_TIME), encode_current_time(datetime.now(UTC).astimezone(zone)), response=True
            )
        current = parse_current_time(bytes(await client.read_gatt_char(sig_uuid(CURRENT_TIME))))
        gateway_now = datetime.now(UTC)
        device_now = current.naive()
        self._clocks.set(device.device_id, DeviceClock(device_now, gateway_now if device_now else None, zone))

    async def _download(
        self, device: PairedDevice, client: BleakClient, link_lost: asyncio.Event, overflow: asyncio.Event
    ) -> bool:
        """Stored records after the committed cursor; True when the device said the transfer is complete."""
        finished = asyncio.Event()
        outcome: list[RacpResponse] = []

        def on_racp(_: object, data: bytearray) -> None:
            try:
                value = parse_record_access_control_point(bytes(data))
            except GattParseError as exc:
                logger.warning("ble %s: %s", device.device_id, exc)
                return
            if isinstance(value, RacpResponse):
                outcome.append(value)
                finished.set()

        await client.start_notify(sig_uuid(RECORD_ACCESS_CONTROL_POINT), on_racp)
        cursor = self._cursors.last(device.device_id)
        await client.write_gatt_char(sig_uuid(RECORD_ACCESS_CONTROL_POINT), racp_request_after(cursor), response=True)
        async with asyncio.timeout(self._transfer_timeout):
            await _first(finished, link_lost, overflow)
        if not finished.is_set():
            return False
        if outcome[0].response_code not in {RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND}:
            logger.warning(
                "ble %s: stored-record transfer refused (response code %d)", device.device_id, outcome[0].response_code_raw
            )
        return True

    def _on_value(
        self, device: PairedDevice, uuid: int, queue: asyncio.Queue[Delivery], overflow: asyncio.Event, _: object, data: bytearray
    ) -> None:
        payload = bytes(data)
        frame = RawFrame(SOURCE, channel_for(device.device_id, uuid), payload, datetime.now(UTC))
        sequence = stored_record_sequence(uuid, payload)
        try:
            queue.put_nowait(Delivery(frame, functools.partial(self._committed, device.device_id, sequence)))
        except asyncio.QueueFull:
            # A notification cannot wait; hang up instead, and the stored records after the
            # committed cursor come again on the next connection.
            logger.warning("ble %s: ingest queue full; disconnecting to resume from the cursor", device.device_id)
            overflow.set()

    def _committed(self, device_id: str, sequence: int | None) -> None:
        if sequence is not None:
            self._cursors.advance(device_id, sequence)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
