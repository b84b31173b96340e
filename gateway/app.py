"""The FastAPI application and its lifespan.

The lifespan owns every resource: the store (asyncpg pool or SQLite connection), the MQTT
source and the pipeline tasks. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from device_adapters.ble.context import ClockBook
from device_adapters.ble.scanner import AdvertisementScanner, ScannerFactory, bleak_scanner
from device_adapters.ble.session import BleSessionManager, Connector, MemoryCursors, PairedDevice
from device_adapters.mqtt.source import MqttSource
from device_adapters.readings import Delivery
from edge_config import GatewaySettings
from edge_config.mapping_templates import TemplateWatcher
from gateway import __version__
from gateway.alerts.service import alert_service
from gateway.api.admin import router as admin_router
from gateway.api.alerts import fhir_router as flags_router
from gateway.api.alerts import router as alerts_router
from gateway.api.audit_trail import install_audit_trail
from gateway.api.audit_trail import router as audit_router
from gateway.api.consent import router as consent_router
from gateway.api.corrections import router as corrections_router
from gateway.api.errors import install_error_handlers, install_url_guard
from gateway.api.fhir import router as fhir_router
from gateway.api.health import router as health_router
from gateway.api.hubs import router as hubs_router
from gateway.api.inbox import router as inbox_router
from gateway.api.ingest import install_ingest
from gateway.api.outbox import router as outbox_router
from gateway.api.pairing import router as pairing_router
from gateway.api.registry import router as registry_router
from gateway.api.vitals import router as vitals_router
from gateway.auth.service import build_authenticator
from gateway.dashboard import install_dashboard
from gateway.events import EventBus
from gateway.hub_link import HubChannel
from gateway.maintenance import check_retention, maintenance_loop
from gateway.pipeline import IngestPipeline, MqttFrameDecoder, decoders_for, mapper_for, mqtt_topic_filters
from gateway.push.service import push_tasks
from gateway.runtime import Runtime
from gateway.storage import open_store

logger = logging.getLogger(__name__)
TEMPLATE_POLL_SECONDS = 2.0

Extension = Callable[[Runtime], AbstractAsyncContextManager[None]]
"""Runs inside the lifespan once the runtime is up (the demo seeds and simulates with one)."""


def _real_connector() -> Connector:
    from device_adapters.ble.connect import connect_with_retries  # noqa: PLC0415 - the radio stack loads only when devices are paired

    return connect_with_retries


async def _feed(source: AsyncIterable[Delivery], pipeline: IngestPipeline, hubs: HubChannel | None = None) -> None:
    async for delivery in source:
        if hubs is None or not await hubs.handle(delivery):
            await pipeline.submit(delivery)


def create_app(
    settings: GatewaySettings,
    *,
    extensions: Sequence[Extension] = (),
    migrate: bool = True,
    ble_connector: Connector | None = None,
    ble_scanner: ScannerFactory | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await open_store(settings.database)
            stack.push_async_callback(store.close)
            if migrate:
                await store.migrate()
            clocks = ClockBook(ZoneInfo(settings.ble.zone))
            watcher = TemplateWatcher(settings.mqtt.templates_file) if settings.mqtt.templates_file else None
            templates = watcher.current if watcher else None
            decoders = decoders_for(settings, clocks, templates)
            events = EventBus(settings.events.subscriber_queue_size)
            stack.callback(events.close)
            pipeline = IngestPipeline(
                store, settings.ingest, mapper_for(settings), decoders, destinations=settings.destinations, events=events
            )
            source = MqttSource(settings.mqtt, mqtt_topic_filters(settings, templates))
            jwks_http = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
            alerts = await stack.enter_async_context(alert_service(settings.alerts, store, events))
            runtime = Runtime(settings, store, pipeline, source, build_authenticator(settings.auth, jwks_http), events, alerts)
            app.state.runtime = runtime
            hubs = HubChannel(store, settings, source)
            runtime.tasks.extend(
                [
                    asyncio.create_task(pipeline.run(), name="ingest-pipeline"),
                    asyncio.create_task(_feed(source, pipeline, hubs), name="mqtt-source"),
                    asyncio.create_task(hubs.run(), name="hub-configuration"),
                    *alerts.start(),
                ],
            )
            pushing = await stack.enter_async_context(push_tasks(settings.destinations, store, pipeline.metrics.registry))
            runtime.tasks.extend(pushing)
            if settings.maintenance.enabled:
                check_retention(settings.maintenance)
                runtime.tasks.append(asyncio.create_task(maintenance_loop(store, settings.maintenance), name="maintenance"))
            runtime.tasks.extend(_ble_tasks(runtime, clocks, ble_connector, ble_scanner))
            if watcher is not None:
                mqtt_decoder = decoders["mqtt"]
                assert isinstance(mqtt_decoder, MqttFrameDecoder)  # noqa: S101 - built just above
                runtime.tasks.append(
                    asyncio.create_task(_reload_templates(watcher, mqtt_decoder, source), name="template-reload")
                )
            for task in runtime.tasks:
                task.add_done_callback(_report_stop)
            stack.push_async_callback(_cancel, runtime.tasks)
            for extension in extensions:
                await stack.enter_async_context(extension(runtime))
            logger.info("PulseBridge %s ready", __version__)
            yield

    app = FastAPI(title="PulseBridge", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    install_audit_trail(app)
    install_dashboard(app, settings.dashboard)
    install_url_guard(app)
    for router in (
        audit_router, fhir_router, registry_router, health_router, admin_router, outbox_router, vitals_router, pairing_router,
        inbox_router, alerts_router, flags_router, consent_router, corrections_router, hubs_router,
    ):  # fmt: skip
        app.include_router(router)
    install_ingest(app, settings.ingest)
    return app


def _ble_tasks(
    runtime: Runtime, clocks: ClockBook, connector: Connector | None, scanner_factory: ScannerFactory | None
) -> list[asyncio.Task[None]]:
    """A session task for the devices this host keeps connected, a scanner for those that only advertise."""
    settings, pipeline = runtime.settings, runtime.pipeline
    tasks: list[asyncio.Task[None]] = []
    connected = [PairedDevice(device.device_id, device.address) for device in settings.ble.devices if device.connect]
    if connected:
        ble = BleSessionManager(
            connected,
            connector or _real_connector(),
            clocks,
            MemoryCursors(),
            set_clock=settings.ble.set_clock,
            transfer_timeout=settings.ble.transfer_timeout_seconds,
            on_device_information=runtime.store.update_device_information,
        )
        tasks.append(asyncio.create_task(_feed(ble, pipeline), name="ble-sessions"))
    broadcasting = {device.address: device.device_id for device in settings.ble.devices if device.advertisements}
    if broadcasting:
        scanner = AdvertisementScanner(broadcasting, scanner_factory or bleak_scanner)
        tasks.append(asyncio.create_task(_feed(scanner, pipeline), name="ble-advertisements"))
    return tasks


async def _reload_templates(watcher: TemplateWatcher, decoder: MqttFrameDecoder, source: MqttSource) -> None:
    """Mapping templates take effect without a restart: new mappings at once, new topics subscribed."""
    while True:
        await asyncio.sleep(TEMPLATE_POLL_SECONDS)
        loaded = watcher.poll()
        if loaded is not None:
            decoder.templates.templates = loaded
            await source.add_topic_filters([template.topic for template in loaded.templates])


def _report_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("%s stopped: ingest is down until the gateway restarts", task.get_name(), exc_info=task.exception())


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
