"""Prometheus metrics of the EHR push: outbox depth and age, outcomes, request latency.

They live in the app's registry beside the ingest metrics, so one ``/metrics`` scrape shows both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.storage.outbox import OutboxBacklog


class PushMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "pulsebridge_outbox_pending", "Readings waiting to be pushed, by destination", ["destination"], registry=registry
        )
        self.oldest_age = Gauge(
            "pulsebridge_outbox_oldest_pending_age_seconds",
            "How long the oldest reading still waiting for a destination has waited (0 when none waits)",
            ["destination"],
            registry=registry,
        )
        self.outcomes = Counter(
            "pulsebridge_push_outcomes",
            "Pushed readings by what the EHR decided: done, dead (dead letter) or retry",
            ["destination", "outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "pulsebridge_push_request_seconds",
            "Duration of one Bundle push, answer included",
            ["destination"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.ready = Gauge(
            "pulsebridge_push_destination_ready",
            "1 once the destination's CapabilityStatement allows exactly-once pushes, else 0",
            ["destination"],
            registry=registry,
        )

    def backlog(self, destinations: Iterable[str], rows: Iterable[OutboxBacklog], now: datetime) -> None:
        """Set the depth and age gauges; destinations without pending rows read 0."""
        found = {row.destination: row for row in rows}
        for name in destinations:
            row = found.get(name)
            self.pending.labels(name).set(row.pending if row else 0)
            oldest = row.oldest_created if row else None
            self.oldest_age.labels(name).set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
