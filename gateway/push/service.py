"""The EHR push as the app lifespan owns it: one client and one set of senders per enabled destination."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from device_adapters.errors import StorageError
from edge_config.destinations import DestinationSettings
from gateway.push.client import FhirDestinationClient
from gateway.push.metrics import PushMetrics
from gateway.push.setup import client_destination
from gateway.push.worker import DestinationPusher
from gateway.storage import ObservationStore

logger = logging.getLogger(__name__)
BACKLOG_SECONDS = 5.0


@asynccontextmanager
async def push_tasks(
    destinations: Sequence[DestinationSettings], store: ObservationStore, registry: CollectorRegistry
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start the senders (and the backlog gauges); the caller watches and cancels the tasks it gets."""
    enabled = [destination for destination in destinations if destination.enabled]
    metrics = PushMetrics(registry)
    async with AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        for destination in enabled:
            client = await stack.enter_async_context(FhirDestinationClient(client_destination(destination)))
            pusher = DestinationPusher(destination, store, client, metrics)
            tasks.append(asyncio.create_task(pusher.run(), name=f"push-{destination.name}"))
        if destinations:
            names = [destination.name for destination in destinations]
            tasks.append(asyncio.create_task(_watch_backlog(names, store, metrics), name="push-backlog"))
        yield tasks


async def _watch_backlog(names: Sequence[str], store: ObservationStore, metrics: PushMetrics) -> None:
    while True:
        try:
            metrics.backlog(names, await store.outbox_backlog(), datetime.now(UTC))
        except StorageError as exc:
            logger.warning("outbox backlog unreadable: %s", exc)
        await asyncio.sleep(BACKLOG_SECONDS)
