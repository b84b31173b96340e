"""The ingest pipeline: frames in, observations and quarantine rows committed, sources acked.

One batch = one transaction. A frame is acknowledged to its source only after the transaction
holding its readings (or its quarantine rows) committed; a store that is down is retried with
capped back-off while the bounded queue fills and the broker stops sending (back-pressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from device_adapters.ble.advertisements import SOURCE as ADVERTISEMENT_SOURCE
from device_adapters.ble.advertisements import AdvertisementFrameDecoder, bind_key_from_hex
from device_adapters.ble.context import ClockBook
from device_adapters.ble.decoder import SOURCE as BLE_SOURCE
from device_adapters.ble.decoder import BleFrameDecoder
from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, ReasonCode, StorageError
from device_adapters.mqtt.hub_topics import (
    HUB_READINGS_SUBSCRIPTION,
    HUB_SENML_SUBSCRIPTION,
    HUB_STATUS_SUBSCRIPTIONS,
    hub_and_device,
    is_hub_topic,
)
from device_adapters.mqtt.native import (
    SENML_SUBSCRIPTION,
    SENML_SUFFIX,
    SUBSCRIPTION,
    TOPIC_SUFFIX,
    decode_payload,
    device_from_topic,
)
from device_adapters.mqtt.senml import decode_senml
from device_adapters.mqtt.templates import decode_with_template, template_for_topic
from device_adapters.mqtt.templates import device_from_topic as template_device
from device_adapters.mqtt.theengs_topic import TheengsMqttDecoder, is_theengs_topic, theengs_subscription
from device_adapters.readings import Delivery, FrameDecode, RawFrame, Reading
from edge_config import DestinationSettings, GatewaySettings, IngestSettings
from edge_config.mapping_templates import Template, TemplateSet
from fhir_mapper.devices import gateway_device_id
from fhir_mapper.observation import Attribution, MappedObservation, MapperContext, MappingInput, ObservationMapper
from fhir_mapper.plausibility import PlausibilityPolicy, RangeOverride
from gateway.events import EventBus, observation_events
from gateway.http_frames import SOURCE as HTTP_SOURCE
from gateway.http_frames import HttpFrameDecoder
from gateway.ingest_outcomes import (
    DecodedFrame,
    FrameReport,
    PreparedBatch,
    ReportingDelivery,
    quarantine_entry,
)
from gateway.metrics import IngestMetrics
from gateway.storage import ObservationStore, QuarantineEntry, WriteResult
from gateway.storage.outbox import OutboxEntry

logger = logging.getLogger(__name__)

# Decoding and mapping a batch of packs is CPU work of a second or more; the event loop gets a
# turn every this many readings, so the transactions in flight are fed meanwhile and the
# database is not left waiting for the gateway.
_READINGS_BETWEEN_YIELDS = 1_000


def plausibility_for(settings: GatewaySettings) -> PlausibilityPolicy:
    """The plausible ranges in force: the catalogue's, with the settings' overrides."""
    return PlausibilityPolicy(
        {key: RangeOverride(value.low, value.high, value.unit) for key, value in settings.plausibility.items()}
    )


def mapper_for(settings: GatewaySettings) -> ObservationMapper:
    """The mapper the settings describe: this gateway's Device and the plausible ranges in force."""
    return ObservationMapper(
        MapperContext(
            gateway_device_id=gateway_device_id(settings.gateway_name),
            future_tolerance=timedelta(seconds=settings.ingest.future_tolerance_seconds),
            plausibility=plausibility_for(settings),
        ),
    )


def decoders_for(settings: GatewaySettings, clocks: ClockBook, templates: TemplateSet | None = None) -> dict[str, FrameDecoder]:
    """A decoder per frame source: MQTT payload formats (by topic), Bluetooth GATT values and advertisements, HTTP posts."""
    bind_keys = {
        device.device_id: bind_key_from_hex(device.bind_key.get_secret_value())
        for device in settings.ble.devices
        if device.bind_key
    }
    thermometers = frozenset(device.device_id for device in settings.ble.devices if device.body_thermometer)
    return {
        "mqtt": MqttFrameDecoder(settings.ingest, settings.mqtt.theengs_base_topic, templates),
        BLE_SOURCE: BleFrameDecoder(clocks),
        ADVERTISEMENT_SOURCE: AdvertisementFrameDecoder(bind_keys, thermometers),
        HTTP_SOURCE: HttpFrameDecoder(settings.ingest),
    }


