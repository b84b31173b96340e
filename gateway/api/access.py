"""Who is calling, and what they may reach: every API route but discovery checks a bearer token.

- No token, or one that does not verify: 401 with ``WWW-Authenticate: Bearer`` (the reason
  names the failed check, never the token).
- A route the caller's role or scopes do not cover at all (the quarantine for a patient, a
  create without ``.c``): 403.
- Another patient's resource: 404, exactly like a missing one, so ids cannot be probed; a
  search for another patient finds nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from device_adapters.errors import NotFoundError, PulseBridgeError
from edge_config import ApiSettings
from fhir_mapper.catalogue import CATALOGUE
from gateway.api.search import SearchError, parse_observation_search
from gateway.auth.pairing import device_token_hash, parse_device_token
from gateway.auth.policy import Access, Relationships, accesses
from gateway.auth.scopes import Interaction, parse_scopes, resource_matches
from gateway.auth.session import SESSION_COOKIE, csrf_problem
from gateway.auth.tokens import Principal, Role, TokenError
from gateway.runtime import Runtime

ADMIN_ROLES = frozenset({Role.ADMIN, Role.SYSTEM})


class AccessError(PulseBridgeError):
    """A request the caller may not make; ``status`` is what the API answers."""

    status = 403


class NotAuthenticatedError(AccessError):
    status = 401


class ForbiddenError(AccessError):
    status = 403


class RefusedError(AccessError):
    """A request the caller may make, with something wrong in it (a pairing code that is not valid)."""

    status = 400


class ConflictError(AccessError):
    status = 409


class ThrottledError(AccessError):
    status = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class HiddenError(AccessError):
    """Someone else's resource: answered exactly like a missing one."""

    status = 404


def _runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


BEARER = HTTPBearer(auto_error=False, bearerFormat="JWT, or a device token from pairing")
"""Declares the scheme in the OpenAPI schema; the checks are ours (a missing token is a 401 OperationOutcome)."""


async def caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Principal:
    """The verified caller; also kept on the request for the audit trail."""
    runtime = _runtime(request)
    if credentials is not None and credentials.credentials.strip():
        token = credentials.credentials.strip()
    elif session := request.cookies.get(SESSION_COOKIE, "").strip():
        # The dashboard's session cookie carries a gateway token; the header, when sent, wins.
        problem = csrf_problem(request.method, request.headers, f"{request.url.scheme}://{request.url.netloc}")
        if problem is not None:
            raise ForbiddenError(problem)
        token = request.state.session_token = session
    else:
        raise NotAuthenticatedError("a bearer token is required (Authorization: Bearer <token>), or a dashboard session")
    device_token = parse_device_token(token)
    if device_token is not None:
        principal = await _device_principal(runtime, *device_token)
    else:
        try:
            principal = await runtime.auth.verifier.verify(token)
        except TokenError as exc:
            raise NotAuthenticatedError(str(exc)) from exc
    request.state.principal = principal
    return principal


DEVICE_SCOPES = parse_scopes("system/Observation.c")
DEVICE_CREDENTIAL_ISSUER = "urn:pulsebridge:device-credential"


async def _device_principal(runtime: Runtime, device_id: str, secret: str) -> Principal:
    """A device's own API token (from pairing): checked against the hashes the store keeps, revocation included."""
    try:
        credentials = await runtime.store.device_credentials(device_id)
    except NotFoundError:
        credentials = []
    presented = device_token_hash(secret)
    live = [credential.secret_hash for credential in credentials if credential.kind == "api-token" and not credential.revoked_at]
    if not any(hmac.compare_digest(stored, presented) for stored in live):
        raise NotAuthenticatedError("the device token is not valid (unknown, revoked or wrong)")
    return Principal(device_id, Role.DEVICE, DEVICE_SCOPES, DEVICE_CREDENTIAL_ISSUER)


CallerDep = Annotated[Principal, Depends(caller)]


def require_admin(principal: Principal) -> None:
    """Operations (quarantine, maintenance, audit): administrators and backend systems only."""
    if principal.role not in ADMIN_ROLES:
        raise ForbiddenError(f"the {principal.role} role may not use this operation")


async def relationships_of(runtime: Runtime, principal: Principal) -> Relationships:
    if principal.role in {Role.CAREGIVER, Role.PRACTITIONER}:
        return await runtime.store.relationships(principal.subject)
    return Relationships()


@dataclass(frozen=True, slots=True)
class PatientAccess:
    """What a caller may do with one kind of resource: the patients, and per patient the kinds."""

    ways: tuple[Access, ...]

    @property
    def everyone(self) -> bool:
        return any(way.patients.everyone and not way.query for way in self.ways)

    def reaches(self, patient_id: str) -> bool:
        return any(patient_id in way.patients for way in self.ways)

    def reaches_compartment(self, patient_id: str | None) -> bool:
        """A resource in ``patient_id``'s compartment, or in none (None): that needs everyone."""
        return any(way.patients.everyone if patient_id is None else patient_id in way.patients for way in self.ways)

    def only_patient(self) -> str | None:
        """The one patient a caller reaches (a patient's own record), for searches that name none."""
        ids = {patient for way in self.ways if not way.patients.everyone for patient in way.patients.ids}
        return next(iter(ids)) if len(ids) == 1 and not any(way.patients.everyone for way in self.ways) else None

    def allows(self, patient_id: str | None, resource: Mapping[str, Any]) -> bool:
        """Whether one resource of ``patient_id`` (None: in no compartment) is reached, scope queries included."""
        return any(
            (way.patients.everyone if patient_id is None else patient_id in way.patients)
            and (not way.query or resource_matches(resource, way.query))
            for way in self.ways
        )

    def queries_for(self, patient_id: str | None) -> list[tuple[tuple[str, str], ...]]:
        """The scope queries under which ``patient_id`` is reached (an empty query: everything)."""
        return [way.query for way in self.ways if (way.patients.everyone if patient_id is None else patient_id in way.patients)]


async def patient_access(runtime: Runtime, principal: Principal, resource_type: str, interaction: Interaction) -> PatientAccess:
    """The caller's ways to ``interaction`` on ``resource_type``; none at all is a 403."""
    ways = accesses(principal, resource_type, interaction, await relationships_of(runtime, principal))
    if not ways:
        raise ForbiddenError(f"no scope of this token allows {interaction.name.lower()} on {resource_type}")
    return PatientAccess(ways)


def scope_kinds(queries: list[tuple[tuple[str, str], ...]], settings: ApiSettings) -> frozenset[str] | None:
    """The reading kinds the scope queries allow (None: all), read strictly with the search parser.

    A scope query the parser cannot apply (``status=final``, a malformed token) allows nothing:
    a restriction that is not understood must not widen access.
    """
    allowed: set[str] = set()
    for query in queries:
        if not query:
            return None
        try:
            kinds = parse_observation_search(list(query), settings, strict=True).query.kinds
        except SearchError:
            continue
        allowed |= kinds if kinds is not None else frozenset(CATALOGUE)
    return frozenset(allowed)


__all__ = [
    "ADMIN_ROLES",
    "AccessError",
    "CallerDep",
    "ForbiddenError",
    "HiddenError",
    "NotAuthenticatedError",
    "PatientAccess",
    "caller",
    "patient_access",
    "relationships_of",
    "require_admin",
    "scope_kinds",
]
