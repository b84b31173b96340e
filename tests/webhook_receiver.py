"""A small real HTTP/1.1 webhook receiver that checks PulseBridge signatures as a receiver would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson

from gateway.alerts.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, verify

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 503: "Service Unavailable"}


@dataclass
class WebhookReceiver:
    secret: bytes
    statuses: list[int] = field(default_factory=list)
    """Answers to give, in order, before answering 200 to everything."""
    accepted: list[dict[str, object]] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)
    """Every request's delivery id, retries included."""
    refused_signatures: int = 0
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/alerts"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.deliveries.append(headers.get(DELIVERY_HEADER.lower(), ""))
            if not verify(self.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body, time.time()):
                self.refused_signatures += 1
                status = 401
            else:
                status = self.statuses.pop(0) if self.statuses else 200
                if status == 200:
                    self.accepted.append(orjson.loads(body))
                    self.arrived.set()
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def webhook_receiver(secret: bytes, statuses: list[int] | None = None) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, list(statuses or []))
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver
