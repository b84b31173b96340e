"""A gateway with EHR destinations, two patients, a care team and a caregiver: the consent and correction API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from device_adapters.readings import Delivery, RawFrame
from edge_config import DatabaseSettings, DestinationSettings, GatewaySettings, MqttSettings
from gateway.auth.tokens import Role
from gateway.runtime import Runtime
from gateway.storage import ObservationStore
from tests.gateway_support import app_of, bearer, running_gateway

DESTINATIONS = [
    DestinationSettings(name="ehr-a", base_url="https://a.example/fhir"),
    DestinationSettings(name="ehr-b", base_url="https://b.example/fhir", patients=["pat-b"]),
    DestinationSettings(name="ehr-r", base_url="https://r.example/fhir", consent="required"),
]
# identity -> (role, scopes, patient in context)
IDENTITIES: dict[str, tuple[Role, str, str | None]] = {
    "pat-a": (Role.PATIENT, "patient/Consent.rus patient/Observation.rus", "pat-a"),
    "carer-1": (Role.CAREGIVER, "user/Consent.rus user/Observation.rus", None),
    "dr-1": (Role.PRACTITIONER, "user/Consent.rus user/Observation.rus", None),
    "admin": (Role.ADMIN, "user/*.cruds", None),
    "system": (Role.SYSTEM, "system/*.cruds", None),
    "device": (Role.DEVICE, "system/*.cruds", None),
}


async def seed(store: ObservationStore) -> None:
    for patient in ("pat-a", "pat-b"):
        await store.add_patient(patient, None, None)
        await store.add_device(f"watch-{patient}", "watch", None)
        await store.assign_device(f"watch-{patient}", patient, None)
    for account, role in (("dr-1", "practitioner"), ("dr-2", "practitioner"), ("carer-1", "caregiver")):
        await store.add_account(account, role, None, None)
    await store.add_care_team("team-1", "Cardiology")
    await store.add_care_team_member("team-1", "dr-1")
    await store.add_care_team_patient("team-1", "pat-a")
    await store.delegate("pat-a", "carer-1")


async def gateway_with_destinations(url: str, broker_port: int, client_id: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        database=DatabaseSettings(url=url), mqtt=MqttSettings(port=broker_port, client_id=client_id), destinations=DESTINATIONS
    )
    async with running_gateway(settings) as http:
        yield http


def headers(http: httpx.AsyncClient, identity: str | None, scope: str | None = None) -> dict[str, str]:
    if identity is None:
        return {"Authorization": ""}
    role, scopes, context = IDENTITIES[identity]
    return bearer(app_of(http), role, scope or scopes, context, subject=identity)


def runtime(http: httpx.AsyncClient) -> Runtime:
    value: Runtime = app_of(http).state.runtime
    return value


async def ingest(http: httpx.AsyncClient, patient: str, *readings: dict[str, Any]) -> None:
    """Readings from the patient's watch through the gateway's own pipeline (destinations and consent apply)."""
    payload = orjson.dumps(list(readings))
    frame = RawFrame("mqtt", f"pulsebridge/v1/devices/watch-{patient}/readings", payload, datetime.now(UTC))
    await runtime(http).pipeline.store_until_committed([Delivery(frame, lambda: None)])


async def queued(http: httpx.AsyncClient) -> dict[tuple[str, str], int]:
    return {(count.destination, count.status): count.count for count in await runtime(http).store.outbox_status()}
