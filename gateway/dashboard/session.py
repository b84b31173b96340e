"""Signing in to the dashboard: ``POST/GET/DELETE /api/v1/session``, and the session's renewal.

- ``POST /api/v1/session`` ``{"account": …, "password": …}`` — checks the account's scrypt hash
  and answers who signed in, setting the session cookie (see ``gateway.auth.session``). A wrong
  account, password or a disabled account are one answer (401), so accounts cannot be probed;
  failures are throttled per account and per address (429 with Retry-After).
- ``GET /api/v1/session`` — who the cookie (or bearer token) is.
- ``DELETE /api/v1/session`` — signs out: the cookie is cleared.

Every request is in the audit trail (``/api/v1``), sign-ins as ``login`` events of the account.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from device_adapters.jsonwire import dumps
from edge_config import DashboardSettings
from gateway.api.access import CallerDep, NotAuthenticatedError, ThrottledError
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.auth.pairing import AttemptThrottle
from gateway.auth.passwords import DUMMY_HASH, MAX_LENGTH, verify_password
from gateway.auth.session import RENEW_AFTER_SECONDS, SESSION_COOKIE, SESSION_SCOPES
from gateway.auth.tokens import LocalIssuer, Principal, Role
from gateway.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["session"], responses=ERROR_RESPONSES)

WRONG = "the account or the password is wrong"


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-._@]+$")
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


@dataclass(frozen=True, slots=True)
class LoginThrottles:
    """Failed sign-ins per account (guessing one password) and per address (trying many accounts)."""

    accounts: AttemptThrottle
    addresses: AttemptThrottle

    def keys(self, request: Request, account: str) -> tuple[tuple[AttemptThrottle, str], ...]:
        address = request.client.host if request.client else "unknown"
        return ((self.accounts, account), (self.addresses, address))


def _throttle(request: Request) -> LoginThrottles:
    throttles: LoginThrottles = request.app.state.login_throttles
    return throttles


def _settings(request: Request) -> DashboardSettings:
    runtime: Runtime = request.app.state.runtime
    return runtime.settings.dashboard


ThrottleDep = Annotated[LoginThrottles, Depends(_throttle)]


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    # No Max-Age: the cookie goes when the browser closes; the token inside expires when idle.
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")


def _session_token(local: LocalIssuer, principal: Principal, settings: DashboardSettings) -> str:
    scope = SESSION_SCOPES[principal.role]
    lifetime = timedelta(minutes=settings.session_idle_minutes)
    return local.issue(principal.subject, principal.role, scope, patient_id=principal.patient_id, lifetime=lifetime)


def _who(principal: Principal, display_name: str | None = None) -> dict[str, object]:
    return {"account": principal.subject, "role": principal.role.value, "patient_id": principal.patient_id,
            "display_name": display_name}  # fmt: skip


async def _check(rt: Runtime, sign_in: SignIn) -> Principal | None:
    """The account's principal if the password matches; the hash is checked even for unknown accounts (same time)."""
    account = await rt.store.get_account(sign_in.account)
    stored = await rt.store.account_password(sign_in.account) if account is not None else None
    matches = await asyncio.to_thread(verify_password, sign_in.password, stored or DUMMY_HASH)
    if account is None or stored is None or not matches or account.disabled:
        return None
    role = Role(account.role)
    if role not in SESSION_SCOPES:
        return None
    return Principal(account.id, role, (), rt.auth.local.issuer, patient_id=account.patient_id)


@router.post("/session")
async def sign_in(request: Request, rt: RuntimeDep, throttle: ThrottleDep, body: SignIn) -> Response:
    now = datetime.now(UTC)
    keys = throttle.keys(request, body.account)
    waits = [wait for limiter, key in keys if (wait := limiter.retry_after(key, now)) is not None]
    if waits:
        raise ThrottledError("too many failed sign-ins: try again later", math.ceil(max(waits).total_seconds()))
    principal = await _check(rt, body)
    if principal is None:
        for limiter, key in keys:
            limiter.failed(key, now)
        raise NotAuthenticatedError(WRONG)
    request.state.principal = principal  # the audit trail's agent is the account that signed in
    account = await rt.store.get_account(principal.subject)
    response = Response(dumps(_who(principal, account.display_name if account else None)), media_type="application/json")
    set_session_cookie(response, request, _session_token(rt.auth.local, principal, rt.settings.dashboard))
    return response


@router.get("/session")
async def who_am_i(rt: RuntimeDep, principal: CallerDep) -> Response:
    account = await rt.store.get_account(principal.subject)
    return Response(dumps(_who(principal, account.display_name if account else None)), media_type="application/json")


@router.delete("/session", status_code=204, response_class=Response)
async def sign_out(request: Request) -> Response:
    # Signing out needs no valid session: an expired one must still be cleared from the browser.
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


def install_session(app: FastAPI, settings: DashboardSettings) -> None:
    app.state.login_throttles = LoginThrottles(
        AttemptThrottle(limit=settings.login_attempts), AttemptThrottle(limit=settings.login_attempts_per_address)
    )
    app.include_router(router)

    @app.middleware("http")
    async def renew(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        token = getattr(request.state, "session_token", None)
        principal = getattr(request.state, "principal", None)
        if token is not None and principal is not None and response.status_code != 401 and SESSION_COOKIE in request.cookies:  # noqa: PLR2004 - HTTP status
            claims = jwt.decode(token, options={"verify_signature": False})  # verified by the caller dependency already
            runtime: Runtime = request.app.state.runtime
            if time.time() - claims.get("iat", 0) > RENEW_AFTER_SECONDS and principal.role in SESSION_SCOPES:
                set_session_cookie(response, request, _session_token(runtime.auth.local, principal, _settings(request)))
        return response
