"""The alerts' share of the app lifespan: the engine, its sweep and the webhook sender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx

from device_adapters.errors import ConfigError
from edge_config.alert_settings import AlertSettings
from gateway.alerts.engine import AlertEngine
from gateway.alerts.rules import RuleError, check_rules
from gateway.alerts.webhook import WebhookSender, load_secret
from gateway.events import EventBus
from gateway.storage import ObservationStore


@dataclass(frozen=True, slots=True)
class AlertService:
    engine: AlertEngine
    webhooks: WebhookSender | None
    settings: AlertSettings

    def start(self) -> list[asyncio.Task[None]]:
        """The engine, the sweep and the webhook workers, for the lifespan to own (none when alerts are off)."""
        if not self.settings.enabled:
            return []
        tasks = [
            asyncio.create_task(self.engine.run(), name="alert-engine"),
            asyncio.create_task(self.engine.sweep_loop(), name="alert-sweep"),
        ]
        if self.webhooks is not None:
            tasks.append(asyncio.create_task(self.webhooks.run(), name="alert-webhooks"))
        return tasks


def check_alert_settings(settings: AlertSettings) -> bytes | None:
    """Fail fast (ConfigError, one line) on default rules naming unknown kinds or an unreadable webhook secret."""
    try:
        check_rules(settings.defaults)
    except RuleError as exc:
        msg = f"alerts.defaults: {exc}"
        raise ConfigError(msg) from exc
    if settings.webhooks.urls and settings.webhooks.secret_file is not None:
        return load_secret(settings.webhooks.secret_file)
    return None


@asynccontextmanager
async def alert_service(settings: AlertSettings, store: ObservationStore, events: EventBus) -> AsyncIterator[AlertService]:
    secret = check_alert_settings(settings)
    async with AsyncExitStack() as stack:
        sender = None
        if secret is not None:
            client = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
            sender = WebhookSender(settings.webhooks, client, secret)
        engine = AlertEngine(store, events, settings, None if sender is None else sender.offer)
        if settings.enabled:
            await engine.load()
        yield AlertService(engine, sender, settings)
