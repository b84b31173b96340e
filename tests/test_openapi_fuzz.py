"""Schemathesis against the running gateway's OpenAPI schema, with a valid administrator's token.

Every operation is called with generated parameters and bodies; each answer must be no server
error, conform to the schema (status codes, content types, headers, bodies), and a call
without the token must be refused (no ignored authentication). Schemathesis's "schema-valid
data is accepted" check is left out: FHIR search parameters are read by the search parser
from the query string rather than declared per route, so the schema cannot say that
``$lastn`` needs ``patient`` (the parser answers 400 for that, as FHIR asks).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Ok

from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings
from fhir_mapper.observation import Attribution, map_reading
from gateway.auth.tokens import Role
from gateway.storage import open_store
from tests.conftest import truncate
from tests.services import GatewayProcess, mosquitto

TOKEN: dict[str, str] = {}
"""An administrator's: every read and operation."""
DEVICE_TOKEN: dict[str, str] = {}
"""The seeded watch's: the ingest routes take devices only."""
INGEST = frozenset({"/fhir/Observation", "/fhir", "/api/v1/ingest/senml"})


async def _seed(url: str) -> None:
    await truncate(url)
    store = await open_store(DatabaseSettings(url=url))
    try:
        await store.add_patient("fuzz-a", "Ada", "MRN-F")
        device = await store.add_device("fuzz-watch", "watch", None)
        await store.assign_device("fuzz-watch", "fuzz-a", None)
        at = datetime(2026, 11, 20, tzinfo=UTC)
        reading = Reading("fuzz-watch", "heart_rate", at, quantity=Quantity(Decimal(70), "/min"))
        await store.write_batch(
            [map_reading(reading, Attribution("fuzz-a", device.resource_id, "fuzz-watch"), at, source="mqtt")], []
        )
    finally:
        await store.close()


@pytest.fixture(scope="module")
def api_schema(timescale_url: str) -> Iterator[schemathesis.BaseSchema]:
    asyncio.run(_seed(timescale_url))
    with tempfile.TemporaryDirectory() as folder, mosquitto(Path(folder)) as broker:
        gateway = GatewayProcess(
            Path(folder),
            {"PULSEBRIDGE_DATABASE__URL": timescale_url, "PULSEBRIDGE_MQTT__PORT": str(broker),
             "PULSEBRIDGE_MQTT__CLIENT_ID": "fuzz-gateway", "PULSEBRIDGE_MAINTENANCE__ENABLED": "false",
             # A live stream of the seeded patient answers for this long before it ends.
             "PULSEBRIDGE_DASHBOARD__STREAM_SECONDS": "5"},
        )  # fmt: skip
        gateway.start()
        try:
            gateway.wait_healthy()
            TOKEN["Authorization"] = f"Bearer {gateway.token()}"
            DEVICE_TOKEN["Authorization"] = f"Bearer {gateway.token(Role.DEVICE, 'system/Observation.c', subject='fuzz-watch')}"
            yield schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
        finally:
            gateway.stop()


def test_no_server_errors_no_schema_violations_no_ignored_authentication(api_schema: schemathesis.BaseSchema) -> None:
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself must load whole
        operations.append(result.ok())
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
        def call(case: schemathesis.Case[Any]) -> None:
            device_route = case.method == "POST" and case.path in INGEST
            case.call_and_validate(headers=DEVICE_TOKEN if device_route else TOKEN, excluded_checks=[positive_data_acceptance])

        call()
