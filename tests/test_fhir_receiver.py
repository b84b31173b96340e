"""The test EHR's conditional update (``PUT Observation?identifier=system|value``) in transaction and batch Bundles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from device_adapters.readings import Quantity, Reading
from fhir_mapper.identity import IDENTIFIER_SYSTEM
from fhir_mapper.observation import Attribution, map_reading
from tests.fhir_receiver import FhirReceiver

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
async def receiver() -> AsyncIterator[FhirReceiver]:
    async with FhirReceiver() as started:
        yield started


def _observation(minute: int, value: int = 70, status: str = "final") -> dict[str, Any]:
    reading = Reading("watch-1", "heart_rate", T0.replace(minute=minute), quantity=Quantity(Decimal(value), "/min"))
    resource: dict[str, Any] = orjson.loads(
        map_reading(reading, Attribution("ada", uuid.UUID(int=1), "watch-1"), T0, source="mqtt").resource
    )
    resource["status"] = status
    return resource


def _identifier(resource: dict[str, Any]) -> tuple[str, str]:
    return IDENTIFIER_SYSTEM, resource["identifier"][0]["value"]


def _create(resource: dict[str, Any]) -> dict[str, Any]:
    system, value = _identifier(resource)
    return {
        "resource": resource,
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier={system}|{value}"},
    }


def _update(resource: dict[str, Any], *, keep_id: bool = False, encode: bool = False) -> dict[str, Any]:
    system, value = _identifier(resource)
    condition = f"{system}|{value}"
    body = resource if keep_id else {key: member for key, member in resource.items() if key != "id"}
    return {
        "resource": body,
        "request": {"method": "PUT", "url": f"Observation?identifier={quote(condition) if encode else condition}"},
    }


async def _post(receiver: FhirReceiver, kind: str, *entries: dict[str, Any]) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": list(entries)}
    async with httpx.AsyncClient(base_url=receiver.base_url) as http:
        return await http.post("/", content=orjson.dumps(bundle), headers={"Content-Type": "application/fhir+json"})


def _statuses(response: httpx.Response) -> list[str]:
    return [entry["response"]["status"] for entry in response.json()["entry"]]


async def test_capabilities_say_conditional_update(receiver: FhirReceiver) -> None:
    async with httpx.AsyncClient(base_url=receiver.base_url) as http:
        statement = (await http.get("/metadata")).json()
    [observation] = statement["rest"][0]["resource"]
    assert observation["conditionalUpdate"] is True
    assert {"code": "update"} in observation["interaction"]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_an_update_replaces_the_match_or_creates_when_none_matches(receiver: FhirReceiver, kind: str) -> None:
    first, second = _observation(0), _observation(1)
    created = await _post(receiver, kind, _create(first))
    assert _statuses(created) == ["201 Created"]
    stored_id = receiver.observations[_identifier(first)]["id"]

    amended = {**_observation(0, 64, "amended"), "note": [{"text": "Amended from 70 to 64: typo"}]}
    answer = await _post(receiver, kind, _update(amended), _update(second, encode=True))
    assert answer.status_code == 200
    assert answer.json()["type"] == f"{kind}-response"
    assert _statuses(answer) == ["200 OK", "201 Created"]
    assert answer.json()["entry"][0]["response"]["location"] == f"Observation/{stored_id}/_history/2"
    updated = receiver.observations[_identifier(first)]
    assert (updated["id"], updated["status"], updated["valueQuantity"]["value"]) == (stored_id, "amended", 64)
    assert receiver.observations[_identifier(second)]["status"] == "final"
    assert receiver.handled == [
        ("POST", _identifier(first), 201), ("PUT", _identifier(first), 200), ("PUT", _identifier(second), 201),
    ]  # fmt: skip

    # Sent again (a lost response): the same update, harmlessly.
    again = await _post(receiver, kind, _update(amended))
    assert _statuses(again) == ["200 OK"]
    assert receiver.versions[stored_id] == 3
    assert len(receiver.observations) == 2


async def test_several_matches_are_a_412_for_that_entry_of_a_batch(receiver: FhirReceiver) -> None:
    twice, fine = _observation(0), _observation(1)
    receiver.add_unconditionally(twice)
    receiver.add_unconditionally(twice)
    answer = await _post(receiver, "batch", _update(twice), _update(fine), _create(twice))
    assert _statuses(answer) == ["412", "201 Created", "412"]
    assert answer.json()["entry"][0]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert list(receiver.observations) == [_identifier(fine)]


async def test_a_transaction_fails_whole_on_several_matches_or_overlapping_entries(receiver: FhirReceiver) -> None:
    twice, fine = _observation(0), _observation(1)
    receiver.add_unconditionally(twice)
    receiver.add_unconditionally(twice)
    assert (await _post(receiver, "transaction", _update(fine), _update(twice))).status_code == 412
    overlap = await _post(receiver, "transaction", _create(fine), _update(fine))
    assert overlap.status_code == 400
    assert "overlap" in overlap.json()["issue"][0]["diagnostics"]
    assert receiver.observations == {}


async def test_an_update_must_not_name_another_resource(receiver: FhirReceiver) -> None:
    reading = _observation(0)
    await _post(receiver, "batch", _create(reading))
    refused = await _post(receiver, "batch", _update(reading, keep_id=True))  # PulseBridge's id is not the EHR's
    assert _statuses(refused) == ["400"]
    assert "id" in refused.json()["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
    stored_id = receiver.observations[_identifier(reading)]["id"]
    own_id = await _post(receiver, "batch", _update({**reading, "id": stored_id}, keep_id=True))
    assert _statuses(own_id) == ["200 OK"]


@pytest.mark.parametrize(
    "url",
    [
        "Observation",
        "Observation?identifier=no-bar",
        "Observation?identifier=a|b&status=final",
        "Patient?identifier=a|b",
        "Observation?==",
    ],
)
async def test_a_malformed_conditional_update_is_refused(receiver: FhirReceiver, url: str) -> None:
    entry = _update(_observation(0))
    entry["request"]["url"] = url
    answer = await _post(receiver, "batch", entry)
    assert _statuses(answer) == ["400"]
    condition = _update(_observation(1))
    condition["request"]["url"] = "Observation?identifier=urn:ietf:rfc:3986|urn:uuid:" + str(uuid.uuid4())
    assert _statuses(await _post(receiver, "batch", condition)) == ["400"]  # names an identifier the resource does not carry
