"""Prometheus metrics for ingest: what came in, what was stored, quarantined or doubled, how fast.

Each app has its own registry (several apps can live in one test process); ``/metrics`` serves it.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from device_adapters.readings import Delivery


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter("pulsebridge_frames_received", "Frames received, by source", ["source"], registry=self.registry)
        self._received_by_source: dict[str, Counter] = {}
        self.stored = Counter("pulsebridge_readings_stored", "Readings committed to the store", registry=self.registry)
        self.duplicates = Counter(
            "pulsebridge_duplicates_suppressed", "Readings already stored (redelivered or re-sent)", registry=self.registry
        )
        self.quarantined = Counter("pulsebridge_quarantined", "Inputs quarantined, by reason", ["reason"], registry=self.registry)
        self.store_failures = Counter(
            "pulsebridge_store_failures", "Batches the store failed to commit (then retried)", registry=self.registry
        )
        self.latency = Histogram(
            "pulsebridge_ingest_latency_seconds",
            "From reception to commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "pulsebridge_ingest_queue_depth", "Deliveries waiting in the ingest queue", registry=self.registry
        )
        self.unacknowledged = Gauge(
            "pulsebridge_unacknowledged_in_flight",
            "Deliveries received and not yet acknowledged to their source",
            registry=self.registry,
        )

    def received_from(self, source: str) -> Counter:
        """The per-source counter, looked up once per source: ``labels()`` on every frame is a lock and a tuple."""
        counter = self._received_by_source.get(source)
        if counter is None:
            counter = self._received_by_source[source] = self.received.labels(source)
        return counter

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def committed(self, batch: Sequence[Delivery], stored: int, duplicates: int, reasons: Sequence[str]) -> None:
        now = datetime.now(UTC)
        for delivery in batch:
            self.latency.observe((now - delivery.frame.received_at).total_seconds())
        self.stored.inc(stored)
        self.duplicates.inc(duplicates)
        for reason, count in Tally(reasons).items():
            self.quarantined.labels(reason).inc(count)
