"""FHIR search parameters -> store queries (pure: no store, no HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_config import ApiSettings
from fhir_mapper.catalogue import CATALOGUE
from fhir_mapper.resources import ResourceCapability
from gateway.api.search import (
    InstantFilter,
    SearchError,
    UnsupportedModifierError,
    UnsupportedSearchError,
    decode_observation_cursor,
    encode_observation_cursor,
    instant_filter,
    parse_device_search,
    parse_last_n,
    parse_observation_search,
    parse_patient_search,
)
from gateway.api.search.capability import DEVICE, OBSERVATION, PATIENT
from gateway.api.search.observation import SEARCH_PARAMETERS
from gateway.api.search.registry import DEVICE_PARAMETERS, PATIENT_PARAMETERS
from gateway.storage import TimeCondition, TimeSpan

API = ApiSettings(default_count=50, max_count=100)
NOW = datetime(2026, 11, 30, tzinfo=UTC)
DAY = TimeSpan(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
VITAL_SIGNS = frozenset(kind.name for kind in CATALOGUE.values() if kind.vital_sign)


def _day(*conditions: TimeCondition) -> InstantFilter:
    return InstantFilter(conditions)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22", _day(TimeCondition(">=", DAY.start), TimeCondition("<", DAY.end))),
        ("eq2026-11-22", _day(TimeCondition(">=", DAY.start), TimeCondition("<", DAY.end))),
        ("ne2026-11-22", InstantFilter(excluded=(DAY,))),
        ("gt2026-11-22", _day(TimeCondition(">=", DAY.end))),
        ("sa2026-11-22", _day(TimeCondition(">=", DAY.end))),
        ("lt2026-11-22", _day(TimeCondition("<", DAY.start))),
        ("eb2026-11-22", _day(TimeCondition("<", DAY.start))),
        ("ge2026-11-22", _day(TimeCondition(">=", DAY.start))),
        ("le2026-11-22", _day(TimeCondition("<", DAY.end))),
        # ap: widened by 10% of the 8 days between the value and now.
        (
            "ap2026-11-22",
            _day(TimeCondition(">=", DAY.start - timedelta(hours=19.2)), TimeCondition("<", DAY.end + timedelta(hours=19.2))),
        ),
        (
            "2026",
            _day(TimeCondition(">=", datetime(2026, 1, 1, tzinfo=UTC)), TimeCondition("<", datetime(2027, 1, 1, tzinfo=UTC))),
        ),
        ("le2026-12", _day(TimeCondition("<", datetime(2027, 1, 1, tzinfo=UTC)))),
        ("sa2026-11-22T10:00", _day(TimeCondition(">=", datetime(2026, 11, 22, 10, 1, tzinfo=UTC)))),
        ("eb2026-11-22T10:00:00+01:00", _day(TimeCondition("<", datetime(2026, 11, 22, 9, tzinfo=UTC)))),
        (
            "2026-11-22T10:00:00.5Z",
            _day(
                TimeCondition(">=", datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)),
                TimeCondition("<", datetime(2026, 11, 22, 10, 0, 0, 600000, tzinfo=UTC)),
            ),
        ),
    ],
)
def test_date_prefixes_and_precision(value: str, expected: InstantFilter) -> None:
    assert instant_filter("date", value, NOW) == expected


def test_time_zone_of_search_value_is_respected() -> None:
    (condition,) = instant_filter("date", "ge2026-11-22T10:00:00-05:00", NOW).conditions
    assert condition.instant == datetime(2026, 11, 22, 10, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize("value", ["2026-13", "xx2026", "yesterday", "2026-02-30", "2026-11-22T25:00", "ge"])
def test_bad_dates(value: str) -> None:
    with pytest.raises(SearchError):
        instant_filter("date", value, NOW)


def test_parse_full_search() -> None:
    device, key = uuid.uuid4(), uuid.uuid4()
    search = parse_observation_search(
        [("patient", "Patient/p-1"), ("code", "http://loinc.org|8867-4,85354-9"), ("date", "ge2026-11-01"), ("date", "ne2026-11-05"),
         ("category", "vital-signs"), ("device", f"Device/{device}"), ("identifier", f"urn:ietf:rfc:3986|urn:uuid:{key}"),
         ("_lastUpdated", "gt2026-11-29"), ("_count", "500"), ("_sort", "date"), ("color", "blue"), ("_total", "accurate")],
        API, strict=False, now=NOW,
    )  # fmt: skip
    query = search.query
    assert query.patient_id == "p-1"
    assert query.kinds == frozenset({"heart_rate", "pulse_rate", "blood_pressure"})
    assert query.time == (TimeCondition(">=", datetime(2026, 11, 1, tzinfo=UTC)),)
    assert query.time_excluded == (TimeSpan(datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC)),)
    assert query.received == (TimeCondition(">=", NOW),)
    assert query.device_ids == frozenset({device})
    assert query.reading_keys == frozenset({key})
    assert query.count == 100
    assert not query.newest_first
    assert search.total == "accurate"
    assert [issue.code for issue in search.applied.warnings] == ["informational", "not-supported"]
    assert ("color", "blue") not in search.applied.params
    assert ("patient", "Patient/p-1") in search.applied.params


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ([("code", "8867-4"), ("code", "urn:iso:std:iso:11073:10101|149514")], {"pulse_rate"}),
        ([("code", "|8867-4")], set()),
        (
            [("code", "https://pulsebridge.dev/fhir/CodeSystem/reading-kind|")],
            {"muscle_percentage", "muscle_mass", "basal_metabolism", "body_impedance"},
        ),
        (
            [("code", "http://loinc.org|"), ("category", "vital-signs"), ("code", "urn:iso:std:iso:11073:10101|")],
            VITAL_SIGNS,
        ),
        ([("code", "http://snomed.info/sct|8867-4")], set()),
        ([("category", "vital-signs")], VITAL_SIGNS),
        ([("category", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")], VITAL_SIGNS),
        ([("category", "laboratory")], set()),
        ([("category", "phd"), ("code", "55423-8")], {"steps"}),
        ([("category", "vital-signs"), ("code", "55423-8")], set()),
    ],
)
def test_code_and_category_tokens(params: list[tuple[str, str]], kinds: set[str]) -> None:
    assert parse_observation_search(params, API, strict=False).query.kinds == frozenset(kinds)


def test_device_and_identifier_values() -> None:
    device, key = uuid.uuid4(), uuid.uuid4()
    query = parse_observation_search(
        [("device", f"{device},other-id"), ("identifier", f"urn:uuid:{key}")], API, strict=False
    ).query
    assert (query.device_ids, query.reading_keys) == (frozenset({device}), frozenset({key}))
    query = parse_observation_search([("identifier", f"http://other|urn:uuid:{key}")], API, strict=False).query
    assert query.reading_keys == frozenset()


def test_count_zero_and_summary_count_ask_for_the_total_only() -> None:
    assert parse_observation_search([("_count", "0")], API, strict=False).summary_count
    assert parse_observation_search([("_summary", "count")], API, strict=False).summary_count


@pytest.mark.parametrize("params", [[("color", "blue")], [("_sort", "value")], [("_summary", "text")]])
def test_unsupported_is_a_warning_or_refused_under_strict_handling(params: list[tuple[str, str]]) -> None:
    search = parse_observation_search(params, API, strict=False)
    assert [issue.code for issue in search.applied.warnings] == ["not-supported"]
    assert search.applied.params == ()
    with pytest.raises(UnsupportedSearchError):
        parse_observation_search(params, API, strict=True)


@pytest.mark.parametrize("strict", [False, True])
def test_an_unsupported_modifier_is_refused_however_lenient_the_search(strict: bool) -> None:  # noqa: FBT001 - pytest parameter
    with pytest.raises(UnsupportedModifierError, match=":not modifier is not supported"):
        parse_observation_search([("code:not", "8867-4")], API, strict=strict)


def test_type_modifier_on_references_is_supported() -> None:
    assert parse_observation_search([("patient:Patient", "a")], API, strict=True).query.patient_id == "a"


@pytest.mark.parametrize(
    "params",
    [[("patient", "Patient/a b")], [("patient", "a"), ("subject", "Patient/b")], [("_count", "-1")], [("_count", "ten")],
     [("_cursor", "!!!")], [("date", "ge2026-99")], [("_lastUpdated", "zz2026")], [("_total", "maybe")], [("device", "a b")]],
)  # fmt: skip
def test_bad_values_are_refused(params: list[tuple[str, str]]) -> None:
    with pytest.raises(SearchError) as caught:
        parse_observation_search(params, API, strict=False)
    assert not isinstance(caught.value, UnsupportedSearchError)


def test_cursor_round_trip() -> None:
    key = uuid.uuid4()
    instant = datetime(2026, 11, 22, 10, 0, 0, 1, tzinfo=UTC)
    assert decode_observation_cursor(encode_observation_cursor(instant, key)) == (instant, key)


def test_last_n_needs_a_patient_and_defaults_to_every_kind() -> None:
    search = parse_last_n([("patient", "p"), ("max", "3")], API, strict=False)
    assert (search.query.patient_id, search.query.max_per_kind, search.query.kinds) == ("p", 3, frozenset(CATALOGUE))
    assert parse_last_n([("subject", "Patient/p"), ("category", "vital-signs")], API, strict=False).query.kinds == VITAL_SIGNS
    assert parse_last_n([("patient", "p"), ("max", "1000")], API, strict=False).query.max_per_kind == API.max_count
    for bad in ([("category", "vital-signs")], [("patient", "p"), ("max", "0")]):
        with pytest.raises(SearchError):
            parse_last_n(bad, API, strict=False)


def test_patient_and_device_parameters() -> None:
    patients = parse_patient_search(
        [("_id", "a,b"), ("identifier", "https://pulsebridge.dev/fhir/mrn|M1"), ("name", "ada")], API, strict=False
    )
    assert (patients.query.ids, patients.query.mrns, patients.query.name) == (frozenset({"a", "b"}), frozenset({"M1"}), "ada")
    assert parse_patient_search([("identifier", "http://elsewhere|M1")], API, strict=False).query.mrns == frozenset()
    device = uuid.uuid4()
    devices = parse_device_search(
        [("_id", f"{device},nope"), ("identifier", "cuff-1"), ("patient", "Patient/a")], API, strict=False
    )
    assert (devices.query.resource_ids, devices.query.device_ids, devices.query.patient_id) == (
        frozenset({device}),
        frozenset({"cuff-1"}),
        "a",
    )
    assert parse_device_search([("_count", "0")], API, strict=False).applied.warnings


@pytest.mark.parametrize(
    ("capability", "table"), [(OBSERVATION, SEARCH_PARAMETERS), (PATIENT, PATIENT_PARAMETERS), (DEVICE, DEVICE_PARAMETERS)]
)
def test_capability_statement_lists_exactly_the_supported_parameters(
    capability: ResourceCapability, table: Mapping[str, object]
) -> None:
    listed = {parameter.name for parameter in capability.search_parameters}
    assert listed == set(table) - {"_cursor", "_format", "_pretty"}
