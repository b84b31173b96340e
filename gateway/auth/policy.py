"""Whose data a caller reaches: SMART scopes narrowed by the caller's role and relationships.

A scope says what kind of access (``patient/Observation.rs``); the identity says whose data:

| role | ``patient/`` scopes | ``user/`` scopes | ``system/`` scopes |
|---|---|---|---|
| patient | their own record | their own record | nothing |
| caregiver | the patient in context, if delegated | the patients who delegated to them | nothing |
| practitioner | the patient in context, if in their care teams | their care teams' patients | nothing |
| admin | the patient in context | everyone | nothing |
| system | the patient in context | nothing | everyone |
| device | nothing (devices write through ingest as themselves) | nothing | nothing |

Anything not in the table is denied, and a denial looks like a missing resource (404) to the
caller so that ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.auth.scopes import Grant, Interaction, ScopeContext, grants, resource_matches
from gateway.auth.tokens import Principal, Role


@dataclass(frozen=True, slots=True)
class Relationships:
    """What the registry says about the caller: delegations and care-team membership."""

    delegated_patients: frozenset[str] = frozenset()
    """Patients who made the caller their caregiver."""
    care_team_patients: frozenset[str] = frozenset()
    """Patients of the care teams the caller belongs to."""


@dataclass(frozen=True, slots=True)
class PatientSet:
    everyone: bool = False
    ids: frozenset[str] = frozenset()

    def __contains__(self, patient_id: object) -> bool:
        return self.everyone or patient_id in self.ids

    @property
    def empty(self) -> bool:
        return not self.everyone and not self.ids


NOBODY = PatientSet()
EVERYONE = PatientSet(everyone=True)


@dataclass(frozen=True, slots=True)
class Access:
    """One way in: these patients, resources matching this scope query."""

    patients: PatientSet
    query: tuple[tuple[str, str], ...]


def _own(principal: Principal) -> PatientSet:
    return PatientSet(ids=frozenset({principal.patient_id})) if principal.patient_id else NOBODY


def _in_context(principal: Principal, allowed: PatientSet) -> PatientSet:
    """``patient/`` scopes of a non-patient: the launch patient, if the caller may see them anyway."""
    if principal.patient_id is None or principal.patient_id not in allowed:
        return NOBODY
    return PatientSet(ids=frozenset({principal.patient_id}))


def _user_patients(principal: Principal, relationships: Relationships) -> PatientSet:
    users: Mapping[Role, PatientSet] = {
        Role.PATIENT: _own(principal),
        Role.CAREGIVER: PatientSet(ids=relationships.delegated_patients),
        Role.PRACTITIONER: PatientSet(ids=relationships.care_team_patients),
        Role.ADMIN: EVERYONE,
    }
    return users.get(principal.role, NOBODY)


def patients_for(principal: Principal, grant: Grant, relationships: Relationships) -> PatientSet:
    """The patients one scope grant reaches for this caller (the table above)."""
    if principal.role is Role.DEVICE:
        return NOBODY
    if grant.context is ScopeContext.SYSTEM:
        return EVERYONE if principal.role is Role.SYSTEM else NOBODY
    if grant.context is ScopeContext.USER:
        return NOBODY if principal.role is Role.SYSTEM else _user_patients(principal, relationships)
    if principal.role is Role.PATIENT:
        return _own(principal)
    reachable = EVERYONE if principal.role in {Role.ADMIN, Role.SYSTEM} else _user_patients(principal, relationships)
    return _in_context(principal, reachable)


def accesses(
    principal: Principal, resource_type: str, interaction: Interaction, relationships: Relationships
) -> tuple[Access, ...]:
    """Every way the caller may do ``interaction`` on ``resource_type``; empty means denied."""
    found = []
    for grant in grants(principal.scopes, resource_type, interaction):
        patients = patients_for(principal, grant, relationships)
        if not patients.empty:
            found.append(Access(patients, grant.query))
    return tuple(found)


def may_access(
    principal: Principal,
    resource_type: str,
    interaction: Interaction,
    relationships: Relationships,
    *,
    patient_id: str | None,
    resource: Mapping[str, Any] | None = None,
) -> bool:
    """Whether one resource of ``patient_id`` (None: not in any compartment) may be reached."""
    for access in accesses(principal, resource_type, interaction, relationships):
        in_compartment = access.patients.everyone if patient_id is None else patient_id in access.patients
        if in_compartment and (not access.query or (resource is not None and resource_matches(resource, access.query))):
            return True
    return False
