"""SMART scopes, pairing codes and the audit hash chain: the pure parts of access control."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditOutcome,
    AuditRecord,
    ChainedRecord,
    audit_event,
    chain_hash,
    verify_chain,
)
from gateway.auth.pairing import (
    CODE_LENGTH,
    PAIRING_ALPHABET,
    AttemptThrottle,
    code_digest,
    display,
    new_code,
    normalize,
)
from gateway.auth.scopes import Grant, Interaction, Scope, ScopeContext, grants, parse_scope, parse_scopes, resource_matches

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"


# -- SMART scopes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("patient/Observation.rs", Scope(ScopeContext.PATIENT, "Observation", frozenset({Interaction.READ, Interaction.SEARCH}))),
        ("user/*.cruds", Scope(ScopeContext.USER, "*", frozenset(Interaction))),
        ("system/Observation.cs", Scope(ScopeContext.SYSTEM, "Observation", frozenset({Interaction.CREATE, Interaction.SEARCH}))),
        (
            "patient/Observation.read",
            Scope(ScopeContext.PATIENT, "Observation", frozenset({Interaction.READ, Interaction.SEARCH})),
        ),
        (
            "user/Observation.write",
            Scope(ScopeContext.USER, "Observation", frozenset({Interaction.CREATE, Interaction.UPDATE, Interaction.DELETE})),
        ),
        ("system/*.*", Scope(ScopeContext.SYSTEM, "*", frozenset(Interaction))),
        (
            f"patient/Observation.rs?category={VITAL_SIGNS}",
            Scope(
                ScopeContext.PATIENT,
                "Observation",
                frozenset({Interaction.READ, Interaction.SEARCH}),
                (("category", VITAL_SIGNS),),
            ),
        ),
    ],
)
def test_scopes_parse_in_v2_and_v1_spellings(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    ["openid", "fhirUser", "launch/patient", "offline_access", "patient/Observation.sr", "patient/Observation.rr",
     "patient/Observation.x", "patient/Observation.", "admin/Observation.rs", "patient/Observation.rs?", "patient/Obs-ervation.rs",
     "patient/Observation.rs?category", "Patient/Observation.rs", "patient/*.r*"],
)  # fmt: skip
def test_scopes_that_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_a_scope_claim_keeps_only_resource_scopes() -> None:
    scopes = parse_scopes("openid fhirUser launch/patient patient/Observation.rs patient/Device.r bogus")
    assert [(scope.resource_type, "".join(sorted(i.value for i in scope.permissions))) for scope in scopes] == [
        ("Observation", "rs"),
        ("Device", "r"),
    ]


def test_grants_follow_resource_type_and_interaction() -> None:
    scopes = parse_scopes(f"patient/Observation.rs?category={VITAL_SIGNS} user/Patient.r system/*.c")
    assert grants(scopes, "Observation", Interaction.SEARCH) == (Grant(ScopeContext.PATIENT, (("category", VITAL_SIGNS),)),)
    assert grants(scopes, "Observation", Interaction.CREATE) == (Grant(ScopeContext.SYSTEM, ()),)
    assert grants(scopes, "Patient", Interaction.READ) == (Grant(ScopeContext.USER, ()),)
    assert grants(scopes, "Patient", Interaction.SEARCH) == ()
    assert grants(scopes, "Device", Interaction.READ) == ()


def test_a_scope_query_matches_by_token() -> None:
    observation = {
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    assert resource_matches(observation, [("category", VITAL_SIGNS)])
    assert resource_matches(observation, [("category", "vital-signs"), ("code", "http://loinc.org|8867-4")])
    assert resource_matches(observation, [("code", "http://loinc.org|")])
    assert not resource_matches(observation, [("category", "laboratory")])
    assert not resource_matches(observation, [("code", "|8867-4")])  # "|code" means: a coding without a system
    assert not resource_matches(observation, [("status", "final")])  # unknown parameters fail closed
    assert not resource_matches({}, [("category", "vital-signs")])


# -- pairing codes ------------------------------------------------------------------------------


def test_pairing_codes_are_long_enough_and_from_the_alphabet() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(code) == CODE_LENGTH and set(code) <= set(PAIRING_ALPHABET) for code in codes)
    assert len(set(PAIRING_ALPHABET)) == 20
    assert CODE_LENGTH * math.log2(len(PAIRING_ALPHABET)) > 34  # RFC 8628 §6.1: about 34.5 bits
    assert not set("AEIOU01") & set(PAIRING_ALPHABET)  # no words, no look-alikes


@given(st.text(alphabet=PAIRING_ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH))
def test_a_displayed_code_normalizes_back_however_it_is_typed(code: str) -> None:
    shown = display(code)
    assert shown[4] == "-"
    for typed in (shown, shown.lower(), f" {shown[:2]} {shown[2:]} ", code):
        assert normalize(typed) == code


@pytest.mark.parametrize("typed", ["", "BCDF-GHJ", "BCDF-GHJKL", "BCDF-GHJA", "BCDF-GHJ1", "BCDF_GHJK"])
def test_what_cannot_be_a_code_is_refused_before_any_lookup(typed: str) -> None:
    assert normalize(typed) is None


def test_the_store_keeps_a_keyed_digest() -> None:
    assert code_digest("BCDFGHJK", b"k1") == code_digest("BCDFGHJK", b"k1")
    assert code_digest("BCDFGHJK", b"k1") != code_digest("BCDFGHJK", b"k2")
    assert code_digest("BCDFGHJK", b"k1") != code_digest("BCDFGHJL", b"k1")


def test_failed_attempts_are_throttled_per_key_in_a_sliding_window() -> None:
    throttle = AttemptThrottle(limit=5, window=timedelta(minutes=10))
    for minute in range(5):
        assert throttle.retry_after("198.51.100.7", NOW + timedelta(minutes=minute)) is None
        throttle.failed("198.51.100.7", NOW + timedelta(minutes=minute))
    assert throttle.retry_after("198.51.100.7", NOW + timedelta(minutes=5)) == timedelta(minutes=5)
    assert throttle.retry_after("198.51.100.8", NOW + timedelta(minutes=5)) is None
    assert throttle.retry_after("198.51.100.7", NOW + timedelta(minutes=10)) is None  # the first failure left the window


def test_a_flood_of_keys_does_not_grow_the_throttle_without_bound() -> None:
    throttle = AttemptThrottle(limit=2, window=timedelta(minutes=10), max_keys=100)
    for index in range(1000):
        throttle.failed(f"key-{index}", NOW + timedelta(seconds=index))
    assert len(throttle._failures) <= 100


def test_ten_thousand_guesses_from_ten_addresses_get_fifty_tries() -> None:
    throttle = AttemptThrottle()
    secret = new_code()
    tried = paired = 0
    for guess in range(10_000):
        address = f"203.0.113.{guess % 10}"
        now = NOW + timedelta(milliseconds=guess * 10)
        if throttle.retry_after(address, now) is not None:
            continue
        tried += 1
        if new_code() == secret:
            paired += 1
        else:
            throttle.failed(address, now)
    assert tried == 50
    assert paired == 0


# -- audit chain --------------------------------------------------------------------------------


def _chain(records: list[AuditRecord]) -> list[ChainedRecord]:
    rows, previous = [], GENESIS_HASH
    for record in records:
        digest = chain_hash(previous, record)
        rows.append(ChainedRecord(record, previous, digest))
        previous = digest
    return rows


def _records() -> list[AuditRecord]:
    return [
        AuditRecord(NOW, AuditAction.READ, AuditOutcome.SUCCESS, "Practitioner/dr-1", "pat-a", "Observation/8c5c…"),
        AuditRecord(NOW, AuditAction.SEARCH, AuditOutcome.SUCCESS, "Patient/pat-a", "pat-a", "Observation?patient=pat-a"),
        AuditRecord(
            NOW, AuditAction.READ, AuditOutcome.DENIED, "Patient/pat-b", None, "Observation/8c5c…", {"reason": "not-found"}
        ),
        AuditRecord(
            NOW, AuditAction.PAIR, AuditOutcome.DENIED, "Client/203.0.113.9", None, "PairingCode", {"reason": "throttled"}
        ),
    ]


def test_an_intact_chain_verifies() -> None:
    assert verify_chain(_chain(_records())) is None
    assert verify_chain([]) is None


def test_an_altered_removed_or_reordered_row_is_found() -> None:
    rows = _chain(_records())
    altered = [*rows]
    altered[1] = dataclasses.replace(rows[1], record=dataclasses.replace(rows[1].record, outcome=AuditOutcome.DENIED))
    assert verify_chain(altered) == altered[1].record
    assert verify_chain([rows[0], rows[2], rows[3]]) == rows[2].record
    assert verify_chain([rows[1], rows[0], *rows[2:]]) == rows[1].record
    rehashed = [*rows[:3], dataclasses.replace(rows[3], hash=bytes(32))]
    assert verify_chain(rehashed) == rows[3].record


def test_audit_events_are_valid_fhir_in_the_balp_shape() -> None:
    for record in _records():
        event = audit_event(record, None)
        AuditEvent.model_validate(event)
        assert event["agent"][0]["requestor"] is True
        assert event["outcome"] == record.outcome.value
    search = audit_event(_records()[1], None)
    assert search["action"] == "E"
    assert search["subtype"][0]["code"] == "search-type"
    assert [entity["role"]["code"] for entity in search["entity"]] == ["1", "24"]
