"""How PulseBridge authenticates to an EHR: none, a static bearer, OAuth2 client credentials, SMART Backend Services.

SMART Backend Services (``private_key_jwt``): each token request carries a fresh client
assertion signed RS384 or ES384, with the key's ``kid``, a unique ``jti`` and ``exp`` at most five
minutes ahead. Access tokens are cached until ``refresh_margin`` before they expire; one lock per
destination makes concurrent senders share one token request per expiry window.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.push.errors import PushAuthError

MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class NoAuth:
    """An EHR on a private network that needs no credentials (tests, integration engines)."""


@dataclass(frozen=True, slots=True)
class StaticBearer:
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """OAuth2 client credentials with a client secret (RFC 6749 4.4, client_secret_post)."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = "system/Observation.c"
    refresh_margin: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SmartBackendServices:
    """SMART Backend Services: OAuth2 client credentials with a ``private_key_jwt`` assertion."""

    token_url: str
    client_id: str
    private_key_pem: bytes = field(repr=False)
    kid: str
    algorithm: Literal["RS384", "ES384"] = "ES384"
    scope: str = "system/Observation.c"
    assertion_lifetime: timedelta = timedelta(minutes=4)
    refresh_margin: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if not self.kid:
            raise ValueError("SMART Backend Services needs the key's kid")
        if not timedelta(0) < self.assertion_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError(f"assertion_lifetime must be within (0, {MAX_ASSERTION_LIFETIME}]")
        signing_key(self)  # fail at configuration time, not at the first token request


SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def signing_key(config: SmartBackendServices) -> SigningKey:
    """The private key of ``config``, checked to match its algorithm."""
    key = serialization.load_pem_private_key(config.private_key_pem, password=None)
    if config.algorithm == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if config.algorithm == "ES384" and isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    raise TypeError(f"{config.algorithm} needs {'an RSA' if config.algorithm == 'RS384' else 'a P-384 EC'} private key")


AuthConfig = NoAuth | StaticBearer | ClientCredentials | SmartBackendServices


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float
    """Monotonic time after which the next request fetches a new token."""


class TokenSource:
    """The ``Authorization`` header for one destination, fetching and caching tokens as needed.

    ``monotonic`` times the cache (token lifetimes are relative, so wall-clock jumps must not
    matter); ``wall_clock`` stamps assertions, which the authorization server checks in its own time.
    """

    def __init__(
        self,
        config: AuthConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._key = signing_key(config) if isinstance(config, SmartBackendServices) else None
        self.token_requests = 0

    @property
    def refreshable(self) -> bool:
        """Whether a 401 can be answered with a new token."""
        return isinstance(self.config, ClientCredentials | SmartBackendServices)

    async def header(self, http: httpx.AsyncClient) -> dict[str, str]:
        config = self.config
        if isinstance(config, NoAuth):
            return {}
        if isinstance(config, StaticBearer):
            return {"Authorization": f"Bearer {config.token}"}
        token = self._token
        if token is None or self._monotonic() >= token.refresh_at:
            token = await self._refresh(http, stale=token)
        return {"Authorization": f"Bearer {token.value}"}

    async def invalidate(self, http: httpx.AsyncClient, rejected: dict[str, str]) -> dict[str, str]:
        """After a 401: a new token, unless another sender already replaced the rejected one."""
        if isinstance(self.config, NoAuth | StaticBearer):
            return rejected
        token = self._token
        if token is not None and rejected.get("Authorization") == f"Bearer {token.value}":
            await self._refresh(http, stale=token)
        return await self.header(http)

    async def _refresh(self, http: httpx.AsyncClient, stale: _Token | None) -> _Token:
        async with self._lock:
            # Another sender may have refreshed while this one waited for the lock.
            current = self._token
            if current is not None and current is not stale and self._monotonic() < current.refresh_at:
                return current
            self._token = await self._request(http)
            return self._token

    async def _request(self, http: httpx.AsyncClient) -> _Token:
        config = self.config
        if isinstance(config, ClientCredentials):
            form = {
                "grant_type": "client_credentials",
                "scope": config.scope,
                "client_id": config.client_id,
                "client_secret": config.client_secret,
            }
        elif isinstance(config, SmartBackendServices) and self._key is not None:
            form = {
                "grant_type": "client_credentials",
                "scope": config.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(config, self._key, self._wall_clock()),
            }
        else:
            raise PushAuthError(f"{type(config).__name__} does not request tokens")
        started = self._monotonic()
        self.token_requests += 1
        try:
            response = await http.post(config.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise PushAuthError(f"token request to {config.token_url} failed: {type(exc).__name__}") from exc
        if response.status_code != httpx.codes.OK:
            # The body may echo the assertion or the secret: only the status is kept.
            raise PushAuthError(f"token endpoint {config.token_url} answered {response.status_code}")
        try:
            body = orjson.loads(response.content)
            value, kind, expires_in = body["access_token"], body["token_type"], body.get("expires_in", 300)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise PushAuthError(f"token endpoint {config.token_url} answered an unreadable token response") from exc
        if not isinstance(value, str) or not isinstance(kind, str) or kind.lower() != "bearer":
            raise PushAuthError(f"token endpoint {config.token_url} did not issue a bearer token")
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            raise PushAuthError(f"token endpoint {config.token_url} gave an invalid expires_in")
        # A token shorter-lived than twice the margin is kept for half its life, not refetched on every send.
        margin = min(config.refresh_margin.total_seconds(), float(expires_in) / 2)
        return _Token(value, started + float(expires_in) - margin)


def client_assertion(config: SmartBackendServices, key: SigningKey, now: float) -> str:
    """A signed ``private_key_jwt`` for one token request: never reused (fresh ``jti``)."""
    issued = int(now)
    claims = {
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": config.token_url,
        "iat": issued,
        "exp": issued + int(config.assertion_lifetime.total_seconds()),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm=config.algorithm, headers={"kid": config.kid, "typ": "JWT"})
