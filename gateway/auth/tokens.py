"""OAuth2 bearer tokens: the gateway's own (local accounts, devices) and an OpenID Connect issuer's.

Only asymmetric signatures are accepted (ES256/ES384/RS256/RS384/PS256…): ``alg: none`` and
HMAC are refused before any key is looked at, which also rules out the RS/HS confusion where
a public key is used as an HMAC secret. Issuer, audience, expiry, not-before and a lifetime
cap are checked on every token; every failure is one :class:`TokenError` whose message names
the check, never the token.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_adapters.errors import PulseBridgeError
from gateway.auth.scopes import Scope, parse_scopes

ACCEPTED_ALGORITHMS = ("ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384")
MAX_ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)
CLOCK_LEEWAY = timedelta(seconds=30)
LOCAL_KEY_ID = "pulsebridge-local-1"


class TokenError(PulseBridgeError):
    """A bearer token that must not be honoured; the message says which check failed."""


class Role(StrEnum):
    PATIENT = "patient"
    CAREGIVER = "caregiver"
    PRACTITIONER = "practitioner"
    ADMIN = "admin"
    DEVICE = "device"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as a verified token says."""

    subject: str
    role: Role
    scopes: tuple[Scope, ...]
    issuer: str
    patient_id: str | None = None
    """The patient in context: a patient's own id, or the SMART launch patient."""
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """Where an OpenID Connect issuer puts PulseBridge's facts in its tokens."""

    role: str = "pulsebridge_role"
    patient: str = "patient"


@dataclass(frozen=True, slots=True)
class LocalIssuer:
    """The gateway's own signing key (ES256) and the name it signs as."""

    issuer: str
    audience: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, issuer: str, audience: str, pem: bytes) -> LocalIssuer:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except ValueError as exc:
            raise TokenError("the local signing key is not a PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise TokenError("the local signing key must be an EC P-256 private key (ES256)")
        return cls(issuer, audience, key)

    @classmethod
    def generate(cls, issuer: str, audience: str) -> LocalIssuer:
        return cls(issuer, audience, ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_key_file(cls, issuer: str, audience: str, path: Path) -> LocalIssuer:
        """The key in ``path``; a new one is written there first (owner-only) when the file is missing."""
        try:
            return cls.from_pem(issuer, audience, path.read_bytes())
        except FileNotFoundError:
            pass
        created = cls.generate(issuer, audience)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            return cls.from_pem(issuer, audience, path.read_bytes())
        with os.fdopen(descriptor, "wb") as file:
            file.write(created.pem())
        return created

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwks(self) -> dict[str, Any]:
        """The public half, as served at ``/.well-known/jwks.json``."""
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": LOCAL_KEY_ID, "use": "sig", "alg": "ES256"}]}

    def issue(
        self,
        subject: str,
        role: Role,
        scope: str,
        *,
        patient_id: str | None = None,
        lifetime: timedelta = MAX_ACCESS_TOKEN_LIFETIME,
        now: float | None = None,
    ) -> str:
        if lifetime > MAX_ACCESS_TOKEN_LIFETIME or lifetime <= timedelta(0):
            raise TokenError(f"access tokens live at most {MAX_ACCESS_TOKEN_LIFETIME}")
        issued = int(time.time() if now is None else now)
        names = ClaimNames()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime.total_seconds()),
            "jti": str(uuid.uuid4()),
            "scope": scope,
            names.role: role.value,
        }
        if patient_id is not None:
            claims[names.patient] = patient_id
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": LOCAL_KEY_ID})


