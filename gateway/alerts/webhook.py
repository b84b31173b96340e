"""Alert changes POSTed to webhook receivers, signed like Stripe's and GitHub's webhooks.

Each request carries the alert as JSON (``{"id": <delivery id>, "type": "alert.<status>",
"created": <unix seconds>, "alert": {…}}``) and the header::

    PulseBridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a full stop and the raw body bytes with the
shared secret, compares in constant time, and refuses a timestamp more than 5 minutes from its
clock (a replayed request). ``PulseBridge-Delivery`` repeats the delivery id: a retried request
has the same id (and a fresh signature), so a receiver can drop what it already handled.

Each receiver has its own bounded queue and worker (a receiver that is down never delays
another): 2xx is delivered; 408, 429, 5xx and transport errors are retried with capped
exponential back-off and jitter (``Retry-After`` is honoured within the cap) up to
``max_attempts``; any other answer is final. A full queue drops its oldest change.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from device_adapters.errors import ConfigError
from device_adapters.jsonwire import dumps
from edge_config.alert_settings import WebhookSettings
from gateway.alerts.flags import alert_json
from gateway.storage.alerts import AlertRecord

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "PulseBridge-Signature"
DELIVERY_HEADER = "PulseBridge-Delivery"
TOLERANCE_SECONDS = 300
_RETRIED = frozenset({408, 425, 429})


def load_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        msg = f"alerts.webhooks.secret_file: cannot read {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
    if len(secret) < 16:  # noqa: PLR2004 - a guessable secret signs nothing
        msg = f"alerts.webhooks.secret_file: {path} must hold a secret of at least 16 bytes"
        raise ConfigError(msg)
    return secret


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: a well-formed header, a fresh timestamp and a matching HMAC."""
    parts: dict[str, str] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, value)
    timestamp = parts.get("t", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance or "v1" not in parts:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), f"t={timestamp},v1={parts['v1']}")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    body: bytes


def delivery_for(record: AlertRecord) -> Delivery:
    delivery_id = str(uuid.uuid4())
    body = {"id": delivery_id, "type": f"alert.{record.status}", "created": int(time.time()), "alert": alert_json(record)}
    return Delivery(delivery_id, dumps(body))


@dataclass(slots=True)
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0


class WebhookSender:
    """Owned by the app lifespan: ``offer`` never waits; ``run`` works the queues until cancelled."""

    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient, secret: bytes) -> None:
        self._settings = settings
        self._client = client
        self._secret = secret
        self._queues: Mapping[str, asyncio.Queue[Delivery]] = {
            url: asyncio.Queue(maxsize=settings.queue_size) for url in settings.urls
        }
        self.stats = WebhookStats()

    def offer(self, record: AlertRecord) -> None:
        delivery = delivery_for(record)
        for url, queue in self._queues.items():
            if queue.full():
                queue.get_nowait()
                queue.task_done()
                self.stats.dropped += 1
                logger.warning("webhook queue for %s is full: its oldest alert change was dropped", url)
            queue.put_nowait(delivery)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for url, queue in self._queues.items():
                group.create_task(self._work(url, queue))

    async def drained(self) -> None:
        """Until every queued change was delivered or given up on (tests, shutdown)."""
        for queue in self._queues.values():
            await queue.join()

    async def _work(self, url: str, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(url, delivery)
            finally:
                queue.task_done()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        capped = min(self._settings.backoff_max_seconds, 0.5 * 2 ** (attempt - 1))
        wait = capped * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security
        return float(min(self._settings.backoff_max_seconds, max(wait, retry_after or 0.0)))

    async def _deliver(self, url: str, delivery: Delivery) -> None:
        for attempt in range(1, self._settings.max_attempts + 1):
            self.stats.attempts += 1
            retry_after: float | None = None
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, int(time.time()), delivery.body),
                DELIVERY_HEADER: delivery.id,
            }
            try:
                response = await self._client.post(
                    url, content=delivery.body, headers=headers, timeout=self._settings.timeout_seconds
                )
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}"
            else:
                if response.is_success:
                    self.stats.delivered += 1
                    return
                outcome = f"HTTP {response.status_code}"
                if response.status_code not in _RETRIED and response.status_code < 500:  # noqa: PLR2004 - server errors retry
                    break
                header = response.headers.get("Retry-After", "")
                retry_after = float(header) if header.isdigit() else None
            if attempt < self._settings.max_attempts:
                await asyncio.sleep(self.backoff(attempt, retry_after))
        self.stats.failed += 1
        logger.warning("webhook %s: alert change %s not delivered (%s)", url, delivery.id, outcome)