def mqtt_topic_filters(settings: GatewaySettings, templates: TemplateSet | None = None) -> list[str]:
    """What the gateway subscribes to: one topic filter per payload format it reads."""
    theengs = [theengs_subscription(settings.mqtt.theengs_base_topic)] if settings.mqtt.theengs_base_topic else []
    mapped = [template.topic for template in templates.templates] if templates is not None else []
    hubs = [HUB_READINGS_SUBSCRIPTION, HUB_SENML_SUBSCRIPTION, *HUB_STATUS_SUBSCRIPTIONS]
    return [SUBSCRIPTION, SENML_SUBSCRIPTION, *hubs, *theengs, *mapped]


class FrameDecoder(Protocol):
    """Turns a frame into readings; raises :class:`InputRejectedError` for the whole frame."""

    def device_id(self, frame: RawFrame) -> str:
        """The device as authenticated by the transport (topic, connection)."""

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode: ...


class SenmlFrameDecoder:
    """SenML (RFC 8428) packs on ``pulsebridge/v1/devices/{device_id}/senml``."""

    def __init__(self, settings: IngestSettings) -> None:
        self._max_payload_bytes = settings.max_payload_bytes
        self._max_records = settings.max_readings_per_message

    def device_id(self, frame: RawFrame) -> str:
        return device_from_topic(frame.channel, SENML_SUFFIX)

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        return decode_senml(
            frame.payload, device_id, received_at=frame.received_at, max_payload_bytes=self._max_payload_bytes,
            max_records=self._max_records,
        )  # fmt: skip


class HubFrameDecoder:
    """Packs an edge hub forwards on ``hubs/<hub>/devices/<device>/readings|senml`` (native or SenML)."""

    def __init__(self, settings: IngestSettings) -> None:
        self._native = NativeFrameDecoder(settings)
        self._senml = SenmlFrameDecoder(settings)

    def device_id(self, frame: RawFrame) -> str:
        found = hub_and_device(frame.channel)
        if found is None:
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME, f"topic {frame.channel!r} is not hubs/{{hub}}/devices/{{device}}/readings"
            )
        return found[1]

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        if frame.channel.endswith(SENML_SUFFIX):
            return self._senml.decode(frame, device_id)
        return self._native.decode(frame, device_id)


class TemplateFrameDecoder:
    """Payloads described by mapping templates; the set in force is swapped when the file changes."""

    def __init__(self, settings: IngestSettings, templates: TemplateSet) -> None:
        self._max_payload_bytes = settings.max_payload_bytes
        self._max_readings = settings.max_readings_per_message
        self.templates = templates

    def handles(self, topic: str) -> bool:
        return template_for_topic(self.templates, topic) is not None

    def _template(self, frame: RawFrame) -> Template:
        template = template_for_topic(self.templates, frame.channel)
        if template is None:
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"no mapping template for topic {frame.channel!r} any more")
        return template

    def device_id(self, frame: RawFrame) -> str:
        return template_device(self._template(frame), frame.channel)

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:  # noqa: ARG002 - the template finds the device itself
        return decode_with_template(
            self._template(frame),
            frame.channel,
            frame.payload,
            max_payload_bytes=self._max_payload_bytes,
            max_readings=self._max_readings,
        )


class MqttFrameDecoder:
    """Picks the payload format from the topic: native readings, SenML, Theengs documents or a mapping template."""

    def __init__(
        self, settings: IngestSettings, theengs_base_topic: str | None = None, templates: TemplateSet | None = None
    ) -> None:
        self._native = NativeFrameDecoder(settings)
        self._senml = SenmlFrameDecoder(settings)
        self._theengs = TheengsMqttDecoder(settings.max_payload_bytes)
        self._theengs_base = theengs_base_topic
        self._hub = HubFrameDecoder(settings)
        self.templates = TemplateFrameDecoder(settings, templates or TemplateSet(templates=[]))

    def _format(self, frame: RawFrame) -> FrameDecoder:
        if is_hub_topic(frame.channel):
            return self._hub
        if self._theengs_base is not None and is_theengs_topic(self._theengs_base, frame.channel):
            return self._theengs
        if frame.channel.endswith(SENML_SUFFIX):
            return self._senml
        if frame.channel.endswith(TOPIC_SUFFIX) or not self.templates.handles(frame.channel):
            return self._native
        return self.templates

    def device_id(self, frame: RawFrame) -> str:
        return self._format(frame).device_id(frame)

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        return self._format(frame).decode(frame, device_id)


