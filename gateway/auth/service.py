"""The authenticator the app lifespan owns: the local issuer and the trusted issuers' key sets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from edge_config import AuthSettings
from gateway.auth.pairing import AttemptThrottle, pairing_key
from gateway.auth.tokens import ClaimNames, LocalIssuer, TokenError, TokenVerifier, TrustedIssuer


@dataclass(frozen=True, slots=True)
class Authenticator:
    local: LocalIssuer
    verifier: TokenVerifier
    pairing_key: bytes
    """HMAC key of stored pairing-code digests."""
    pairing_throttle: AttemptThrottle = field(default_factory=AttemptThrottle)
    """Failed redemptions per source address and per device id."""


def build_authenticator(settings: AuthSettings, http: httpx.AsyncClient) -> Authenticator:
    """The local issuer (its key file, or a key in memory) and the trusted issuers' key sets over ``http``."""
    if settings.signing_key_file is not None:
        local = LocalIssuer.from_key_file(settings.issuer, settings.audience, settings.signing_key_file)
    else:
        local = LocalIssuer.generate(settings.issuer, settings.audience)
    trusted = tuple(
        TrustedIssuer(
            issuer.issuer,
            issuer.audience,
            _jwks_fetcher(http, issuer.jwks_url),
            ClaimNames(issuer.role_claim, issuer.patient_claim),
        )
        for issuer in settings.trusted_issuers
    )
    return Authenticator(local, TokenVerifier(local, trusted), pairing_key(local.pem()))


def _jwks_fetcher(http: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    async def fetch() -> Mapping[str, Any]:
        try:
            response = await http.get(url, timeout=10)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenError(f"the issuer's key set could not be fetched ({type(exc).__name__})") from exc
        if not isinstance(document, Mapping):
            raise TokenError("the issuer's key set is not a JSON object")
        return document

    return fetch
