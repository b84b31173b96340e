"""The EHR push client against a real FHIR receiver on loopback: outcomes per entry, faults, auth."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Literal

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from device_adapters.readings import Quantity, Reading
from fhir_mapper.bundles import bundles
from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.push.auth import AuthConfig, ClientCredentials, NoAuth, SmartBackendServices, StaticBearer
from gateway.push.client import Capabilities, Destination, Disposition, FhirDestinationClient
from gateway.push.policy import BreakerSettings
from tests.fhir_receiver import Fault, FhirReceiver, SmartClient

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEVICE = uuid.UUID("5f0c6c1e-3d0b-4d36-9a55-2f3b0f7f8c01")


def observations(count: int, *, first: int = 0) -> list[MappedObservation]:
    mapped = []
    for n in range(first, first + count):
        reading = Reading("cuff-1", "heart_rate", T0 + timedelta(minutes=n), quantity=Quantity(Decimal(60 + n % 40), "/min"))
        mapped.append(map_reading(reading, Attribution("pat-a", DEVICE, "cuff-1"), T0 + timedelta(days=1), source="mqtt"))
    return mapped


def one_bundle(items: list[MappedObservation], kind: Literal["transaction", "batch"] = "transaction") -> bytes:
    (bundle,) = bundles(items, kind, max_entries=len(items))
    return bundle


def stored_identifiers(receiver: FhirReceiver) -> set[tuple[str, str]]:
    return set(receiver.observations)


def identifiers(items: list[MappedObservation]) -> set[tuple[str, str]]:
    return {(IDENTIFIER_SYSTEM, identifier_value(o.key)) for o in items}


@pytest.fixture
async def receiver() -> AsyncIterator[FhirReceiver]:
    async with FhirReceiver() as running:
        yield running


def client_for(receiver: FhirReceiver, *, auth: AuthConfig | None = None, timeout: float = 5.0) -> FhirDestinationClient:
    destination = Destination("ehr", receiver.base_url, auth=auth or NoAuth(), timeout=timedelta(seconds=timeout))
    return FhirDestinationClient(destination)


async def test_discovery_reads_transaction_batch_and_conditional_create(receiver: FhirReceiver) -> None:
    async with client_for(receiver) as client:
        assert await client.discover() == Capabilities("4.0.1", transaction=True, batch=True, conditional_create=True)
    receiver.interactions = ("batch",)
    async with client_for(receiver) as client:
        assert await client.discover() == Capabilities("4.0.1", transaction=False, batch=True, conditional_create=True)


async def test_a_transaction_is_stored_once_and_posting_it_again_stores_nothing_new(receiver: FhirReceiver) -> None:
    items = observations(5)
    async with client_for(receiver) as client:
        first = await client.send(one_bundle(items))
        again = await client.send(one_bundle(items))
        split = [outcome for bundle in bundles(items, "batch", 2) for outcome in await client.send(bundle)]
    assert [(o.disposition, o.status) for o in first] == [(Disposition.SUCCESS, 201)] * 5
    assert all(o.location is not None and o.location.startswith("Observation/") for o in first)
    assert [(o.disposition, o.status) for o in again + split] == [(Disposition.SUCCESS, 200)] * 10
    assert stored_identifiers(receiver) == identifiers(items)


async def test_429_retry_after_in_seconds_and_as_an_http_date(receiver: FhirReceiver) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    receiver.fail_next(1, Fault("throttle", retry_after="7"))
    receiver.fail_next(1, Fault("throttle", retry_after=format_datetime(now + timedelta(seconds=30), usegmt=True)))
    items = observations(2)
    client = FhirDestinationClient(Destination("ehr", receiver.base_url), wall_clock=now.timestamp)
    async with client:
        seconds = await client.send(one_bundle(items))
        date = await client.send(one_bundle(items))
        assert not receiver.observations
        done = await client.send(one_bundle(items))
    assert [(o.disposition, o.status, o.retry_after) for o in seconds] == [(Disposition.RETRY, 429, timedelta(seconds=7))] * 2
    assert [(o.disposition, o.status, o.retry_after) for o in date] == [(Disposition.RETRY, 429, timedelta(seconds=30))] * 2
    assert seconds[0].operation_outcome is not None
    assert [o.disposition for o in done] == [Disposition.SUCCESS] * 2


async def test_503_is_retried(receiver: FhirReceiver) -> None:
    receiver.fail_next(1, Fault("unavailable"))
    items = observations(3)
    async with client_for(receiver) as client:
        down = await client.send(one_bundle(items))
        up = await client.send(one_bundle(items))
    assert [(o.disposition, o.status, o.retry_after) for o in down] == [(Disposition.RETRY, 503, None)] * 3
    assert [o.status for o in up] == [201] * 3


async def test_a_timeout_is_retried_and_the_late_commit_does_not_double(receiver: FhirReceiver) -> None:
    receiver.fail_next(1, Fault("delay", seconds=0.6))
    items = observations(3)
    async with client_for(receiver, timeout=0.2) as client:
        slow = await client.send(one_bundle(items))
        resent = await client.send(one_bundle(items))
        assert receiver.writes_finished == 1, "the slow request has not committed yet"
        async with asyncio.timeout(5):  # the slow request commits after the resend
            while receiver.writes_finished < 2:
                await asyncio.sleep(0.01)
        last = await client.send(one_bundle(items))
    assert [(o.disposition, o.status) for o in slow] == [(Disposition.RETRY, None)] * 3
    assert "timed out" in slow[0].detail
    assert [o.disposition for o in resent] == [Disposition.SUCCESS] * 3
    assert [o.status for o in last] == [200] * 3
    assert stored_identifiers(receiver) == identifiers(items)
    assert len(receiver.observations) == 3


async def test_committed_but_lost_is_retried_and_the_resend_is_harmless(receiver: FhirReceiver) -> None:
    receiver.fail_next(1, Fault("lost"))
    items = observations(4)
    async with client_for(receiver) as client:
        lost = await client.send(one_bundle(items))
        assert stored_identifiers(receiver) == identifiers(items), "the receiver committed"
        resent = await client.send(one_bundle(items))
    assert [(o.disposition, o.status) for o in lost] == [(Disposition.RETRY, 500)] * 4
    assert [(o.disposition, o.status) for o in resent] == [(Disposition.SUCCESS, 200)] * 4
    assert len(receiver.observations) == 4


def without_code(item: MappedObservation) -> MappedObservation:
    """Observation.code is 1..1: the receiver's models refuse the resource."""
    resource = orjson.loads(item.resource)
    del resource["code"]
    return item._replace(resource=orjson.dumps(resource))


