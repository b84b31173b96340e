"""An async FHIR client for one EHR destination: discovery, and Bundles of conditional creates.

:meth:`FhirDestinationClient.send` never raises for what the EHR does: every entry of the Bundle
comes back as an :class:`EntryOutcome` the outbox can act on — success (done), terminal (dead
letter with the EHR's OperationOutcome) or retry (with the EHR's Retry-After when it gave one).
Resending after a lost response is harmless because every entry is a conditional create.

The EHR is untrusted input: redirects are not followed and response bodies are capped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from gateway.push.auth import AuthConfig, NoAuth, TokenSource
from gateway.push.errors import PushError, PushProtocolError, PushTransportError
from gateway.push.policy import BreakerSettings, CircuitBreaker, parse_retry_after

FHIR_JSON = "application/fhir+json"
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
# Statuses that say nothing about the entry itself: the same request may succeed later.
_RETRYABLE_4XX = frozenset({401, 408, 429})


class Disposition(StrEnum):
    SUCCESS = "success"
    TERMINAL = "terminal"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    disposition: Disposition
    status: int | None
    """The entry's HTTP status (the Bundle's when the EHR answered for it as a whole); None without an answer."""
    location: str | None = None
    operation_outcome: dict[str, Any] | None = None
    retry_after: timedelta | None = None
    """What the EHR asked for (Retry-After), or how long the circuit breaker stays open."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    fhir_version: str
    transaction: bool
    batch: bool
    conditional_create: bool


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    base_url: str
    auth: AuthConfig = field(default_factory=NoAuth)
    timeout: timedelta = timedelta(seconds=30)
    max_response_bytes: int = MAX_RESPONSE_BYTES
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


def disposition(status: int) -> Disposition:
    if 200 <= status < 300:  # noqa: PLR2004 - the 2xx class
        return Disposition.SUCCESS
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:  # noqa: PLR2004 - the 4xx class
        return Disposition.TERMINAL
    # 5xx, 401/408/429, and 1xx/3xx (a redirect not followed is a configuration problem, not the reading's)
    return Disposition.RETRY


