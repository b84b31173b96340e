"""The live event bus: what the dashboard and the alert engine hear about as it happens.

Ingest publishes an :class:`ObservationEvent` for each reading a batch stored for the first time,
after the batch committed; the alert engine publishes an :class:`AlertEvent` when an alert opens,
changes or clears. ``publish`` never waits: each subscriber has its own bounded queue, and a
subscriber that falls behind loses its oldest events and is handed a :class:`Gap` saying how
many, so a slow dashboard can never slow ingest (it reloads from the API when it sees a gap).

The bus is in-process: with several ``serve`` workers on a shared subscription, each worker's
subscribers hear about the readings that worker stored.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Literal, Self

from device_adapters.readings import require_aware
from fhir_mapper.catalogue import CATALOGUE
from fhir_mapper.mapping_types import MappedObservation

AlertStatus = Literal["open", "acknowledged", "snoozed", "resolved"]


@dataclass(frozen=True, slots=True)
class ObservationEvent:
    """A reading stored for the first time (never a duplicate), after its transaction committed."""

    patient_id: str
    kind: str
    reading_key: str
    time: datetime
    """The device's own time of the reading."""
    value: Decimal | None
    """None for readings without a single number (a blood pressure panel: see ``components``)."""
    unit: str
    device_id: str | None = None
    """The device's own id (as on its MQTT topic), when the publisher knows it."""
    components: tuple[tuple[str, Decimal], ...] = ()
    """Compound readings' parts by name: ``(("systolic", 120), ("diastolic", 80))``."""

    def __post_init__(self) -> None:
        require_aware("time", self.time)

    def component(self, name: str) -> Decimal | None:
        return next((value for part, value in self.components if part == name), None)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert opened, changed (severity, acknowledged, snoozed) or resolved."""

    alert_id: str
    patient_id: str
    status: AlertStatus
    rule: str
    kind: str
    severity: str
    changed_at: datetime
    summary: str

    def __post_init__(self) -> None:
        require_aware("changed_at", self.changed_at)


@dataclass(frozen=True, slots=True)
class Gap:
    """``lost`` events were dropped here because this subscriber fell behind: reload, then carry on."""

    lost: int


Event = ObservationEvent | AlertEvent
Delivered = ObservationEvent | AlertEvent | Gap


def visible_to(event: Delivered, patients: Collection[str] | None) -> bool:
    """Whether a subscriber limited to ``patients`` (None: every patient) gets ``event``; gaps always reach it."""
    if patients is None or isinstance(event, Gap):
        return True
    return event.patient_id in patients


def only_patients(events: Iterable[Delivered], patients: Collection[str] | None) -> list[Delivered]:
    """The events a subscriber limited to ``patients`` may see, in order."""
    return [event for event in events if visible_to(event, patients)]


def observation_events(
    observations: Sequence[MappedObservation], inserted: Collection[str], device_ids: Mapping[str, str] | None = None
) -> list[ObservationEvent]:
    """Events for the observations whose keys the batch stored for the first time.

    ``device_ids`` maps a reading key to its device's id. A compound reading's parts are read
    back from its Observation JSON (only compound kinds pay for that).
    """
    ids = device_ids or {}
    seen: set[str] = set()
    events: list[ObservationEvent] = []
    for o in observations:
        if o.key not in inserted or o.key in seen:
            continue  # a key sent twice in one batch was stored once
        seen.add(o.key)
        parts = _components(o) if _compound(o.kind) else ()
        events.append(ObservationEvent(o.patient_id, o.kind, o.key, o.time, o.value, o.unit, ids.get(o.key), parts))
    return events


def _compound(kind: str) -> bool:
    spec = CATALOGUE.get(kind)
    return spec is not None and spec.compound


def _components(observation: MappedObservation) -> tuple[tuple[str, Decimal], ...]:
    spec = CATALOGUE[observation.kind]
    names = {coding.code: part.name for part in spec.components for coding in part.codings}
    resource = json.loads(observation.resource, parse_float=Decimal)
    found: list[tuple[str, Decimal]] = []
    for entry in resource.get("component", []):
        quantity = entry.get("valueQuantity")
        if not isinstance(quantity, dict) or "value" not in quantity:
            continue
        name = next((names[c["code"]] for c in entry["code"]["coding"] if c.get("code") in names), None)
        if name is not None:
            found.append((name, Decimal(quantity["value"])))
    return tuple(found)


class Subscription:
    """One subscriber's bounded queue; an async context manager and an async iterator of events.

    Iteration ends when the bus closes (the gateway shuts down).
    """

    def __init__(self, bus: EventBus, size: int, patients: Collection[str] | None) -> None:
        self._bus = bus
        self._events: deque[Event] = deque(maxlen=size)
        self._wake = asyncio.Event()
        self._lost = 0
        self._closed = False
        self.patients = None if patients is None else frozenset(patients)
        self.lost_total = 0
        """Events dropped for this subscriber since it subscribed."""

    def _offer(self, event: Event) -> None:
        if not visible_to(event, self.patients):
            return
        if len(self._events) == self._events.maxlen:
            self._lost += 1
            self.lost_total += 1
        self._events.append(event)  # a full deque drops its oldest
        self._wake.set()

    def _close(self) -> None:
        self._closed = True
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._events)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivered:
        while True:
            if self._lost:
                # The lost events were older than everything still queued: the marker goes first.
                lost, self._lost = self._lost, 0
                return Gap(lost)
            if self._events:
                return self._events.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()


class EventBus:
    """Fan-out to subscribers; ``publish`` is synchronous and never blocks (owned by the app lifespan)."""

    def __init__(self, queue_size: int = 1000) -> None:
        if queue_size < 1:
            msg = f"a subscriber queue holds at least one event, not {queue_size}"
            raise ValueError(msg)
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._closed = False
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, patients: Collection[str] | None = None, queue_size: int | None = None) -> Subscription:
        """A new subscriber, limited to ``patients`` (None: everyone); use it as ``async with``."""
        subscription = Subscription(self, queue_size or self._queue_size, patients)
        if self._closed:
            subscription._close()  # noqa: SLF001 - the bus owns its subscriptions' lifecycle
        else:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscription in self._subscribers:
            subscription._offer(event)  # noqa: SLF001 - see subscribe

    def publish_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.publish(event)

    def close(self) -> None:
        """Every subscriber's iteration ends once it has drained what it was given."""
        self._closed = True
        for subscription in self._subscribers:
            subscription._close()  # noqa: SLF001 - see subscribe
        self._subscribers.clear()
