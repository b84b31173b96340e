"""Running the gateway app in the test process, and counting what it stored.

Every FHIR answer the in-process client receives is validated (:mod:`tests.fhir_checks`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from edge_config import GatewaySettings
from gateway.app import create_app
from gateway.auth.tokens import Role
from tests.fhir_checks import check_fhir_response_async
from tests.services import ADMIN_SCOPE


async def stored_counts(url: str) -> tuple[int, int]:
    """(rows, distinct reading keys) in the observations table: equal when nothing was stored twice."""
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow("SELECT count(*) AS rows, count(DISTINCT reading_key) AS keys FROM observations")
        assert row is not None
        return row["rows"], row["keys"]
    finally:
        await connection.close()


def bearer(
    app: FastAPI, role: Role = Role.ADMIN, scope: str = ADMIN_SCOPE, patient_id: str | None = None, *, subject: str | None = None
) -> dict[str, str]:
    """An Authorization header with a token of the running app's own issuer."""
    token = app.state.runtime.auth.local.issue(subject or f"test-{role}", role, scope, patient_id=patient_id)
    return {"Authorization": f"Bearer {token}"}


def app_of(http: httpx.AsyncClient) -> FastAPI:
    """The app behind an in-process client of :func:`running_gateway`."""
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    assert isinstance(transport.app, FastAPI)
    return transport.app


@asynccontextmanager
async def running_gateway(settings: GatewaySettings, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan (store, MQTT source, pipeline) and an HTTP client, once the broker is up.

    The client carries an administrator's token; :func:`app_of` gives the app, for :func:`bearer`.
    """
    app = create_app(settings, **app_options)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", event_hooks={"response": [check_fhir_response_async]}
        ) as http,
    ):
        http.headers.update(bearer(app))
        async with asyncio.timeout(10):
            while (await http.get("/healthz")).json()["broker"]["status"] != "up":
                await asyncio.sleep(0.02)
        yield http
