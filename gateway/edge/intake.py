"""Device deliveries into the hub's outbox: decode, file under the configured patient, commit, then ack.

A delivery is acknowledged to its device (RACP cursor, local PUBACK) only after the outbox
transaction holding its readings (or its local quarantine row) committed. When the outbox refuses
a batch (disk budget), nothing of it is acknowledged, and later values from the same Bluetooth
connection are refused too: acknowledging them would move the device's cursor past the refused
records, and a cursor never goes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from device_adapters.ble.decoder import SOURCE as BLE_SOURCE
from device_adapters.ble.session import stored_record_sequence
from device_adapters.errors import IdentityError, InputRejectedError, ReasonCode, StorageError
from device_adapters.mqtt.native import encode_reading
from device_adapters.readings import Delivery, RawFrame
from edge_config.hub_config import HubDeviceConfig
from gateway.edge.outbox import EdgeOutbox, Intake, LocalQuarantine, OutboxReading
from gateway.pipeline import FrameDecoder

logger = logging.getLogger(__name__)
BATCH_READINGS = 200
BATCH_WAIT_SECONDS = 0.02
RETRY_MAX_SECONDS = 10.0


@dataclass(slots=True)
class DeviceSeen:
    """What the heartbeat says about a device."""

    last_seen_at: datetime | None = None
    battery_percent: int | None = None


@dataclass(slots=True)
class _Refusals:
    by_device: dict[str, int] = field(default_factory=dict)
    """Device -> the Bluetooth connection number during which the outbox refused it."""


class EdgeIntake:
    def __init__(
        self,
        outbox: EdgeOutbox,
        decoders: Mapping[str, FrameDecoder],
        allowlist: Callable[[], Mapping[str, HubDeviceConfig]],
        connection_of: Callable[[str], int],
        *,
        queue_size: int = 2_000,
    ) -> None:
        self._outbox = outbox
        self._decoders = decoders
        self._allowlist = allowlist
        self._connection_of = connection_of
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(queue_size)
        self._refusals = _Refusals()
        self.devices: dict[str, DeviceSeen] = {}
        self.last_refusal: str | None = None

    async def submit(self, delivery: Delivery) -> None:
        await self._queue.put(delivery)

    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            await self._store(batch)

    async def _next_batch(self) -> list[Delivery]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + BATCH_WAIT_SECONDS
        while len(batch) < BATCH_READINGS and (remaining := deadline - time.monotonic()) > 0:
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _store(self, batch: Sequence[Delivery]) -> None:
        held = [delivery for delivery in batch if self._still_refused(delivery.frame)]
        taken = [delivery for delivery in batch if delivery not in held]
        if held:
            await self._outbox.count_refused(len(held))
            self._outbox_refused(held, "an earlier value of this connection was refused")
        if not taken:
            return
        intakes = [self._intake(delivery) for delivery in taken]
        backoff = 0.1
        while True:
            try:
                result = await self._outbox.commit(intakes)
                break
            except StorageError as exc:
                logger.error("edge outbox write failed (%s); retrying in %.1f s", exc, backoff)  # noqa: TRY400 - no traceback: the message says it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
        now = datetime.now(UTC)
        for delivery, intake in zip(taken[: result.accepted], intakes, strict=False):
            delivery.ack()
            for reading in intake.readings:
                self.devices.setdefault(reading.device_id, DeviceSeen()).last_seen_at = now
        refused = taken[result.accepted :]
        if refused:
            logger.error("EDGE OUTBOX FULL: refused %d value(s), left on their devices (%s)", len(refused), result.reason)
            self.last_refusal = result.reason
            self._outbox_refused(refused, result.reason or "outbox full")

    def _still_refused(self, frame: RawFrame) -> bool:
        if frame.source != BLE_SOURCE:
            return False
        device_id = frame.channel.partition("/")[0]
        refused_in = self._refusals.by_device.get(device_id)
        if refused_in is None:
            return False
        if refused_in != self._connection_of(device_id):
            del self._refusals.by_device[device_id]  # a new connection asks again from the committed cursor
            return False
        return True

    def _outbox_refused(self, deliveries: Sequence[Delivery], reason: str) -> None:
        for delivery in deliveries:
            if delivery.frame.source == BLE_SOURCE:
                device_id = delivery.frame.channel.partition("/")[0]
                self._refusals.by_device[device_id] = self._connection_of(device_id)
        logger.debug("not acknowledged: %d value(s) (%s)", len(deliveries), reason)

    def _intake(self, delivery: Delivery) -> Intake:
        frame = delivery.frame
        device_id: str | None = None
        try:
            decoder = self._decoders.get(frame.source)
            if decoder is None:
                raise IdentityError(ReasonCode.MALFORMED_FRAME, f"no decoder for frames from {frame.source!r}")
            device_id = decoder.device_id(frame)
            paired = self._allowlist().get(device_id)
            if paired is None:
                raise IdentityError(ReasonCode.UNPAIRED_DEVICE, f"device {device_id!r} is not paired with this hub")
            decoded = decoder.decode(frame, device_id)
        except InputRejectedError as exc:
            return Intake(quarantine=[LocalQuarantine(device_id, frame.channel, frame.payload, exc.reason.value, exc.detail)])
        quarantine = [
            LocalQuarantine(device_id, frame.channel, frame.payload, error.reason.value, f"item {index}: {error.detail}")
            for index, error in decoded.rejections
        ]
        readings: list[OutboxReading] = []
        for reading in decoded.readings:
            body = encode_reading(reading)
            readings.append(
                OutboxReading(device_id, paired.patient_id or "", reading.kind, reading.time, body, reading.device_time)
            )
            if reading.kind == "battery_level" and reading.quantity is not None:
                self.devices.setdefault(device_id, DeviceSeen()).battery_percent = int(reading.quantity.value)
        sequence = _sequence(frame)
        return Intake(readings, {} if sequence is None else {device_id: sequence}, quarantine)


def _sequence(frame: RawFrame) -> int | None:
    if frame.source != BLE_SOURCE:
        return None
    uuid_text = frame.channel.partition("/")[2]
    try:
        uuid16 = int(uuid_text, 16)
    except ValueError:
        return None
    return stored_record_sequence(uuid16, frame.payload)