class FhirDestinationClient:
    """One EHR destination; an async context manager that owns its HTTP connection pool."""

    def __init__(
        self,
        destination: Destination,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.destination = destination
        self._base = destination.base_url.rstrip("/")
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._http = httpx.AsyncClient(timeout=destination.timeout.total_seconds(), follow_redirects=False, transport=transport)
        self.tokens = TokenSource(destination.auth, monotonic=monotonic, wall_clock=wall_clock)
        self.breaker = CircuitBreaker(destination.breaker)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def discover(self) -> Capabilities:
        """Read the CapabilityStatement: transaction or batch, conditional create on Observation."""
        answer = await self._exchange("GET", f"{self._base}/metadata", None, {})
        if answer.status != httpx.codes.OK:
            raise PushProtocolError(f"{self.destination.name}: GET /metadata answered {answer.status}")
        statement = _json_object(answer.body, "CapabilityStatement")
        interactions: set[str] = set()
        conditional = False
        for rest in _list(statement.get("rest")):
            if not isinstance(rest, dict) or rest.get("mode") != "server":
                continue
            codes = (i.get("code") for i in _list(rest.get("interaction")) if isinstance(i, dict))
            interactions.update(c for c in codes if isinstance(c, str))
            for resource in _list(rest.get("resource")):
                if isinstance(resource, dict) and resource.get("type") == "Observation":
                    conditional = resource.get("conditionalCreate") is True
        return Capabilities(
            fhir_version=str(statement.get("fhirVersion", "")),
            transaction="transaction" in interactions,
            batch="batch" in interactions,
            conditional_create=conditional,
        )

    async def find_patients(self, system: str, value: str) -> list[str]:
        """The logical ids of the EHR's Patients carrying identifier ``system|value`` (raises PushError)."""
        query = httpx.QueryParams({"identifier": f"{system}|{value}", "_elements": "id"})
        headers = {"Accept": FHIR_JSON}
        url = f"{self._base}/Patient?{query}"
        auth = await self.tokens.header(self._http)
        answer = await self._exchange("GET", url, None, headers | auth)
        if answer.status == httpx.codes.UNAUTHORIZED and self.tokens.refreshable:
            auth = await self.tokens.invalidate(self._http, auth)
            answer = await self._exchange("GET", url, None, headers | auth)
        if answer.status != httpx.codes.OK:
            raise PushProtocolError(f"{self.destination.name}: Patient search answered {answer.status}")
        found = _json_object(answer.body, "Bundle")
        ids: list[str] = []
        for entry in _list(found.get("entry")):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            search = entry.get("search") if isinstance(entry, dict) else None
            if isinstance(search, dict) and search.get("mode", "match") != "match":
                continue  # included resources and OperationOutcomes are not matches
            if isinstance(resource, dict) and resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
                ids.append(resource["id"])
        return ids

    async def send(self, bundle: bytes) -> list[EntryOutcome]:
        """POST a transaction or batch Bundle; one outcome per entry, in order."""
        document = _json_object(bundle, "Bundle")
        entries = _list(document.get("entry"))
        count = len(entries)
        now = self._monotonic()
        if not self.breaker.allow(now):
            wait = self.breaker.retry_in(now)
            return [EntryOutcome(Disposition.RETRY, None, retry_after=wait, detail="circuit breaker open")] * count
        try:
            answer = await self._post(bundle)
        except PushError as exc:
            self.breaker.record_failure(self._monotonic())
            return [EntryOutcome(Disposition.RETRY, None, detail=str(exc))] * count
        outcomes = self._outcomes(answer, count)
        if all(o.disposition is Disposition.RETRY for o in outcomes):
            self.breaker.record_failure(self._monotonic())
        else:
            self.breaker.record_success()
        if document.get("type") == "transaction" and count > 1 and outcomes[0].disposition is Disposition.TERMINAL:
            # A rejected transaction does not say which entry was at fault, and dead-lettering
            # the good readings with the bad one would lose them: each entry is tried on its own.
            return [(await self.send(_single(document, entry)))[0] for entry in entries]
        return outcomes

    async def _post(self, bundle: bytes) -> _Answer:
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        auth = await self.tokens.header(self._http)
        answer = await self._exchange("POST", self._base, bundle, headers | auth)
        if answer.status == httpx.codes.UNAUTHORIZED and self.tokens.refreshable:
            # One refresh per 401: a second 401 is answered as retryable, the token is not the reading's fault.
            auth = await self.tokens.invalidate(self._http, auth)
            answer = await self._exchange("POST", self._base, bundle, headers | auth)
        return answer

    async def _exchange(self, method: str, url: str, content: bytes | None, headers: dict[str, str]) -> _Answer:
        cap = self.destination.max_response_bytes
        try:
            # httpx times each read separately: the overall deadline also stops a server that trickles bytes.
            async with (
                asyncio.timeout(self.destination.timeout.total_seconds()),
                self._http.stream(method, url, content=content, headers=headers) as response,
            ):
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise PushTransportError(f"{self.destination.name}: response of {declared} bytes exceeds {cap}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise PushTransportError(f"{self.destination.name}: response exceeds {cap} bytes")
                    chunks.append(chunk)
                return _Answer(response.status_code, response.headers, b"".join(chunks))
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise PushTransportError(f"{self.destination.name}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise PushTransportError(f"{self.destination.name}: {type(exc).__name__}") from exc

    def _outcomes(self, answer: _Answer, count: int) -> list[EntryOutcome]:
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), now)
        verdict = disposition(answer.status)
        if verdict is not Disposition.SUCCESS:
            outcome = _operation_outcome(answer.body)
            return [EntryOutcome(verdict, answer.status, operation_outcome=outcome, retry_after=retry_after)] * count
        try:
            response = _json_object(answer.body, "Bundle")
            entries = [_entry_outcome(e, retry_after) for e in _list(response.get("entry"))]
        except PushProtocolError as exc:
            # The EHR may have committed: a resend is harmless (conditional create), a dead letter is not.
            return [EntryOutcome(Disposition.RETRY, answer.status, detail=str(exc))] * count
        if len(entries) != count:
            detail = f"response Bundle has {len(entries)} entries for {count} sent"
            return [EntryOutcome(Disposition.RETRY, answer.status, detail=detail)] * count
        return entries

    async def aclose(self) -> None:
        await self._http.aclose()


def _entry_outcome(entry: object, retry_after: timedelta | None) -> EntryOutcome:
    response = entry.get("response") if isinstance(entry, dict) else None
    status_text = response.get("status") if isinstance(response, dict) else None
    if not isinstance(response, dict) or not isinstance(status_text, str):
        raise PushProtocolError("response entry without response.status")
    code = status_text.split(" ", 1)[0]
    if not code.isdigit():
        raise PushProtocolError(f"response entry status {status_text[:40]!r} is not an HTTP status")
    status = int(code)
    outcome = response.get("outcome")
    location = response.get("location")
    return EntryOutcome(
        disposition(status),
        status,
        location=location if isinstance(location, str) else None,
        operation_outcome=outcome if isinstance(outcome, dict) else None,
        retry_after=retry_after if disposition(status) is Disposition.RETRY else None,
    )


def _json_object(body: bytes, resource_type: str) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PushProtocolError(f"expected a {resource_type}, got invalid JSON") from exc
    if not isinstance(document, dict) or document.get("resourceType") != resource_type:
        raise PushProtocolError(f"expected a {resource_type}")
    return document


def _operation_outcome(body: bytes) -> dict[str, Any] | None:
    try:
        return _json_object(body, "OperationOutcome")
    except PushProtocolError:
        return None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _single(document: dict[str, Any], entry: object) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": document.get("type"), "entry": [entry]})
