"""Every error under /fhir is an OperationOutcome with the right status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from device_adapters.errors import NotFoundError, RegistryError, StorageError
from device_adapters.jsonwire import dumps
from fhir_mapper.resources import FHIR_JSON, Issue, operation_outcome
from gateway.api.access import AccessError, NotAuthenticatedError, ThrottledError
from gateway.api.search import SearchError, UnsupportedModifierError, UnsupportedSearchError
from gateway.mqtt_credentials import CredentialsError

logger = logging.getLogger(__name__)

_ACCESS_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict", 429: "throttled"}
_ISSUE_CODE = {400: "invalid", 404: "not-found", 405: "not-supported", 406: "not-supported", 413: "too-costly", 503: "transient"}


class FhirJsonResponse(JSONResponse):
    """What the FHIR routes answer, for the OpenAPI schema (the routes serialize their bodies themselves)."""

    media_type = FHIR_JSON


_ERRORS = {
    400: "bad request or parameters", 401: "no valid bearer token", 403: "not allowed for this token",
    404: "not known (or someone else's)", 409: "conflict", 413: "body too large", 415: "unsupported content type",
    422: "not a usable reading", 429: "too many requests (see Retry-After)", 503: "a service is unavailable",
}  # fmt: skip
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"description": f"OperationOutcome: {text}", "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    for status, text in _ERRORS.items()
}
"""Every route's error answers, for the OpenAPI schema: an OperationOutcome in FHIR JSON."""


def outcome_response(status: int, diagnostics: str, *, code: str | None = None) -> Response:
    issue = Issue("error", code or _ISSUE_CODE.get(status, "exception"), diagnostics)
    return Response(dumps(operation_outcome([issue])), status_code=status, media_type=FHIR_JSON)


def install_url_guard(app: FastAPI) -> None:
    """Refuse NUL characters in the path or query before anything reads them (PostgreSQL text cannot hold them).

    Installed last, so it runs first: not even the audit trail sees such a request.
    """

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if "\x00" in request.url.path or "%00" in request.url.query.lower():
            return outcome_response(400, "NUL characters are not allowed in a URL")
        return await call_next(request)


def install_error_handlers(app: FastAPI) -> None:
    async def search_error(_: Request, exc: Exception) -> Response:
        # What the server does not support (ignored under lenient handling, except modifiers) is
        # "not-supported"; a malformed value is "invalid".
        unsupported = isinstance(exc, (UnsupportedSearchError, UnsupportedModifierError))
        return outcome_response(400, str(exc), code="not-supported" if unsupported else None)

    async def access_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessError)  # noqa: S101 - registered for this type only
        response = outcome_response(exc.status, str(exc), code=_ACCESS_CODES[exc.status])
        if isinstance(exc, NotAuthenticatedError):  # RFC 6750: say which scheme, and that the token (if any) was refused
            response.headers["WWW-Authenticate"] = 'Bearer realm="PulseBridge", error="invalid_token"'
        if isinstance(exc, ThrottledError):
            response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return outcome_response(400, problems)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
        return outcome_response(exc.status_code, str(exc.detail))

    async def storage_error(_: Request, exc: Exception) -> Response:
        logger.warning("request failed: %s", exc)
        return outcome_response(503, "the observation store is unavailable; try again shortly")

    async def broker_error(_: Request, exc: Exception) -> Response:
        logger.warning("broker credentials: %s", exc)
        return outcome_response(503, str(exc))

    async def registry_error(_: Request, exc: Exception) -> Response:
        # The registry refused a change (an assignment overlapping another): the request conflicts with the state.
        return outcome_response(
            404 if isinstance(exc, NotFoundError) else 409,
            str(exc),
            code="not-found" if isinstance(exc, NotFoundError) else "conflict",
        )

    app.add_exception_handler(SearchError, search_error)
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(CredentialsError, broker_error)
    app.add_exception_handler(AccessError, access_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StorageError, storage_error)
