"""FHIR search parameters -> store query."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_config import ApiSettings
from gateway.api.search import SearchError, date_conditions, decode_cursor, encode_cursor, parse_observation_search
from gateway.storage import TimeCondition

API = ApiSettings(default_count=50, max_count=100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", [TimeCondition(">=", datetime(2026, 1, 1, tzinfo=UTC)), TimeCondition("<", datetime(2027, 1, 1, tzinfo=UTC))]),
        ("ge2026-02", [TimeCondition(">=", datetime(2026, 2, 1, tzinfo=UTC))]),
        ("le2026-02", [TimeCondition("<", datetime(2026, 3, 1, tzinfo=UTC))]),
        ("le2026-12", [TimeCondition("<", datetime(2027, 1, 1, tzinfo=UTC))]),
        ("gt2026-11-22", [TimeCondition(">=", datetime(2026, 11, 23, tzinfo=UTC))]),
        ("lt2026-11-22", [TimeCondition("<", datetime(2026, 11, 22, tzinfo=UTC))]),
        ("sa2026-11-22T10:00", [TimeCondition(">=", datetime(2026, 11, 22, 10, 1, tzinfo=UTC))]),
        ("eb2026-11-22T10:00:00+01:00", [TimeCondition("<", datetime(2026, 11, 22, 9, tzinfo=UTC))]),
        (
            "2026-11-22T10:00:00.5Z",
            [
                TimeCondition(">=", datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)),
                TimeCondition("<", datetime(2026, 11, 22, 10, 0, 0, 600000, tzinfo=UTC)),
            ],
        ),
    ],
)
def test_date_prefixes_and_precision(value: str, expected: list[TimeCondition]) -> None:
    assert date_conditions(value) == expected


def test_time_zone_of_search_value_is_respected() -> None:
    (condition,) = date_conditions("ge2026-11-22T10:00:00-05:00")
    assert condition.instant == datetime(2026, 11, 22, 10, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize("value", ["2026-13", "ne2026", "ap2026", "yesterday", "2026-02-30", "2026-11-22T25:00"])
def test_bad_or_unsupported_dates(value: str) -> None:
    with pytest.raises(SearchError):
        date_conditions(value)


def test_parse_full_search() -> None:
    parsed = parse_observation_search(
        [("patient", "Patient/p-1"), ("code", "http://loinc.org|8867-4,85354-9"), ("date", "ge2026-11-01"), ("date", "le2026-11-30"),
         ("_count", "500"), ("_sort", "date"), ("color", "blue")],
        API,
        strict=False,
    )  # fmt: skip
    query = parsed.query
    assert query.patient_id == "p-1"
    assert query.kinds == frozenset({"heart_rate", "pulse_rate", "blood_pressure"})
    assert len(query.time) == 2
    assert query.count == 100
    assert not query.newest_first
    assert [issue.code for issue in parsed.warnings] == ["informational", "not-supported"]


def test_strict_handling_refuses_unknown_parameters() -> None:
    with pytest.raises(SearchError):
        parse_observation_search([("color", "blue")], API, strict=True)


def test_repeated_code_parameters_intersect() -> None:
    parsed = parse_observation_search([("code", "8867-4"), ("code", "urn:iso:std:iso:11073:10101|149514")], API, strict=False)
    assert parsed.query.kinds == frozenset({"pulse_rate"})


@pytest.mark.parametrize(
    "params",
    [[("patient", "Patient/a b")], [("patient:Patient", "a")], [("code:text", "heart")], [("patient", "a"), ("subject", "Patient/b")], [("_count", "-1")], [("_sort", "value")],
     [("_cursor", "!!!")]],
)  # fmt: skip
def test_invalid_parameters(params: list[tuple[str, str]]) -> None:
    with pytest.raises(SearchError):
        parse_observation_search(params, API, strict=False)


def test_cursor_round_trip() -> None:
    key = uuid.uuid4()
    instant = datetime(2026, 11, 22, 10, 0, 0, 1, tzinfo=UTC)
    assert decode_cursor(encode_cursor(instant, key)) == (instant, key)
