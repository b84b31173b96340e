"""FHIR search through the HTTP API, on TimescaleDB and on SQLite.

The in-process gateway's client validates every Bundle and resource it receives
(:mod:`tests.fhir_checks`), so each request below is also a validation test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.storage import ObservationStore, open_store
from tests.conftest import truncate
from tests.fhir_checks import check_fhir_response
from tests.gateway_support import running_gateway

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
R0 = datetime(2026, 11, 23, tzinfo=UTC)
UNITS = {"heart_rate": "/min", "pulse_rate": "/min", "spo2": "%", "body_weight": "kg", "steps": "{steps}"}
Params = Sequence[tuple[str, str]]


@dataclass
class Api:
    http: httpx.AsyncClient
    store: ObservationStore

    async def get(self, path: str, params: Params = (), *, strict: bool = False, status: int = 200) -> dict[str, Any]:
        headers = {"Prefer": "handling=strict"} if strict else {}
        response = await self.http.get(f"/fhir/{path}", params=tuple(params), headers=headers)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def keys(self, params: Params, path: str = "Observation") -> list[str]:
        bundle = await self.get(path, params)
        return [entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]


@pytest.fixture(params=["timescale", "sqlite"])
async def api(request: pytest.FixtureRequest, tmp_path: Path, broker_port: int) -> AsyncIterator[Api]:
    if request.param == "timescale":
        url = request.getfixturevalue("timescale_url")
        await truncate(url)
    else:
        url = f"sqlite:///{tmp_path / 'search.db'}"
    settings = GatewaySettings(
        database=DatabaseSettings(url=url), mqtt=MqttSettings(port=broker_port, client_id=f"search-{request.param}")
    )
    async with running_gateway(settings) as http:
        store = await open_store(DatabaseSettings(url=url))
        try:
            yield Api(http, store)
        finally:
            await store.close()


def _reading(patient: str, device: uuid.UUID, kind: str, at: datetime, value: int, *, received: datetime) -> MappedObservation:
    reading = Reading(f"dev-{device}", kind, at, quantity=Quantity(Decimal(value), UNITS[kind]))
    return map_reading(reading, Attribution(patient, device, f"dev-{device}"), received, source="mqtt")


@dataclass
class Seeded:
    hours: list[MappedObservation]
    """pat-a's heart rates at T0 + 0..5 h (odd hours from the cuff), received R0 + 0..5 days."""
    old: MappedObservation
    weight: MappedObservation
    spo2: MappedObservation
    steps: MappedObservation
    other: MappedObservation
    cuff: uuid.UUID


async def _seed(store: ObservationStore) -> Seeded:
    cuff, watch = uuid.uuid4(), uuid.uuid4()
    hours = [
        _reading(
            "pat-a", cuff if h % 2 else watch, "heart_rate", T0 + timedelta(hours=h), 60 + h, received=R0 + timedelta(days=h)
        )
        for h in range(6)
    ]
    seeded = Seeded(
        hours,
        old=_reading("pat-a", watch, "heart_rate", T0 - timedelta(days=60), 58, received=R0),
        weight=_reading("pat-a", watch, "body_weight", T0 + timedelta(minutes=30), 70, received=R0),
        spo2=_reading("pat-a", watch, "spo2", T0 + timedelta(minutes=40), 97, received=R0),
        steps=_reading("pat-a", watch, "steps", T0 + timedelta(minutes=50), 1000, received=R0),
        other=_reading("pat-b", cuff, "heart_rate", T0, 90, received=R0),
        cuff=cuff,
    )
    await store.write_batch([*hours, seeded.old, seeded.weight, seeded.spo2, seeded.steps, seeded.other], [])
    return seeded


def _hours(seeded: Seeded, *indexes: int) -> set[str]:
    return {seeded.hours[h].key for h in indexes}


async def test_date_prefixes_on_the_effective_time(api: Api) -> None:
    seeded = await _seed(api.store)
    hr = [("patient", "pat-a"), ("code", "8867-4")]
    ten = "2026-11-22T10:00"  # hour 2
    expected = {
        ("date", "2026-11-22"): _hours(seeded, 0, 1, 2, 3, 4, 5),
        ("date", f"eq{ten}"): _hours(seeded, 2),
        ("date", f"ne{ten}"): _hours(seeded, 0, 1, 3, 4, 5) | {seeded.old.key},
        ("date", f"gt{ten}"): _hours(seeded, 3, 4, 5),
        ("date", f"sa{ten}"): _hours(seeded, 3, 4, 5),
        ("date", f"ge{ten}"): _hours(seeded, 2, 3, 4, 5),
        ("date", f"lt{ten}"): _hours(seeded, 0, 1) | {seeded.old.key},
        ("date", f"eb{ten}"): _hours(seeded, 0, 1) | {seeded.old.key},
        ("date", f"le{ten}"): _hours(seeded, 0, 1, 2) | {seeded.old.key},
        # ap: 10% of the gap to now around the value, which reaches the neighbouring hours but not 60 days back.
        ("date", f"ap{ten}"): _hours(seeded, 0, 1, 2, 3, 4, 5),
        ("date", "2026-11-22T09:00:00+01:00"): _hours(seeded, 0),
    }
    for param, keys in expected.items():
        assert set(await api.keys([*hr, param])) == keys, param
    window = [*hr, ("date", "ge2026-11-22T09:00"), ("date", "lt2026-11-22T12:00")]
    assert set(await api.keys(window)) == _hours(seeded, 1, 2, 3)


async def test_search_parameters(api: Api) -> None:
    seeded = await _seed(api.store)
    a = [("patient", "pat-a")]
    everything_a = _hours(seeded, 0, 1, 2, 3, 4, 5) | {seeded.old.key, seeded.weight.key, seeded.spo2.key, seeded.steps.key}
    cases: dict[str, tuple[Params, set[str]]] = {
        "patient": (a, everything_a),
        "subject": ([("subject", "Patient/pat-b")], {seeded.other.key}),
        "code system|code": ([*a, ("code", "http://loinc.org|29463-7")], {seeded.weight.key}),
        "code OR": ([*a, ("code", "29463-7,urn:iso:std:iso:11073:10101|150456")], {seeded.weight.key, seeded.spo2.key}),
        "code no system": ([*a, ("code", "|8867-4")], set()),
        "category": ([*a, ("category", "vital-signs")], everything_a - {seeded.steps.key}),
        "category system": (
            [*a, ("category", "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories|phd")],
            everything_a,
        ),
        "device": ([("device", f"Device/{seeded.cuff}")], _hours(seeded, 1, 3, 5) | {seeded.other.key}),
        "device id": ([*a, ("device", str(seeded.cuff))], _hours(seeded, 1, 3, 5)),
        "identifier": ([("identifier", f"urn:ietf:rfc:3986|urn:uuid:{seeded.weight.key}")], {seeded.weight.key}),
        "identifier value": ([("identifier", f"urn:uuid:{seeded.spo2.key}")], {seeded.spo2.key}),
        "_lastUpdated": ([*a, ("_lastUpdated", "ge2026-11-26")], _hours(seeded, 3, 4, 5)),
        "_lastUpdated ne": ([*a, ("code", "8867-4"), ("_lastUpdated", "ne2026-11-23")], _hours(seeded, 1, 2, 3, 4, 5)),
    }
    for name, (params, keys) in cases.items():
        found = await api.keys(params)
        assert len(found) == len(set(found)), name
        assert set(found) == keys, name

    oldest_first = await api.keys([*a, ("code", "8867-4"), ("_sort", "date")])
    assert oldest_first == [seeded.old.key, *(o.key for o in seeded.hours)]
    assert await api.keys([*a, ("code", "8867-4"), ("_sort", "-date")]) == oldest_first[::-1]

    served = (await api.get("Observation", [("identifier", f"urn:uuid:{seeded.hours[4].key}")]))["entry"][0]["resource"]
    assert served["meta"]["lastUpdated"] == "2026-11-27T00:00:00.000000Z"
    assert served["issued"].startswith("2026-11-27T00:00:00")
    read = await api.get(f"Observation/{seeded.hours[4].key}")
    assert read["meta"]["lastUpdated"] == served["meta"]["lastUpdated"]


async def test_totals_and_summary_count(api: Api) -> None:
    await _seed(api.store)
    a = [("patient", "pat-a")]
    counted = await api.get("Observation", [*a, ("_summary", "count")])
    assert counted["total"] == 10
    assert "entry" not in counted
    assert (await api.get("Observation", [*a, ("_count", "0")]))["total"] == 10
    first = await api.get("Observation", [*a, ("_count", "3")])
    assert "total" not in first  # more pages follow: counting them is asked for with _total=accurate
    assert len(first["entry"]) == 3
    assert (await api.get("Observation", [*a, ("_count", "3"), ("_total", "accurate")]))["total"] == 10
    assert (await api.get("Observation", [*a, ("code", "29463-7")]))["total"] == 1  # one page holds all: free
    assert "total" not in await api.get("Observation", [*a, ("code", "29463-7"), ("_total", "none")])


