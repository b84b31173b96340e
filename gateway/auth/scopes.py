"""SMART App Launch scopes (v2, and v1 spellings): parsing and what they grant.

A scope is ``<context>/<resource type>.<permissions>[?<query>]``: ``patient/Observation.rs``,
``user/*.cruds``, ``system/Observation.cs``, ``patient/Observation.rs?category=vital-signs``.
v1's ``.read``, ``.write`` and ``.*`` mean ``rs``, ``cud`` and ``cruds``. Scopes that grant no
resource access (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``…) and scopes
that do not parse grant nothing: an unknown scope never widens access.

What a scope grants is then narrowed by the token's identity: a ``patient/`` scope reaches only
the token's patient, a ``user/`` scope the patients the user may see, a ``system/`` scope what
the client is registered for. This module says which scopes apply; the caller applies the
compartment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl


class ScopeContext(StrEnum):
    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


class Interaction(StrEnum):
    """SMART v2 permissions, in the order a scope must list them."""

    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


_ORDER = "cruds"
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.+))?")


@dataclass(frozen=True, slots=True)
class Scope:
    context: ScopeContext
    resource_type: str
    """A FHIR resource type, or ``*`` for all of them."""
    permissions: frozenset[Interaction]
    query: tuple[tuple[str, str], ...] = ()
    """Search parameters every resource reached through this scope must match (all of them)."""

    def covers(self, resource_type: str, interaction: Interaction) -> bool:
        return self.resource_type in {"*", resource_type} and interaction in self.permissions


def parse_scope(text: str) -> Scope | None:
    """One scope, or None when it grants no resource access (``openid``) or does not parse."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    context, resource_type, permissions, query = match.groups()
    letters = _V1_PERMISSIONS.get(permissions, permissions)
    if not letters or "*" in letters or not _in_order(letters):
        return None
    pairs: list[tuple[str, str]] = []
    if query is not None:
        try:
            pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=True)
        except ValueError:
            return None
    return Scope(ScopeContext(context), resource_type, frozenset(Interaction(letter) for letter in letters), tuple(pairs))


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """A token's space-separated ``scope`` claim."""
    return tuple(scope for scope in (parse_scope(part) for part in text.split()) if scope is not None)


def _in_order(letters: str) -> bool:
    """``rs`` and ``cruds`` are scopes, ``sr`` and ``rr`` are not (SMART v2 requires the order)."""
    positions = [_ORDER.find(letter) for letter in letters]
    return all(position >= 0 for position in positions) and positions == sorted(set(positions))


@dataclass(frozen=True, slots=True)
class Grant:
    """Access through one scope: its context says whose data, its query how much of it."""

    context: ScopeContext
    query: tuple[tuple[str, str], ...]


def grants(scopes: Iterable[Scope], resource_type: str, interaction: Interaction) -> tuple[Grant, ...]:
    """Every way the scopes allow ``interaction`` on ``resource_type``; empty means denied."""
    found = {Grant(scope.context, scope.query) for scope in scopes if scope.covers(resource_type, interaction)}
    return tuple(sorted(found, key=lambda grant: (grant.context, grant.query)))


def resource_matches(resource: Mapping[str, Any], query: Iterable[tuple[str, str]]) -> bool:
    """Whether a resource satisfies a scope's query.

    Only token parameters on ``category`` and ``code`` are understood; any other parameter
    matches nothing (fail closed).
    """
    for name, value in query:
        element = _TOKEN_ELEMENTS.get(name)
        if element is None or not any(_token_matches(concept, value) for concept in _concepts(resource.get(element))):
            return False
    return True


_TOKEN_ELEMENTS = {"category": "category", "code": "code"}


def _concepts(element: object) -> list[Mapping[str, Any]]:
    if isinstance(element, Mapping):
        return [element]
    if isinstance(element, list):
        return [concept for concept in element if isinstance(concept, Mapping)]
    return []


def _token_matches(concept: Mapping[str, Any], token: str) -> bool:
    """FHIR token search: ``code``, ``system|code``, ``|code`` (no system) or ``system|`` (any code)."""
    system, bar, code = token.rpartition("|")
    codings = concept.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if not isinstance(coding, Mapping):
            continue
        if not bar:
            if coding.get("code") == code:
                return True
        elif (coding.get("system") or "") == system and (not code or coding.get("code") == code):
            return True
    return False