class NativeFrameDecoder:
    """The native PulseBridge v1 topic and payload."""

    def __init__(self, settings: IngestSettings) -> None:
        self._max_payload_bytes = settings.max_payload_bytes
        self._max_readings = settings.max_readings_per_message

    def device_id(self, frame: RawFrame) -> str:
        return device_from_topic(frame.channel)

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        return decode_payload(
            frame.payload, device_id, max_payload_bytes=self._max_payload_bytes, max_readings=self._max_readings
        )


@dataclass(slots=True)
class IngestStats:
    """Running totals since start (the ledger's gateway side)."""

    frames: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    store_failures: int = 0


class IngestPipeline:
    def __init__(
        self,
        store: ObservationStore,
        settings: IngestSettings,
        mapper: ObservationMapper | None = None,
        decoders: Mapping[str, FrameDecoder] | None = None,
        metrics: IngestMetrics | None = None,
        *,
        destinations: Sequence[DestinationSettings] = (),
        events: EventBus | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._destinations = tuple(destination for destination in destinations if destination.enabled)
        self._settings = settings
        self._mapper = mapper or ObservationMapper(
            MapperContext(future_tolerance=timedelta(seconds=settings.future_tolerance_seconds))
        )
        self._decoders = decoders if decoders is not None else {"mqtt": MqttFrameDecoder(settings)}
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=settings.queue_size)
        self.stats = IngestStats()
        self.metrics = metrics or IngestMetrics()
        self.metrics.watch_queue(self._queue.qsize)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, delivery: Delivery) -> None:
        """Queue a delivery; waits while the queue is full (back-pressure to the source)."""
        await self._queue.put(delivery)
        # Counted once queued: a submit cancelled while the queue was full (an HTTP post that
        # timed out) never reaches the pipeline, which would never take it off the gauge.
        # No await since the put, so the pipeline cannot take it off before it is counted.
        self.metrics.received_from(delivery.frame.source).inc()
        self.metrics.unacknowledged.inc()

    async def run(self) -> None:
        """Take batches from the queue and store them, forever.

        While batches are written, the next is taken and prepared (decoded, attributed, mapped):
        the gateway's CPU work overlaps the database's. Up to ``writes_in_flight`` transactions
        run at once, so the database is not idle while the gateway encodes the next one; a batch
        is still acknowledged only after it and every batch before it committed, in arrival order.
        """
        writing: deque[asyncio.Task[WriteResult]] = deque()
        try:
            while True:
                batch = await self._next_batch()
                try:
                    prepared: PreparedBatch | None = await self._prepare(batch, reporting=_reporting(batch))
                except StorageError:
                    prepared = None  # the registry is unreachable: the write prepares it again, with its retries
                while len(writing) >= self._settings.writes_in_flight:
                    await writing.popleft()
                earlier = writing[-1] if writing else None
                writing.append(asyncio.create_task(self._write_in_order(batch, prepared, earlier), name="ingest-write"))
        finally:
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)

    async def _write_in_order(
        self, batch: Sequence[Delivery], prepared: PreparedBatch | None, earlier: asyncio.Task[WriteResult] | None
    ) -> WriteResult:
        result, reports = await self._commit(batch, prepared)
        if earlier is not None:
            # MQTT wants PUBACKs in the order the PUBLISHes came, and a source's position must
            # never pass a batch that has not committed yet.
            await asyncio.shield(earlier)
        self._acknowledge(batch, reports)
        return result

    async def _next_batch(self) -> list[Delivery]:
        # One timeout for the whole batch, not one per delivery: at thousands of deliveries a
        # second a wait_for (a task and a timer each) cost as much as the rest of the batching.
        queue, size = self._queue, self._settings.batch_size
        batch = [await queue.get()]
        _take_waiting(queue, batch, size)
        if len(batch) < size and self._settings.batch_wait_ms > 0:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(loop.time() + self._settings.batch_wait_ms / 1000):
                    while len(batch) < size:
                        # A delivery the timeout interrupts stays queued: Queue.get takes it only when it returns.
                        batch.append(await queue.get())
                        _take_waiting(queue, batch, size)
        return batch

    async def store_until_committed(self, batch: Sequence[Delivery], prepared: PreparedBatch | None = None) -> WriteResult:
        """Store ``batch`` in one transaction, retrying while the store fails; then ack it.

        ``prepared`` is what :meth:`_prepare` made of the batch already; a retry prepares it again.
        """
        result, reports = await self._commit(batch, prepared)
        self._acknowledge(batch, reports)
        return result

    async def _commit(
        self, batch: Sequence[Delivery], prepared: PreparedBatch | None
    ) -> tuple[WriteResult, dict[int, FrameReport]]:
        backoff = 0.1
        while True:
            try:
                return await self._store_batch(batch, prepared)
            except StorageError as exc:
                prepared = None
                self.stats.store_failures += 1
                self.metrics.store_failures.inc()
                logger.warning("storing a batch of %d frames failed (%s); retrying in %.1f s", len(batch), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.retry_max_seconds)

    def _acknowledge(self, batch: Sequence[Delivery], reports: Mapping[int, FrameReport]) -> None:
        for position, delivery in enumerate(batch):
            if isinstance(delivery, ReportingDelivery):
                delivery.report(reports.get(position, FrameReport(())))
            delivery.ack()
        self.metrics.unacknowledged.dec(len(batch))

    async def store_batch(self, batch: Sequence[Delivery]) -> WriteResult:
        """Decode, attribute and map ``batch``, then commit it in one transaction (no ack)."""
        result, _ = await self._store_batch(batch)
        return result

    def _outbox(self, observations: Sequence[MappedObservation]) -> list[OutboxEntry]:
        """A row per observation and destination that takes it; the store keeps those of new readings that consent allows."""
        return [
            OutboxEntry(observation.key, observation.time, destination.name, observation.patient_id, destination.consent)
            for destination in self._destinations
            for observation in observations
            if destination.accepts(observation.kind, observation.patient_id)
        ]

    def readings_of(self, frame: RawFrame) -> tuple[Reading, ...]:
        """The readings a frame carries, decoded only (no registry, no mapping); raises InputRejectedError."""
        decoder = self._decoder(frame)
        return decoder.decode(frame, decoder.device_id(frame)).readings

    def _decoder(self, frame: RawFrame) -> FrameDecoder:
        decoder = self._decoders.get(frame.source)
        if decoder is None:
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"no decoder for frames from {frame.source!r}")
        return decoder

    async def _decode(self, batch: Sequence[Delivery], prepared: PreparedBatch) -> list[DecodedFrame]:
        frames: list[DecodedFrame] = []
        since_yield = 0
        for position, delivery in enumerate(batch):
            if since_yield >= _READINGS_BETWEEN_YIELDS:
                await asyncio.sleep(0)
                since_yield = 0
            device_id: str | None = None
            try:
                decoder = self._decoder(delivery.frame)
                device_id = decoder.device_id(delivery.frame)
                decoded = decoder.decode(delivery.frame, device_id)
            except InputRejectedError as exc:
                prepared.reject(position, quarantine_entry(delivery.frame, device_id, exc, None))
                continue
            for index, error in decoded.rejections:
                prepared.reject(position, quarantine_entry(delivery.frame, device_id, error, index))
            if decoded.atomic:
                prepared.atomic.add(position)
            if decoded.readings:
                frames.append(DecodedFrame(delivery.frame, device_id, decoded, position))
            since_yield += len(decoded.readings) + 1
        return frames

    async def _store_batch(
        self, batch: Sequence[Delivery], prepared: PreparedBatch | None = None
    ) -> tuple[WriteResult, dict[int, FrameReport]]:
        reporting = _reporting(batch)
        if prepared is None:
            prepared = await self._prepare(batch, reporting=reporting)
        result = await self._store.write_batch(prepared.observations, prepared.quarantine, self._outbox(prepared.observations))
        self.stats.frames += len(batch)
        self.stats.batches += 1
        self.stats.stored += result.inserted
        self.stats.duplicates += result.duplicates
        self.stats.quarantined += result.quarantined
        self.metrics.committed(batch, result.inserted, result.duplicates, [entry.reason for entry in prepared.quarantine])
        if self._events is not None and result.inserted_keys:
            # After the commit, and only what was new: a redelivered reading is not news.
            self._events.publish_all(observation_events(prepared.observations, result.inserted_keys, prepared.device_ids))
        return result, prepared.reports(result) if reporting else {}

    async def prepare(self, batch: Sequence[Delivery]) -> tuple[list[MappedObservation], list[QuarantineEntry]]:
        """What ``batch`` becomes: Observations to store and inputs to quarantine (reads the registry, writes nothing)."""
        prepared = await self._prepare(batch)
        return prepared.observations, prepared.quarantine

    async def _paired_with_hubs(self, frames: list[DecodedFrame], prepared: PreparedBatch) -> list[DecodedFrame]:
        """A hub speaks only for the devices paired with it: the others' readings are quarantined, not attributed."""
        via = {item.position: hub_and_device(item.frame.channel) for item in frames if item.frame.source == "mqtt"}
        hubs = {found[0] for found in via.values() if found is not None}
        if not hubs:
            return frames
        paired = {(device.hub_id, device.device_id) for device in await self._store.hub_devices(hubs)}
        kept: list[DecodedFrame] = []
        for item in frames:
            found = via.get(item.position)
            if found is None or found in paired:
                kept.append(item)
                continue
            error = IdentityError(ReasonCode.UNPAIRED_DEVICE, f"device {found[1]!r} is not paired with hub {found[0]!r}")
            for reading in item.decoded.readings:
                prepared.reject(item.position, quarantine_entry(item.frame, item.device_id, error, reading.index))
        return kept

    async def _prepare(self, batch: Sequence[Delivery], *, reporting: bool = False) -> PreparedBatch:
        prepared = PreparedBatch(reporting=reporting)
        frames = await self._paired_with_hubs(await self._decode(batch, prepared), prepared)
        registrations = await self._store.registrations({item.device_id for item in frames})
        inputs: list[MappingInput] = []
        origins: list[tuple[DecodedFrame, int]] = []
        for item in frames:
            registration = registrations.get(item.device_id)
            if registration is None:
                error = IdentityError(ReasonCode.UNKNOWN_DEVICE, f"device {item.device_id!r} is not registered")
                prepared.reject(item.position, quarantine_entry(item.frame, item.device_id, error, None))
                continue
            claimed = dict(item.decoded.claimed_patients)
            for reading in item.decoded.readings:
                patient_id = registration.patient_at(reading.time, reading.user)
                if patient_id is None:
                    slot = f" user {reading.user}" if reading.user is not None and registration.slots else ""
                    detail = f"device {item.device_id!r}{slot} was not assigned to a patient at {reading.time.isoformat()}"
                    identity = IdentityError(ReasonCode.UNPAIRED_DEVICE, detail)
                    prepared.reject(item.position, quarantine_entry(item.frame, item.device_id, identity, reading.index))
                    continue
                if claimed.get(reading.index, patient_id) != patient_id:
                    # The payload's word never attributes a reading: the authenticated device does.
                    detail = (
                        f"the payload names Patient/{claimed[reading.index]}, "
                        f"not the patient device {item.device_id!r} is assigned to"
                    )
                    identity = IdentityError(ReasonCode.IDENTITY_MISMATCH, detail)
                    prepared.reject(item.position, quarantine_entry(item.frame, item.device_id, identity, reading.index))
                    continue
                attribution = Attribution(patient_id, registration.device.resource_id, item.device_id)
                inputs.append(MappingInput(reading, attribution, item.frame.received_at, item.frame.source))
                origins.append((item, reading.index))

        observations, rejected = await self._map(inputs)
        rejected_positions: set[int] = set()
        for position, rejection in rejected:
            item, index = origins[position]
            rejected_positions.add(position)
            prepared.reject(item.position, quarantine_entry(item.frame, item.device_id, rejection, index))
        survivors = [origin for position, origin in enumerate(origins) if position not in rejected_positions]
        for observation, (item, index) in zip(observations, survivors, strict=True):
            prepared.accept(item, index, observation)
        prepared.release_held()
        return prepared

    async def _map(self, inputs: Sequence[MappingInput]) -> tuple[list[MappedObservation], list[tuple[int, InputRejectedError]]]:
        observations: list[MappedObservation] = []
        rejected: list[tuple[int, InputRejectedError]] = []
        for start in range(0, len(inputs), _READINGS_BETWEEN_YIELDS):
            if start:
                await asyncio.sleep(0)
            mapped, refused = self._mapper.map_batch(inputs[start : start + _READINGS_BETWEEN_YIELDS])
            observations += mapped
            rejected += [(start + position, error) for position, error in refused]
        return observations, rejected


def _reporting(batch: Sequence[Delivery]) -> bool:
    """Whether a source in the batch is told per item (HTTP), so per-item outcomes must be kept."""
    return any(isinstance(delivery, ReportingDelivery) for delivery in batch)


def _take_waiting(queue: asyncio.Queue[Delivery], batch: list[Delivery], size: int) -> None:
    """Move deliveries already queued into ``batch``, up to ``size``, without waiting."""
    while len(batch) < size and not queue.empty():
        batch.append(queue.get_nowait())