async def test_unknown_unsupported_and_bad_parameters(api: Api) -> None:
    await _seed(api.store)
    for params in ([("colour", "red")], [("_sort", "value")], [("_summary", "text")]):
        lenient = await api.get("Observation", [("patient", "pat-a"), *params])
        outcome = lenient["entry"][-1]
        assert outcome["search"]["mode"] == "outcome"
        assert outcome["resource"]["issue"][0]["severity"] == "warning"
        self_link = next(link["url"] for link in lenient["link"] if link["relation"] == "self")
        assert params[0][0] not in self_link  # the self link names only what the search used
        refused = await api.get("Observation", params, strict=True, status=400)
        assert refused["issue"][0]["code"] == "not-supported"
    for modifier in ("code:text", "code:not", "date:missing", "patient:identifier"):
        for strict in (False, True):  # ignoring a modifier would change the question: refused either way
            refused = await api.get("Observation", [("patient", "pat-a"), (modifier, "x")], strict=strict, status=400)
            assert refused["issue"][0]["code"] == "not-supported"
            assert f":{modifier.partition(':')[2]} modifier is not supported" in refused["issue"][0]["diagnostics"]
    for params in (
        [("date", "2026-13-01")],
        [("date", "xx2026")],
        [("_count", "-5")],
        [("_lastUpdated", "tomorrow")],
        [("_cursor", "%%%")],
    ):
        bad = await api.get("Observation", params, status=400)
        assert bad["issue"][0]["code"] == "invalid"
    capped = await api.get("Observation", [("_count", "100000")])
    assert capped["entry"][-1]["resource"]["issue"][0]["severity"] == "information"
    assert (await api.get("Observation/$lastn", [("code", "8867-4")], status=400))["resourceType"] == "OperationOutcome"


