"""The alert engine: a lifespan task applying the pure rules to live readings, and the sweep.

It hears stored readings from the event bus through its own bounded subscription: a burst of
ingest can make it skip readings (it logs the gap) but never slows ingest. Findings are
written through the store (one unresolved alert per key, enforced by the database), and every
change is published on the bus as an :class:`~gateway.events.AlertEvent` and handed to the
webhook sender.

The engine remembers the unresolved alerts' keys and severities, so a normal reading costs no
database write. Several ``serve`` processes each run an engine: the database's unique index
keeps one alert per key, and each engine loads the unresolved alerts when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from device_adapters.errors import StorageError
from edge_config.alert_settings import AlertRuleSet, AlertSettings
from gateway.alerts.rules import Finding, PatientState, evaluate_reading, sweep_findings
from gateway.events import AlertEvent, EventBus, Gap, ObservationEvent
from gateway.storage import ObservationStore
from gateway.storage.alerts import UNRESOLVED, AlertKey, AlertQuery, AlertRecord, Severity

logger = logging.getLogger(__name__)

RULES_TTL_SECONDS = 30.0
"""A patient's rules are read again after this long (another process may have changed them)."""
MAX_PATIENT_STATES = 100_000


def alert_event(record: AlertRecord) -> AlertEvent:
    return AlertEvent(str(record.id), record.patient_id, record.status, record.key.rule, record.key.kind, record.severity,
                      record.updated_at, record.summary)  # fmt: skip


def parse_rules(text: str) -> AlertRuleSet:
    return AlertRuleSet.model_validate_json(text)


class AlertEngine:
    def __init__(
        self,
        store: ObservationStore,
        events: EventBus,
        settings: AlertSettings,
        notify: Callable[[AlertRecord], None] | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._settings = settings
        self._notify = notify
        self._states: dict[str, PatientState] = {}
        self._rules: dict[str, tuple[float, AlertRuleSet]] = {}
        self._unresolved: dict[AlertKey, Severity] = {}
        self.gaps = 0
        self.failures = 0
        # Subscribed now, not when run() starts: readings stored in between are not missed.
        self._subscription = events.subscribe(queue_size=settings.queue_size) if settings.enabled else None

    async def load(self) -> None:
        """The unresolved alerts, so that clearing them needs no lookup."""
        query = AlertQuery(statuses=UNRESOLVED, limit=1_000_000)
        self._unresolved = {record.key: record.severity for record in await self._store.alerts.list_alerts(query)}

    def forget_rules(self, patient_id: str) -> None:
        """The patient's rules changed here: read them again at their next reading."""
        self._rules.pop(patient_id, None)

    async def rules_for(self, patient_id: str) -> AlertRuleSet:
        cached = self._rules.get(patient_id)
        if cached is not None and time.monotonic() - cached[0] < RULES_TTL_SECONDS:
            return cached[1]
        record = await self._store.alerts.alert_rules(patient_id)
        rules = self._settings.defaults if record is None else parse_rules(record.rules)
        self._rules[patient_id] = (time.monotonic(), rules)
        return rules

    async def run(self) -> None:
        """Consume the bus until the gateway stops (the subscription was taken at construction: nothing is missed)."""
        if self._subscription is None:
            return
        async with self._subscription as subscription:
            async for event in subscription:
                if isinstance(event, Gap):
                    self.gaps += event.lost
                    logger.warning("alert engine fell behind: %d events skipped", event.lost)
                elif isinstance(event, ObservationEvent):
                    await self._guarded(self.observe(event))

    async def _guarded(self, work: Awaitable[object]) -> None:
        try:
            await work
        except StorageError as exc:
            # The next reading (or sweep) decides again; the engine must keep running.
            self.failures += 1
            logger.warning("alert evaluation failed: %s", exc)

    async def observe(self, event: ObservationEvent) -> list[AlertRecord]:
        rules = await self.rules_for(event.patient_id)
        if len(self._states) >= MAX_PATIENT_STATES and event.patient_id not in self._states:
            self._states.pop(next(iter(self._states)))
        findings, self._states[event.patient_id] = evaluate_reading(
            rules, self._states.get(event.patient_id, PatientState()), event
        )
        return await self.apply(findings)

    async def sweep(self, now: datetime | None = None) -> list[AlertRecord]:
        """Silence and battery of every assigned device, and snoozes that ran out."""
        at = now or datetime.now(UTC)
        since = at - timedelta(days=self._settings.activity_lookback_days)
        activity = await self._store.alerts.device_activity(at, since)
        rules = {patient: await self.rules_for(patient) for patient in {device.patient_id for device in activity}}
        changed = await self.apply(sweep_findings(activity, rules.__getitem__, at))
        woken = await self._store.alerts.wake_snoozed(at)
        self._announce(woken)
        return changed + woken

    async def apply(self, findings: Sequence[Finding]) -> list[AlertRecord]:
        changed: list[AlertRecord] = []
        for finding in findings:
            known = self._unresolved.get(finding.key)
            if finding.active and known != finding.severity:
                record, updated = await self._store.alerts.raise_alert(finding.candidate())
                self._unresolved[finding.key] = record.severity
                if updated:
                    changed.append(record)
            elif not finding.active and known is not None:
                resolved = await self._store.alerts.resolve_alert(finding.key, finding.at)
                del self._unresolved[finding.key]
                if resolved is not None:
                    changed.append(resolved)
        self._announce(changed)
        return changed

    def _announce(self, records: Sequence[AlertRecord]) -> None:
        for record in records:
            self._events.publish(alert_event(record))
            if self._notify is not None:
                self._notify(record)

    def announce(self, record: AlertRecord) -> None:
        """An alert a person changed (acknowledged, snoozed): published like the engine's own changes."""
        self._announce([record])

    async def sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_seconds)
            await self._guarded(self.sweep())