@pytest.mark.parametrize("kind", ["batch", "transaction"])
async def test_an_invalid_entry_is_terminal_with_its_operation_outcome(
    receiver: FhirReceiver, kind: Literal["transaction", "batch"]
) -> None:
    good, bad = observations(2)
    async with client_for(receiver) as client:
        outcomes = await client.send(one_bundle([good, without_code(bad)], kind))
    assert [(o.disposition, o.status) for o in outcomes] == [(Disposition.SUCCESS, 201), (Disposition.TERMINAL, 422)]
    outcome = outcomes[1].operation_outcome
    assert outcome is not None
    assert outcome["resourceType"] == "OperationOutcome"
    assert "code" in outcome["issue"][0]["diagnostics"]
    assert stored_identifiers(receiver) == identifiers([good])
    # A rejected transaction stores nothing; the client then isolates the bad entry.
    assert len(receiver.write_times) == (1 if kind == "batch" else 3)


async def test_a_condition_that_does_not_match_the_resource_is_refused(receiver: FhirReceiver) -> None:
    first, second = observations(2)
    entry_of_second = orjson.loads(one_bundle([second], "batch"))["entry"][0]
    mismatched = orjson.loads(one_bundle([first], "batch"))
    mismatched["entry"][0]["request"] = entry_of_second["request"]
    async with client_for(receiver) as client:
        (outcome,) = await client.send(orjson.dumps(mismatched))
    assert (outcome.disposition, outcome.status) == (Disposition.TERMINAL, 400)
    assert not receiver.observations


