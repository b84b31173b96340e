"""Whose data each role reaches through each scope: the table in gateway/auth/policy.py, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from gateway.auth.policy import Relationships, accesses, may_access
from gateway.auth.scopes import Interaction, parse_scopes
from gateway.auth.tokens import Principal, Role

RELATIONS = {
    Role.CAREGIVER: Relationships(delegated_patients=frozenset({"pat-a"})),
    Role.PRACTITIONER: Relationships(care_team_patients=frozenset({"pat-a"})),
}
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
VITALS = {
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]
}
LAB = {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]}

# role, scope, patient in context -> the patients (of pat-a, pat-b) whose Observations it may read
EXPECTED: dict[tuple[Role, str, str | None], set[str]] = {
    (Role.PATIENT, "patient/Observation.rs", "pat-a"): {"pat-a"},
    (Role.PATIENT, "user/Observation.rs", "pat-a"): {"pat-a"},
    (Role.PATIENT, "system/Observation.rs", "pat-a"): set(),
    (Role.PATIENT, "patient/Observation.rs", None): set(),
    (Role.CAREGIVER, "patient/Observation.rs", "pat-a"): {"pat-a"},
    (Role.CAREGIVER, "patient/Observation.rs", "pat-b"): set(),
    (Role.CAREGIVER, "user/Observation.rs", None): {"pat-a"},
    (Role.CAREGIVER, "system/Observation.rs", None): set(),
    (Role.PRACTITIONER, "patient/Observation.rs", "pat-a"): {"pat-a"},
    (Role.PRACTITIONER, "patient/Observation.rs", "pat-b"): set(),
    (Role.PRACTITIONER, "user/Observation.rs", None): {"pat-a"},
    (Role.PRACTITIONER, "system/Observation.rs", None): set(),
    (Role.ADMIN, "patient/Observation.rs", "pat-b"): {"pat-b"},
    (Role.ADMIN, "user/Observation.rs", None): {"pat-a", "pat-b"},
    (Role.ADMIN, "system/Observation.rs", None): set(),
    (Role.SYSTEM, "patient/Observation.rs", "pat-b"): {"pat-b"},
    (Role.SYSTEM, "user/Observation.rs", None): set(),
    (Role.SYSTEM, "system/Observation.rs", None): {"pat-a", "pat-b"},
    (Role.DEVICE, "patient/Observation.rs", "pat-a"): set(),
    (Role.DEVICE, "user/Observation.rs", None): set(),
    (Role.DEVICE, "system/Observation.rs", None): set(),
}


def _principal(role: Role, scope: str, patient: str | None) -> Principal:
    return Principal("someone", role, parse_scopes(scope), "https://gateway.example/", patient_id=patient)


@pytest.mark.parametrize(("role", "scope", "patient"), list(EXPECTED))
def test_every_role_and_scope_reaches_exactly_the_expected_patients(role: Role, scope: str, patient: str | None) -> None:
    principal = _principal(role, scope, patient)
    relations = RELATIONS.get(role, Relationships())
    reached = {
        candidate
        for candidate in ("pat-a", "pat-b")
        if may_access(principal, "Observation", Interaction.READ, relations, patient_id=candidate, resource=VITALS)
    }
    assert reached == EXPECTED[role, scope, patient]


def test_the_table_covers_every_role_and_scope_context() -> None:
    assert {(role, scope.split("/")[0]) for role, scope, _ in EXPECTED} == set(
        itertools.product(Role, ("patient", "user", "system"))
    )


def test_scopes_without_the_interaction_or_type_deny() -> None:
    principal = _principal(Role.ADMIN, "user/Observation.r user/Device.rs", None)
    assert may_access(principal, "Observation", Interaction.READ, Relationships(), patient_id="pat-a")
    assert not may_access(principal, "Observation", Interaction.SEARCH, Relationships(), patient_id="pat-a")
    assert not may_access(principal, "Observation", Interaction.CREATE, Relationships(), patient_id="pat-a")
    assert not may_access(principal, "Patient", Interaction.READ, Relationships(), patient_id="pat-a")


def test_a_scope_query_limits_which_resources_are_reached() -> None:
    principal = _principal(Role.PATIENT, f"patient/Observation.rs?category={VITAL_SIGNS}", "pat-a")
    assert may_access(principal, "Observation", Interaction.READ, Relationships(), patient_id="pat-a", resource=VITALS)
    assert not may_access(principal, "Observation", Interaction.READ, Relationships(), patient_id="pat-a", resource=LAB)
    assert not may_access(principal, "Observation", Interaction.READ, Relationships(), patient_id="pat-a")
    both = _principal(Role.PATIENT, f"patient/Observation.rs?category={VITAL_SIGNS} patient/Observation.r", "pat-a")
    assert may_access(both, "Observation", Interaction.READ, Relationships(), patient_id="pat-a", resource=LAB)


def test_resources_outside_any_compartment_need_everyone() -> None:
    admin = _principal(Role.ADMIN, "user/Device.rs", None)
    practitioner = _principal(Role.PRACTITIONER, "user/Device.rs", None)
    assert may_access(admin, "Device", Interaction.READ, Relationships(), patient_id=None)
    assert not may_access(practitioner, "Device", Interaction.READ, RELATIONS[Role.PRACTITIONER], patient_id=None)
    assert accesses(_principal(Role.DEVICE, "system/*.cruds", None), "Observation", Interaction.CREATE, Relationships()) == ()