VerifyingKey = jwt.PyJWK | ec.EllipticCurvePublicKey
JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(slots=True)
class _KeySet:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An OpenID Connect issuer whose tokens the gateway accepts."""

    issuer: str
    audience: str
    fetch_jwks: JwksFetcher
    claims: ClaimNames = ClaimNames()
    jwks_max_age: timedelta = timedelta(hours=1)
    refetch_interval: timedelta = timedelta(seconds=60)
    """An unknown ``kid`` refetches the key set (key rotation), at most this often."""


class TokenVerifier:
    """Verifies bearer tokens of the local issuer and of the trusted OpenID Connect issuers."""

    def __init__(self, local: LocalIssuer | None, trusted: tuple[TrustedIssuer, ...] = ()) -> None:
        self._local = local
        self._trusted = {issuer.issuer: issuer for issuer in trusted}
        self._key_sets: dict[str, _KeySet] = {issuer.issuer: _KeySet() for issuer in trusted}
        self._lock = asyncio.Lock()

    async def verify(self, token: str, *, now: float | None = None) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError("the bearer token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise TokenError(f"signature algorithm {algorithm!r} is not accepted")
        issuer = unverified.get("iss")
        if self._local is not None and issuer == self._local.issuer:
            if algorithm != "ES256":
                raise TokenError("local tokens are signed with ES256")
            return self._decode(
                token, self._local.private_key.public_key(), algorithm, issuer, self._local.audience, ClaimNames(), now
            )
        trusted = self._trusted.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise TokenError("the token's issuer is not trusted")
        key = await self._key(trusted, header.get("kid"))
        return self._decode(token, key, algorithm, trusted.issuer, trusted.audience, trusted.claims, now)

    async def _key(self, trusted: TrustedIssuer, kid: object) -> jwt.PyJWK:
        if not isinstance(kid, str):
            raise TokenError("the token names no signing key (kid)")
        current = time.monotonic()
        key_set = self._key_sets[trusted.issuer]
        age = current - key_set.fetched_at
        unknown = kid not in key_set.keys and age > trusted.refetch_interval.total_seconds()
        if unknown or age > trusted.jwks_max_age.total_seconds():
            async with self._lock:
                key_set = self._key_sets[trusted.issuer] = await self._fetch(trusted, current)
        key = key_set.keys.get(kid)
        if key is None:
            raise TokenError("the token's signing key is not in the issuer's key set")
        return key

    @staticmethod
    async def _fetch(trusted: TrustedIssuer, now: float) -> _KeySet:
        document = await trusted.fetch_jwks()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(dict(entry))
            except jwt.PyJWTError:
                continue  # a key of a type we do not use (an encryption key, an unknown curve)
        return _KeySet(keys, now)

    @staticmethod
    def _decode(  # noqa: PLR0917 - private step of verify
        token: str,
        key: VerifyingKey,
        algorithm: str,
        issuer: str,
        audience: str,
        names: ClaimNames,
        now: float | None,
    ) -> Principal:
        try:
            claims = _decode_at(token, key, algorithm, issuer, audience, time.time() if now is None else now)
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("the token's issuer does not match") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token does not verify ({type(exc).__name__})") from exc
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > MAX_ACCESS_TOKEN_LIFETIME.total_seconds() + CLOCK_LEEWAY.total_seconds():
            raise TokenError(f"the token lives longer than {MAX_ACCESS_TOKEN_LIFETIME}")
        try:
            role = Role(str(claims.get(names.role)))
        except ValueError as exc:
            raise TokenError(f"the token's {names.role!r} claim names no PulseBridge role") from exc
        scope, patient, token_id = claims.get("scope"), claims.get(names.patient), claims.get("jti")
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            scopes=parse_scopes(scope if isinstance(scope, str) else ""),
            issuer=issuer,
            patient_id=patient if isinstance(patient, str) else None,
            token_id=token_id if isinstance(token_id, str) else None,
        )


def _decode_at(token: str, key: VerifyingKey, algorithm: str, issuer: str, audience: str, now: float) -> dict[str, Any]:  # noqa: PLR0917 - private helper
    """Verify signature, issuer and audience, then time as of ``now`` (PyJWT would read its own clock)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    leeway = CLOCK_LEEWAY.total_seconds()
    if claims["exp"] + leeway <= now:
        raise jwt.ExpiredSignatureError("expired")
    if claims.get("nbf", claims["iat"]) - leeway > now:
        raise jwt.ImmatureSignatureError("not yet valid")
    return claims