async def test_one_401_costs_one_token_refresh(receiver: FhirReceiver) -> None:
    receiver.require_auth = True
    receiver.secret_clients["pulsebridge"] = "s3cret-value"
    auth = ClientCredentials(receiver.token_url, "pulsebridge", "s3cret-value")
    async with client_for(receiver, auth=auth) as client:
        first = await client.send(one_bundle(observations(1)))
        receiver.revoke_tokens()
        second = await client.send(one_bundle(observations(1, first=1)))
    assert [o.status for o in first + second] == [201, 201]
    assert receiver.token_requests == 2
    assert len(receiver.write_times) == 3, "the write refused with 401 is sent once more"
    assert "s3cret" not in repr(auth)


async def test_a_static_bearer_that_is_refused_is_retryable_without_token_requests(receiver: FhirReceiver) -> None:
    receiver.require_auth = True
    receiver.static_tokens.add("good-token")
    async with client_for(receiver, auth=StaticBearer("wrong-token")) as client:
        refused = await client.send(one_bundle(observations(1)))
    async with client_for(receiver, auth=StaticBearer("good-token")) as client:
        accepted = await client.send(one_bundle(observations(1)))
    assert [(o.disposition, o.status) for o in refused + accepted] == [(Disposition.RETRY, 401), (Disposition.SUCCESS, 201)]
    assert receiver.token_requests == 0
    assert len(receiver.write_times) == 2


def smart_key(algorithm: Literal["RS384", "ES384"]) -> tuple[bytes, rsa.RSAPublicKey | ec.EllipticCurvePublicKey]:
    key = rsa.generate_private_key(65537, 2048) if algorithm == "RS384" else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, key.public_key()


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
async def test_smart_backend_services_one_token_per_window_under_200_concurrent_sends(
    receiver: FhirReceiver, algorithm: Literal["RS384", "ES384"]
) -> None:
    receiver.require_auth = True
    receiver.token_lifetime = 120
    pem, public = smart_key(algorithm)
    receiver.smart_clients["pb-backend"] = SmartClient("pb-backend", "key-1", public, algorithm)
    auth = SmartBackendServices(receiver.token_url, "pb-backend", pem, kid="key-1", algorithm=algorithm)
    clock = [1000.0]
    items = observations(200)
    destination = Destination("ehr", receiver.base_url, auth=auth)
    async with FhirDestinationClient(destination, monotonic=lambda: clock[0]) as client:
        first = await asyncio.gather(*(client.send(one_bundle([o])) for o in items[:100]))
        assert receiver.token_requests == 1
        clock[0] += 59.0  # still inside the window (120 s - 60 s margin)
        second = await asyncio.gather(*(client.send(one_bundle([o])) for o in items[100:150]))
        assert receiver.token_requests == 1
        clock[0] += 2.0  # past it: one new token for all the concurrent senders
        third = await asyncio.gather(*(client.send(one_bundle([o])) for o in items[150:]))
    assert receiver.token_requests == 2
    assert [o.status for outcomes in first + second + third for o in outcomes] == [201] * 200
    assert len(receiver.observations) == 200
    assert [a.problems for a in receiver.assertions] == [(), ()]
    for recorded in receiver.assertions:
        assert recorded.header["alg"] == algorithm
        assert recorded.header["kid"] == "key-1"
        assert recorded.claims["iss"] == recorded.claims["sub"] == "pb-backend"
        assert recorded.claims["aud"] == receiver.token_url
        assert 0 < recorded.claims["exp"] - recorded.claims["iat"] <= 300
    assert len({a.claims["jti"] for a in receiver.assertions}) == 2


async def test_the_receiver_refuses_a_wrong_kid_and_a_replayed_jti(receiver: FhirReceiver) -> None:
    receiver.require_auth = True
    pem, public = smart_key("ES384")
    receiver.smart_clients["pb-backend"] = SmartClient("pb-backend", "key-1", public, "ES384")
    wrong = SmartBackendServices(receiver.token_url, "pb-backend", pem, kid="key-2")
    async with client_for(receiver, auth=wrong) as client:
        outcomes = await client.send(one_bundle(observations(1)))
    assert [(o.disposition, o.status) for o in outcomes] == [(Disposition.RETRY, None)]
    assert "token endpoint" in outcomes[0].detail
    assert receiver.assertions[-1].problems == ("kid",)
    right = SmartBackendServices(receiver.token_url, "pb-backend", pem, kid="key-1")
    async with client_for(receiver, auth=right) as client, httpx.AsyncClient() as http:
        await client.send(one_bundle(observations(1)))
        replay = {key: str(value) for key, value in receiver.assertions[-1].claims.items()}
        assert not receiver.assertions[-1].problems
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }
        token = await http.post(receiver.token_url, data=form | {"client_assertion": replay_of(receiver, pem, replay)})
    assert token.status_code == 401
    assert receiver.assertions[-1].problems == ("jti reused or missing",)