async def test_paging_through_ten_thousand_results(api: Api) -> None:
    device = uuid.uuid4()
    received = T0 + timedelta(days=1)
    # Pairs share an effective time, so pages also break ties on the reading key.
    batch = [
        _reading("pager", device, ("heart_rate", "pulse_rate")[i % 2], T0 + timedelta(seconds=i // 2), 60, received=received)
        for i in range(10_000)
    ]
    result = await api.store.write_batch(batch, [])
    assert result.inserted == 10_000
    for order in ("-date", "date"):
        seen: list[str] = []
        effective: list[str] = []
        bundle = await api.get("Observation", [("patient", "pager"), ("_count", "1000"), ("_sort", order)])
        pages = 1
        while True:
            seen += [entry["resource"]["id"] for entry in bundle["entry"]]
            effective += [entry["resource"]["effectiveDateTime"] for entry in bundle["entry"]]
            following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            if not following:
                break
            assert "_cursor=" in following[0]
            response = await api.http.get(following[0])
            bundle = response.json()
            pages += 1
        assert pages == 10
        assert len(seen) == len(set(seen)) == 10_000
        assert set(seen) == {o.key for o in batch}
        assert effective == sorted(effective, reverse=order == "-date")


async def test_lastn_is_latest_by_effective_time_not_arrival(api: Api) -> None:
    device = uuid.uuid4()
    # Arrival order reversed: the newest reading by effective time arrives first.
    arrivals = [(5, R0), (1, R0 + timedelta(hours=1)), (3, R0 + timedelta(hours=2))]
    for hour, received in arrivals:
        await api.store.write_batch(
            [
                _reading("pat-l", device, kind, T0 + timedelta(hours=hour), 60 + hour, received=received)
                for kind in ("heart_rate", "spo2", "steps")
            ],
            [],
        )
    await api.store.write_batch([_reading("pat-other", device, "heart_rate", T0 + timedelta(hours=9), 99, received=R0)], [])

    def effective(bundle: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((e["resource"]["code"]["coding"][0]["code"], e["resource"]["effectiveDateTime"]) for e in bundle["entry"])

    latest = await api.get("Observation/$lastn", [("patient", "pat-l"), ("category", "vital-signs")])
    assert effective(latest) == [("2708-6", "2026-11-22T13:00:00+00:00"), ("8867-4", "2026-11-22T13:00:00+00:00")]
    assert latest["total"] == 2
    two = await api.get("Observation/$lastn", [("subject", "Patient/pat-l"), ("code", "8867-4"), ("max", "2")])
    assert effective(two) == [("8867-4", "2026-11-22T11:00:00+00:00"), ("8867-4", "2026-11-22T13:00:00+00:00")]
    every_kind = await api.get("Observation/$lastn", [("patient", "pat-l")])
    assert len(every_kind["entry"]) == 3  # steps too: no category asked for
    before = await api.get("Observation/$lastn", [("patient", "pat-l"), ("code", "8867-4"), ("date", "lt2026-11-22T12:00")])
    assert effective(before) == [("8867-4", "2026-11-22T11:00:00+00:00")]
    assert "entry" not in await api.get("Observation/$lastn", [("patient", "nobody")])


async def test_patient_and_device_read_and_search(api: Api) -> None:
    store = api.store
    await store.add_patient("pat-ada", "Ada Lovelace", "MRN-1")
    await store.add_patient("pat-bob", "Bob Babbage", "MRN-2")
    cuff = await store.add_device("cuff-1", "blood pressure monitor", "Ada's cuff")
    scale = await store.add_device("scale-1", "scale", None)
    await store.update_device_information(
        "cuff-1", {"manufacturer": "Omron", "model": "HEM-7155T", "serial_number": "S1", "firmware": "1.2"}
    )
    await store.assign_device("cuff-1", "pat-ada", None)
    await store.assign_device("scale-1", "pat-bob", None)

    await store.add_patient_identifier("pat-ada", "urn:oid:1.2.36.146.595.217.0.1", "EHR-77")
    ada = await api.get("Patient/pat-ada")
    assert ada["name"] == [{"text": "Ada Lovelace"}]
    assert [(i["system"], i["value"]) for i in ada["identifier"]] == [
        ("https://pulsebridge.dev/fhir/mrn", "MRN-1"),
        ("urn:oid:1.2.36.146.595.217.0.1", "EHR-77"),  # the MRN an EHR knows her by
    ]
    assert (await api.get("Patient", [("_id", "pat-ada")]))["entry"][0]["resource"]["identifier"] == ada["identifier"]
    assert (await api.get("Patient/nobody", status=404))["resourceType"] == "OperationOutcome"
    assert await api.keys([("identifier", "MRN-2")], "Patient") == ["pat-bob"]
    assert await api.keys([("identifier", "https://pulsebridge.dev/fhir/mrn|MRN-1")], "Patient") == ["pat-ada"]
    assert await api.keys([("name", "babb")], "Patient") == ["pat-bob"]
    assert await api.keys([("_id", "pat-ada,pat-bob"), ("name", "ada")], "Patient") == ["pat-ada"]
    first = await api.get("Patient", [("_count", "1")])
    assert [e["resource"]["id"] for e in first["entry"]] == ["pat-ada"]
    (following,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    assert [e["resource"]["id"] for e in (await api.http.get(following)).json()["entry"]] == ["pat-bob"]

    device = await api.get(f"Device/{cuff.resource_id}")
    assert device["manufacturer"] == "Omron"
    assert device["serialNumber"] == "S1"
    assert device["patient"] == {"reference": "Patient/pat-ada"}
    assert (await api.get(f"Device/{uuid.uuid4()}", status=404))["resourceType"] == "OperationOutcome"
    assert await api.keys([("patient", "Patient/pat-bob")], "Device") == [str(scale.resource_id)]
    assert await api.keys([("identifier", "https://pulsebridge.dev/fhir/device-id|cuff-1")], "Device") == [str(cuff.resource_id)]
    assert await api.keys([("identifier", "scale-1")], "Device") == [str(scale.resource_id)]
    assert await api.keys([("_id", str(cuff.resource_id))], "Device") == [str(cuff.resource_id)]
    refused = await api.get("Device", [("name", "cuff")], strict=True, status=400)
    assert refused["resourceType"] == "OperationOutcome"


async def test_capability_statement_names_search_and_lastn(api: Api) -> None:
    statement = await api.get("metadata")
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Observation", "Patient", "Device", "Flag"}
    assert {p["name"] for p in resources["Flag"]["searchParam"]} == {"patient", "_count"}
    observation = resources["Observation"]
    assert {p["name"] for p in observation["searchParam"]} >= {
        "patient",
        "code",
        "date",
        "category",
        "device",
        "identifier",
        "_lastUpdated",
    }
    assert observation["operation"][0]["name"] == "lastn"


def test_the_response_check_refuses_an_invalid_bundle() -> None:
    bad = httpx.Response(
        200,
        headers={"content-type": "application/fhir+json"},
        json={"resourceType": "Bundle", "type": "searchset", "total": "many"},
    )
    with pytest.raises(pydantic.ValidationError):
        check_fhir_response(bad)
    check_fhir_response(httpx.Response(200, headers={"content-type": "text/plain"}, text="not FHIR"))
