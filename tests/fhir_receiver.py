"""A FHIR R4 receiver standing in for an EHR: the tests start it on loopback and steer its faults.

It honours conditional create (``POST Observation`` with ``ifNoneExist: identifier=system|value``:
one Observation per identifier) and conditional update (``PUT Observation?identifier=system|value``:
the matching Observation is replaced, one is created when none matches, and several matches are a
412, as for a conditional create), answers transaction and batch Bundles the way a FHIR server does
(a transaction whose entries resolve to the same identifier fails whole, as FHIR requires when an
update is among them), validates every resource with ``fhir.resources`` (R4B models for R4 JSON),
and checks every SMART Backend Services client assertion field by field, keeping a record of each
for the tests to inspect.

An update must not name another resource: a body ``id`` that is not the matched resource's is a
400 (the EHR's ids are its own, so a sender leaves ``id`` out of a conditional update).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, parse_qsl, unquote

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_mapper.validation import FhirValidationError, validate_resource
from tests.services import free_port

FHIR_JSON = "application/fhir+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300


@dataclass(frozen=True, slots=True)
class Fault:
    """What the next FHIR write gets instead of a plain answer.

    ``throttle``: 429 with ``retry_after``; ``unavailable``: 503 (with ``retry_after`` if set);
    ``delay``: wait ``seconds``, then process normally (the client has usually given up by then);
    ``lost``: commit, then answer 500 — the EHR has the data but the client cannot know.
    """

    kind: Literal["throttle", "unavailable", "delay", "lost"]
    retry_after: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SmartClient:
    client_id: str
    kid: str
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    algorithm: Literal["RS384", "ES384"]


@dataclass(frozen=True, slots=True)
class RecordedAssertion:
    header: dict[str, Any]
    claims: dict[str, Any]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Failure(Exception):  # noqa: N818 - an internal signal, not an error callers see
    status: int
    text: str


def operation_outcome(text: str, code: str = "invalid") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def capability_statement(interactions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Observation",
                        "interaction": [{"code": "create"}, {"code": "update"}],
                        "conditionalCreate": True,
                        "conditionalUpdate": True,
                    },
                ],
                "interaction": [{"code": code} for code in interactions],
            }
        ],
    }


def _refuse_overlaps(entries: list[_Entry]) -> None:
    """FHIR fails a transaction whose entries resolve to the same resource when an update is among them."""
    keys = [entry.key for entry in entries]
    for entry in entries:
        if entry.method == "PUT" and keys.count(entry.key) > 1:
            raise _Failure(400, f"transaction entries overlap on identifier {'|'.join(entry.key)}")


def _identifiers(resource: dict[str, Any]) -> set[tuple[Any, Any]]:
    return {(i.get("system"), i.get("value")) for i in resource.get("identifier", []) if isinstance(i, dict)}


def _fhir(document: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), status, headers=headers, media_type=FHIR_JSON)


Identifier = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Entry:
    method: Literal["POST", "PUT"]
    key: Identifier
    resource: dict[str, Any]


@dataclass
class FhirReceiver:
    require_auth: bool = False
    token_lifetime: int = 300
    interactions: tuple[str, ...] = ("transaction", "batch")
    observations: dict[Identifier, dict[str, Any]] = field(default_factory=dict)
    other_matches: list[dict[str, Any]] = field(default_factory=list)
    """Observations another client stored without a condition: an identifier may match several (412)."""
    versions: dict[str, int] = field(default_factory=dict)
    """Version of each stored Observation by its id (1 when created, +1 per update)."""
    handled: list[tuple[str, Identifier, int]] = field(default_factory=list)
    """Every entry stored or found: (method, identifier, status)."""
    faults: deque[Fault] = field(default_factory=deque)
    write_times: list[float] = field(default_factory=list)
    """Monotonic arrival time of every FHIR write, faulted or not."""
    writes_finished: int = 0
    """FHIR writes fully handled, including those whose client gave up waiting."""
    smart_clients: dict[str, SmartClient] = field(default_factory=dict)
    secret_clients: dict[str, str] = field(default_factory=dict)
    assertions: list[RecordedAssertion] = field(default_factory=list)
    token_requests: int = 0
    static_tokens: set[str] = field(default_factory=set)
    _tokens: set[str] = field(default_factory=set)
    _jtis: set[str] = field(default_factory=set)
    lose_every: int = 0
    """Every n-th FHIR write commits and then answers 500, as if the response were lost (0: never)."""
    patients: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """Patient ids by identifier (system, value): what ``GET Patient?identifier=`` and conditional references find."""
    creates: int = 0
    """Observations created (201): equals len(observations) unless something was stored twice."""
    patient_searches: int = 0
    patient_search_failures: int = 0
    """The next n Patient searches answer 503."""
    port: int = 0
    """0: a free port, chosen at the first start and kept, so a restarted receiver is found where it was."""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _writes: int = 0
    base_url: str = ""

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"

    def fail_next(self, count: int, fault: Fault) -> None:
        self.faults.extend([fault] * count)

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    async def __aenter__(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Outside the ephemeral range: an outage test starts the receiver again on this port.
        listener.bind(("127.0.0.1", self.port or free_port()))
        self.port = listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[
                Route("/metadata", self._metadata, methods=["GET"]),
                Route("/Patient", self._patient_search, methods=["GET"]),
                Route("/", self._write, methods=["POST"]),
                Route("/auth/token", self._token, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def _metadata(self, _request: Request) -> Response:
        return _fhir(capability_statement(self.interactions))

    async def _write(self, request: Request) -> Response:
        self.write_times.append(time.monotonic())
        try:
            return await self._handle_write(request)
        finally:
            self.writes_finished += 1

    async def _handle_write(self, request: Request) -> Response:
        if self.require_auth and not self._authorized(request):
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return _fhir(operation_outcome("bearer token missing or not valid", "login"), 401, headers)
        fault = self.faults.popleft() if self.faults else None
        self._writes += 1
        if fault is None and self.lose_every and self._writes % self.lose_every == 0:
            fault = Fault("lost")
        if fault is not None and fault.kind in {"throttle", "unavailable"}:
            status = 429 if fault.kind == "throttle" else 503
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return _fhir(operation_outcome("try again later", "throttled" if status == 429 else "transient"), status, headers)
        try:
            body = await request.body()
        except ClientDisconnect:  # the sender died mid-request (the kill scenarios): nothing arrived, nothing to answer
            return Response(status_code=499)
        if fault is not None and fault.kind == "delay":
            # A slow EHR still commits what it received, whether or not the client waited.
            await asyncio.sleep(fault.seconds)
        try:
            kind, entries = self._parse_bundle(body)
        except _Failure as failure:
            return _fhir(operation_outcome(failure.text, "structure"), failure.status)
        response = self._transaction(entries) if kind == "transaction" else self._batch(entries)
        if fault is not None and fault.kind == "lost":
            return _fhir(operation_outcome("the response was lost", "exception"), 500)
        return response

    def _parse_bundle(self, body: bytes) -> tuple[str, list[Any]]:
        try:
            bundle = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Failure(400, "body is not JSON") from exc
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise _Failure(400, "expected a Bundle")
        kind, entries = bundle.get("type"), bundle.get("entry")
        if not isinstance(kind, str) or kind not in self.interactions:
            raise _Failure(400, f"Bundle type {kind!r} is not supported")
        return kind, entries if isinstance(entries, list) else []

    def _transaction(self, entries: list[Any]) -> Response:
        # All or nothing: check every entry before storing any (no awaits here, so no interleaving).
        try:
            checked = [self._check(entry) for entry in entries]
            _refuse_overlaps(checked)
            for entry in checked:
                self._resolve(entry)
        except _Failure as failure:
            return _fhir(operation_outcome(failure.text), failure.status)
        answers = [self._store(entry) for entry in checked]
        return _fhir({"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def _batch(self, entries: list[Any]) -> Response:
        answers = []
        for raw in entries:
            try:
                entry = self._check(raw)
                self._resolve(entry)
            except _Failure as failure:
                answers.append({"response": {"status": str(failure.status), "outcome": operation_outcome(failure.text)}})
                continue
            answers.append(self._store(entry))
        return _fhir({"resourceType": "Bundle", "type": "batch-response", "entry": answers})

    def _check(self, entry: object) -> _Entry:
        request = entry.get("request") if isinstance(entry, dict) else None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise _Failure(400, "entry has no request")
        method, url = request.get("method"), request.get("url")
        if method == "POST" and url == "Observation":
            key = self._condition(request.get("ifNoneExist"), "ifNoneExist")
        elif method == "PUT" and isinstance(url, str) and url.startswith("Observation?"):
            key = self._search(url.removeprefix("Observation?"))
        else:
            raise _Failure(400, "only POST Observation and PUT Observation?identifier=… entries are accepted")
        if not isinstance(resource, dict):
            raise _Failure(400, "entry has no resource")
        self._resolve_subject(resource)
        try:
            validate_resource(resource)
        except FhirValidationError as exc:
            raise _Failure(422, exc.detail[:500]) from exc
        # Stores are keyed by the condition; a real server searches the resources, so both must agree.
        if key not in _identifiers(resource):
            raise _Failure(400, "the condition names an identifier the resource does not carry")
        return _Entry(method, key, resource)

    @staticmethod
    def _condition(condition: object, what: str) -> Identifier:
        if not isinstance(condition, str) or not condition.startswith("identifier=") or "|" not in condition:
            raise _Failure(400, f"{what} must be identifier=system|value")
        system, value = condition.removeprefix("identifier=").split("|", 1)
        return unquote(system), unquote(value)

    @staticmethod
    def _search(query: str) -> Identifier:
        try:
            parameters = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError as exc:
            raise _Failure(400, "the conditional update's search does not parse") from exc
        if len(parameters) != 1 or parameters[0][0] != "identifier" or "|" not in parameters[0][1]:
            raise _Failure(400, "a conditional update must search identifier=system|value alone")
        system, value = parameters[0][1].split("|", 1)
        return system, value

    def _matches(self, key: Identifier) -> list[dict[str, Any]]:
        found = [self.observations[key]] if key in self.observations else []
        return found + [resource for resource in self.other_matches if key in _identifiers(resource)]

    def _resolve(self, entry: _Entry) -> None:
        """Refuse what the current state makes impossible: several matches, an update naming another resource."""
        matches = self._matches(entry.key)
        if len(matches) > 1:
            raise _Failure(412, f"{len(matches)} Observations match identifier {'|'.join(entry.key)}")
        given = entry.resource.get("id")
        if entry.method == "PUT" and matches and given is not None and given != matches[0]["id"]:
            raise _Failure(400, f"the resource's id {given!r} is not the id of the Observation the condition matched")

    def _store(self, entry: _Entry) -> dict[str, Any]:
        matches = self._matches(entry.key)
        if matches and entry.method == "POST":
            self.handled.append((entry.method, entry.key, 200))
            stored = matches[0]
            return {
                "response": {"status": "200 OK", "location": f"Observation/{stored['id']}/_history/{self.versions[stored['id']]}"}
            }
        if matches:
            target = matches[0]
            updated = {**entry.resource, "id": target["id"]}
            if entry.key in self.observations:
                self.observations[entry.key] = updated
            else:
                self.other_matches[self.other_matches.index(target)] = updated
            self.versions[target["id"]] += 1
            self.handled.append((entry.method, entry.key, 200))
            return {
                "response": {"status": "200 OK", "location": f"Observation/{target['id']}/_history/{self.versions[target['id']]}"}
            }
        stored = {**entry.resource, "id": str(uuid.uuid4())}
        self.observations[entry.key] = stored
        self.creates += 1
        self.versions[stored["id"]] = 1
        self.handled.append((entry.method, entry.key, 201))
        return {"response": {"status": "201 Created", "location": f"Observation/{stored['id']}/_history/1"}}

    def add_unconditionally(self, resource: dict[str, Any]) -> None:
        """Store as another client would without a condition (duplicates allowed): for 412 tests."""
        stored = {**resource, "id": str(uuid.uuid4())}
        self.other_matches.append(stored)
        self.versions[stored["id"]] = 1

    async def _patient_search(self, request: Request) -> Response:
        if self.require_auth and not self._authorized(request):
            return _fhir(operation_outcome("bearer token missing or not valid", "login"), 401)
        self.patient_searches += 1
        if self.patient_search_failures > 0:
            self.patient_search_failures -= 1
            return _fhir(operation_outcome("try again later", "transient"), 503)
        condition = request.query_params.get("identifier", "")
        if "|" not in condition:
            return _fhir(operation_outcome("identifier must be system|value"), 400)
        system, value = condition.split("|", 1)
        matches = [
            {
                "fullUrl": f"{self.base_url}/Patient/{pid}",
                "resource": {"resourceType": "Patient", "id": pid},
                "search": {"mode": "match"},
            }
            for pid in self.patients.get((system, value), [])
        ]
        return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": matches})

    def _resolve_subject(self, resource: dict[str, Any]) -> None:
        """A conditional reference (``Patient?identifier=s|v``) becomes the one Patient it names, or the entry fails."""
        subject = resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str) or not reference.startswith("Patient?"):
            return
        condition = parse_qs(reference.removeprefix("Patient?")).get("identifier", [""])[0]
        system, _, value = condition.partition("|")
        found = self.patients.get((system, value), [])
        if len(found) != 1:
            raise _Failure(412 if found else 404, f"conditional reference {reference} matches {len(found)} Patients")
        resource["subject"] = {"reference": f"Patient/{found[0]}"}

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and (token in self._tokens or token in self.static_tokens)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Response(orjson.dumps({"error": "unsupported_grant_type"}), 400, media_type="application/json")
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            problems = self._check_assertion(form.get("client_assertion", ""))
        else:
            secret = self.secret_clients.get(form.get("client_id", ""))
            given = form.get("client_secret", "")
            problems = () if secret is not None and hmac.compare_digest(secret, given) else ("client secret",)
        if problems:
            return Response(orjson.dumps({"error": "invalid_client"}), 401, media_type="application/json")
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime, "scope": form.get("scope")}
        return Response(orjson.dumps(body), media_type="application/json")

    def _check_assertion(self, assertion: str) -> tuple[str, ...]:
        """SMART Backend Services section 'Authorization server obligations', one named problem per failed check."""
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            self.assertions.append(RecordedAssertion({}, {}, ("not a JWT",)))
            return ("not a JWT",)
        problems: list[str] = []
        client = self.smart_clients.get(str(claims.get("iss")))
        if header.get("alg") not in {"RS384", "ES384"}:
            problems.append("alg")
        if not header.get("kid"):
            problems.append("kid missing")
        if client is None:
            problems.append("unknown client")
        else:
            if header.get("kid") != client.kid:
                problems.append("kid")
            try:
                jwt.decode(
                    assertion,
                    client.public_key,
                    algorithms=[client.algorithm],
                    audience=self.token_url,
                    options={"require": ["iss", "sub", "aud", "exp", "jti"]},
                )
            except jwt.PyJWTError as exc:
                problems.append(f"signature or registered claims: {type(exc).__name__}")
        if not (claims.get("iss") == claims.get("sub") and claims.get("sub") in self.smart_clients):
            problems.append("iss/sub")
        issued = claims.get("iat", time.time())
        expires = claims.get("exp")
        if (
            not isinstance(expires, int | float)
            or not isinstance(issued, int | float)
            or expires - issued > MAX_ASSERTION_LIFETIME
        ):
            problems.append("exp - iat > 300")
        jti = claims.get("jti")
        if not isinstance(jti, str) or jti in self._jtis:
            problems.append("jti reused or missing")
        else:
            self._jtis.add(jti)
        self.assertions.append(RecordedAssertion(header, claims, tuple(problems)))
        return tuple(problems)