def replay_of(receiver: FhirReceiver, pem: bytes, claims: dict[str, str]) -> str:
    """The last assertion's claims signed again: valid in every way but its ``jti``."""
    import jwt  # noqa: PLC0415 - only this helper signs by hand

    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    numeric = {name: int(value) if name in {"iat", "exp"} else value for name, value in claims.items()}
    assert numeric["aud"] == receiver.token_url
    return jwt.encode(numeric, key, algorithm="ES384", headers={"kid": "key-1"})


async def test_redirects_are_not_followed_and_oversized_bodies_are_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/redirect":
            return httpx.Response(302, headers={"Location": "http://169.254.169.254/"})
        return httpx.Response(200, content=b"x" * 5000)

    transport = httpx.MockTransport(answer)
    bundle = one_bundle(observations(1))
    async with FhirDestinationClient(Destination("ehr", "http://ehr.test/redirect"), transport=transport) as client:
        redirected = await client.send(bundle)
    big = Destination("ehr", "http://ehr.test/big", max_response_bytes=1000)
    async with FhirDestinationClient(big, transport=transport) as client:
        oversized = await client.send(bundle)
    assert [(o.disposition, o.status) for o in redirected] == [(Disposition.RETRY, 302)]
    assert [(o.disposition, o.status) for o in oversized] == [(Disposition.RETRY, None)]
    assert "exceeds 1000" in oversized[0].detail


async def test_the_circuit_breaker_stops_requests_after_consecutive_failures() -> None:
    calls: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    clock = [0.0]
    destination = Destination(
        "ehr", "http://ehr.test", breaker=BreakerSettings(failure_threshold=3, cool_down=timedelta(seconds=30))
    )
    bundle = one_bundle(observations(1))
    async with FhirDestinationClient(destination, transport=httpx.MockTransport(down), monotonic=lambda: clock[0]) as client:
        for _ in range(3):
            await client.send(bundle)
        clock[0] = 10.0
        (held,) = await client.send(bundle)
        assert len(calls) == 3
        assert (held.disposition, held.retry_after, held.detail) == (
            Disposition.RETRY,
            timedelta(seconds=20),
            "circuit breaker open",
        )
        clock[0] = 30.0
        await client.send(bundle)  # the half-open probe
        assert len(calls) == 4


async def test_a_response_that_trickles_in_hits_the_overall_deadline() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(50):
            await asyncio.sleep(0.02)
            yield b" "

    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=trickle()))
    destination = Destination("ehr", "http://ehr.test", timeout=timedelta(seconds=0.2))
    async with FhirDestinationClient(destination, transport=transport) as client:
        (outcome,) = await client.send(one_bundle(observations(1)))
    assert (outcome.disposition, outcome.status) == (Disposition.RETRY, None)
    assert "timed out" in outcome.detail


async def test_a_token_shorter_lived_than_the_margin_is_kept_for_half_its_life(receiver: FhirReceiver) -> None:
    receiver.require_auth = True
    receiver.token_lifetime = 40  # under the 60 s refresh margin
    receiver.secret_clients["pulsebridge"] = "s3cret-value"
    clock = [0.0]
    destination = Destination("ehr", receiver.base_url, auth=ClientCredentials(receiver.token_url, "pulsebridge", "s3cret-value"))
    async with FhirDestinationClient(destination, monotonic=lambda: clock[0]) as client:
        await client.send(one_bundle(observations(1)))
        clock[0] = 19.0
        await client.send(one_bundle(observations(1, first=1)))
        assert receiver.token_requests == 1
        clock[0] = 20.0
        await client.send(one_bundle(observations(1, first=2)))
    assert receiver.token_requests == 2
    assert len(receiver.observations) == 3
