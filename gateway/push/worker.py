"""Outbox senders: drain each destination's outbox rows into its EHR, one Bundle at a time.

Delivery is at-least-once with idempotent writes: a row is claimed (leased, ``FOR UPDATE SKIP
LOCKED``), pushed as a conditional create, and marked done only after the EHR's 2xx. A lost
answer, a crash or a lease that runs out sends the row again, and the conditional create makes
the second send a no-op. A push never outlives its lease, so two senders never hold one row.

Backpressure lives in the outbox, not in memory: an EHR that throttles (Retry-After) pauses the
whole destination, an EHR that keeps failing opens the circuit breaker, and in both cases the
senders stop claiming rows until it is time, so a long outage costs database rows only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from device_adapters.errors import StorageError
from edge_config.destinations import DestinationSettings
from gateway.push.client import Capabilities, Disposition, EntryOutcome, FhirDestinationClient
from gateway.push.entries import BundleType, PushEntry, bundle, for_destination, local_patient
from gateway.push.errors import PushError
from gateway.push.metrics import PushMetrics
from gateway.push.patients import KEEP_SUBJECT, PatientDirectory, PatientReference
from gateway.push.policy import BreakerState, backoff
from gateway.storage import ObservationStore
from gateway.storage.outbox import OutboxItem, OutboxOutcome

logger = logging.getLogger(__name__)
STORE_RETRY_SECONDS = 2.0
BREAKER_WAIT = timedelta(seconds=1)
LEASE_MARGIN = timedelta(seconds=10)


class DestinationUnusable(PushError):  # noqa: N818 - reads as the condition it reports
    """The EHR cannot take exactly-once pushes as configured (no conditional create, no batch or transaction)."""


def bundle_type_for(settings: DestinationSettings, capabilities: Capabilities) -> BundleType:
    """The Bundle type to send, from the settings and what the CapabilityStatement promises."""
    if not capabilities.conditional_create:
        raise DestinationUnusable(f"{settings.name}: no conditional create on Observation, so a resend could duplicate")
    conditional = settings.patient is not None and settings.patient.match == "conditional_reference"
    wanted: BundleType | None = "transaction" if conditional else None
    if settings.bundle != "auto":
        wanted = settings.bundle
    supported = {"batch": capabilities.batch, "transaction": capabilities.transaction}
    if wanted is not None:
        if not supported[wanted]:
            raise DestinationUnusable(f"{settings.name}: the EHR does not accept {wanted} Bundles")
        return wanted
    if capabilities.batch:
        return "batch"
    if capabilities.transaction:
        return "transaction"
    raise DestinationUnusable(f"{settings.name}: the EHR accepts neither batch nor transaction Bundles")


class RateLimit:
    """At most ``per_second`` Bundles per second, shared by a destination's senders."""

    def __init__(self, per_second: float | None, monotonic: Callable[[], float]) -> None:
        self._interval = 0.0 if per_second is None else 1.0 / per_second
        self._monotonic = monotonic
        self._next = 0.0

    async def acquire(self) -> None:
        if self._interval == 0.0:
            return
        now = self._monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class DestinationPusher:
    """The senders of one destination: discovery at start, then ``settings.workers`` claim-and-push loops."""

    def __init__(
        self,
        settings: DestinationSettings,
        store: ObservationStore,
        client: FhirDestinationClient,
        metrics: PushMetrics,
        *,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._store = store
        self._client = client
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._monotonic = monotonic
        self._patients = PatientDirectory(settings.patient, store, client, monotonic=monotonic)
        self._rate = RateLimit(settings.rate_limit_per_second, monotonic)
        self._paused_until = 0.0
        self.bundle_type: BundleType | None = None
        # A push gives up before its rows' lease runs out, so no other sender can claim them
        # meanwhile; the lease is kept short because it is also how long a crashed gateway's rows wait.
        self.push_deadline = timedelta(seconds=settings.timeout_seconds * 2 + 5)
        self.lease = self.push_deadline + LEASE_MARGIN

    async def run(self) -> None:
        self.bundle_type = await self._discover()
        self._metrics.ready.labels(self.settings.name).set(1)
        await asyncio.gather(*(self._sender() for _ in range(self.settings.workers)))

    async def _discover(self) -> BundleType:
        attempt = 0
        cap = timedelta(seconds=self.settings.retry_cap_seconds)
        self._metrics.ready.labels(self.settings.name).set(0)
        while True:
            attempt += 1
            try:
                capabilities = await self._client.discover()
                kind = bundle_type_for(self.settings, capabilities)
            except PushError as exc:
                # Rows wait in the outbox meanwhile: nothing is lost by waiting for the EHR.
                delay = backoff(attempt, timedelta(seconds=self.settings.retry_base_seconds), cap, self._rng)
                logger.warning("destination %s not ready (%s); asking again in %.0f s", self.settings.name, exc, delay.seconds)
                await asyncio.sleep(max(delay.total_seconds(), self.settings.retry_base_seconds))
                continue
            logger.info("destination %s: pushing %s Bundles", self.settings.name, kind)
            return kind

    async def _sender(self) -> None:
        while True:
            limit = await self._wait_for_turn()
            try:
                items = await self._store.claim_outbox(
                    self.settings.name, limit, datetime.now(UTC), self.lease, consent=self.settings.consent
                )
            except StorageError as exc:
                logger.warning("destination %s: cannot claim outbox rows (%s)", self.settings.name, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            if not items:
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            try:
                async with asyncio.timeout(self.push_deadline.total_seconds()):
                    await self.push(items)
            except (TimeoutError, StorageError) as exc:
                # The rows stay leased and come back when the lease runs out; a resend is harmless.
                logger.warning("destination %s: push of %d rows unfinished (%s)", self.settings.name, len(items), exc)

    async def _wait_for_turn(self) -> int:
        """Sleep while the destination is paused or its breaker is open; the number of rows to claim next."""
        breaker = self._client.breaker
        while True:
            now = self._monotonic()
            wait = max(self._paused_until - now, breaker.retry_in(now).total_seconds())
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        await self._rate.acquire()
        # Half-open: one small probe decides whether the EHR is back.
        return 1 if breaker.state(self._monotonic()) is BreakerState.HALF_OPEN else self.settings.batch_size

    async def push(self, items: Sequence[OutboxItem]) -> None:
        """Push claimed rows in one Bundle and record each row's outcome."""
        name = self.settings.name
        resources = {item.id: _resource(item) for item in items}
        patients = {p for p in (local_patient(r) for r in resources.values() if r is not None) if p is not None}
        finished: list[tuple[int, OutboxOutcome]] = []
        try:
            references = await self._patients.references(patients)
        except PushError as exc:
            await self._finish([(item.id, self._retry(item, None, str(exc))) for item in items])
            return
        # A reading's create and its correction may be claimed together: FHIR refuses two
        # entries for one resource in a Bundle, so one entry carries the stored (latest) version.
        rows_of: dict[uuid.UUID, list[OutboxItem]] = {}
        entries: list[PushEntry] = []
        for item in items:
            resource = resources[item.id]
            if resource is None:
                finished.append((item.id, OutboxOutcome("dead", "the stored Observation is not a JSON object")))
                continue
            patient = local_patient(resource)
            reference = references.get(patient, KEEP_SUBJECT) if patient is not None else _NO_SUBJECT
            if reference.problem is not None:
                finished.append((item.id, OutboxOutcome("dead", reference.problem)))
                continue
            rows = rows_of.setdefault(item.reading_key, [])
            rows.append(item)
            if len(rows) == 1:
                entries.append(PushEntry(str(item.reading_key), for_destination(resource, reference.reference)))
        if entries:
            entries = [
                PushEntry(entry.reading_key, entry.resource, _method(rows_of[uuid.UUID(entry.reading_key)])) for entry in entries
            ]
            assert self.bundle_type is not None  # noqa: S101 - run() discovers before any sender starts
            started = self._monotonic()
            outcomes = await self._client.send(bundle(entries, self.bundle_type))
            self._metrics.request_seconds.labels(name).observe(self._monotonic() - started)
            for entry, outcome in zip(entries, outcomes, strict=True):
                finished.extend((row.id, self._decide(row, outcome)) for row in rows_of[uuid.UUID(entry.reading_key)])
        await self._finish(finished)

    def _decide(self, item: OutboxItem, outcome: EntryOutcome) -> OutboxOutcome:
        if outcome.disposition is Disposition.SUCCESS:
            return OutboxOutcome("done", http_status=outcome.status)
        refusal = orjson.dumps(outcome.operation_outcome).decode() if outcome.operation_outcome is not None else None
        if outcome.disposition is Disposition.TERMINAL:
            return OutboxOutcome("dead", _describe(outcome), None, outcome.status, refusal)
        asked = outcome.retry_after
        if asked is not None and outcome.status is None:
            # Refused by the breaker without a request (another sender is probing): not a hot loop.
            asked = max(asked, BREAKER_WAIT)
        if asked is not None:
            # Everything else would be refused too: the whole destination waits, not just these rows.
            self._paused_until = max(self._paused_until, self._monotonic() + asked.total_seconds())
        return self._retry(item, asked, _describe(outcome), outcome.status)

    def _retry(self, item: OutboxItem, asked: timedelta | None, error: str, status: int | None = None) -> OutboxOutcome:
        settings = self.settings
        delay = asked
        if delay is None:
            delay = backoff(item.attempts, timedelta(seconds=settings.retry_base_seconds),
                            timedelta(seconds=settings.retry_cap_seconds), self._rng)  # fmt: skip
        return OutboxOutcome("pending", error, datetime.now(UTC) + delay, status)

    async def _finish(self, finished: list[tuple[int, OutboxOutcome]]) -> None:
        await self._store.finish_outbox(finished, datetime.now(UTC))
        counter = self._metrics.outcomes
        for _, outcome in finished:
            counter.labels(self.settings.name, "retry" if outcome.status == "pending" else outcome.status).inc()


_NO_SUBJECT = PatientReference(problem="the stored Observation names no patient")


def _resource(item: OutboxItem) -> dict[str, Any] | None:
    resource = orjson.loads(item.resource)
    return resource if isinstance(resource, dict) else None


def _method(rows: Sequence[OutboxItem]) -> Literal["POST", "PUT"]:
    """A conditional update when any row is a correction (it also creates a resource the EHR lacks)."""
    return "PUT" if any(row.action == "update" for row in rows) else "POST"


def _describe(outcome: EntryOutcome) -> str:
    status = "no answer" if outcome.status is None else str(outcome.status)
    diagnostics = _diagnostics(outcome.operation_outcome)
    text = ": ".join(part for part in (status, outcome.detail, diagnostics) if part)
    return text[:1000]


def _diagnostics(operation_outcome: dict[str, Any] | None) -> str:
    if operation_outcome is None:
        return ""
    issues = operation_outcome.get("issue")
    texts = []
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
            if isinstance(text, str):
                texts.append(text)
    return "; ".join(texts)
