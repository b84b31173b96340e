"""Bearer tokens: local ES256 tokens and an OpenID Connect issuer's, and every way to fake one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth.scopes import Interaction, grants
from gateway.auth.tokens import LocalIssuer, Role, TokenError, TokenVerifier, TrustedIssuer

LOCAL = LocalIssuer.generate("https://gateway.example/", "https://gateway.example/fhir")
IDP = "https://idp.example/realms/clinic"
AUDIENCE = "pulsebridge"
IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROTATED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "RS256", "use": "sig"}


class _Jwks:
    """The issuer's JWKS endpoint: counts fetches, serves whatever keys the test sets."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.fetches = 0

    async def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        return {"keys": self.keys}


def _idp_token(key: rsa.RSAPrivateKey = IDP_KEY, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": IDP, "aud": AUDIENCE, "sub": "dr-1", "iat": now, "exp": now + 300, "pulsebridge_role": "practitioner",
              "scope": "openid user/Observation.rs"} | overrides  # fmt: skip
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _verifier(jwks: _Jwks) -> TokenVerifier:
    return TokenVerifier(LOCAL, (TrustedIssuer(IDP, AUDIENCE, jwks),))


async def test_a_local_token_verifies_with_its_role_scopes_and_patient() -> None:
    token = LOCAL.issue("pat-a", Role.PATIENT, "patient/Observation.rs launch/patient", patient_id="pat-a")
    principal = await _verifier(_Jwks()).verify(token)
    assert (principal.subject, principal.role, principal.patient_id, principal.issuer) == (
        "pat-a",
        Role.PATIENT,
        "pat-a",
        LOCAL.issuer,
    )
    assert grants(principal.scopes, "Observation", Interaction.SEARCH)
    assert not grants(principal.scopes, "Observation", Interaction.CREATE)
    assert principal.token_id


async def test_an_idp_token_verifies_through_its_key_set() -> None:
    jwks = _Jwks(_jwk(IDP_KEY, "k1"))
    verifier = _verifier(jwks)
    principal = await verifier.verify(_idp_token())
    assert (principal.subject, principal.role) == ("dr-1", Role.PRACTITIONER)
    await verifier.verify(_idp_token())
    assert jwks.fetches == 1  # cached


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_do_not_hammer_the_issuer() -> None:
    jwks = _Jwks(_jwk(IDP_KEY, "k1"))
    verifier = TokenVerifier(None, (TrustedIssuer(IDP, AUDIENCE, jwks, refetch_interval=timedelta(0)),))
    await verifier.verify(_idp_token())
    jwks.keys.append(_jwk(ROTATED_KEY, "k2"))
    assert (await verifier.verify(_idp_token(ROTATED_KEY, "k2"))).subject == "dr-1"
    assert jwks.fetches == 2

    slow = _Jwks(_jwk(IDP_KEY, "k1"))
    throttled = TokenVerifier(None, (TrustedIssuer(IDP, AUDIENCE, slow, refetch_interval=timedelta(minutes=1)),))
    await throttled.verify(_idp_token())
    for _ in range(20):
        with pytest.raises(TokenError, match="not in the issuer's key set"):
            await throttled.verify(_idp_token(ROTATED_KEY, "k-unknown"))
    assert slow.fetches == 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": LOCAL.issuer, "aud": LOCAL.audience, "sub": "admin-1", "iat": now, "exp": now + 300,
            "pulsebridge_role": "admin", "scope": "user/*.cruds"} | overrides  # fmt: skip


def _hs256_with_public_key() -> str:
    public_pem = LOCAL.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "pulsebridge-local-1"}
    signing_input = _unsigned(header, _claims()).rsplit(".", 1)[0]
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: _unsigned({"alg": "none", "typ": "JWT"}, _claims()), "algorithm 'none' is not accepted"),
        (_hs256_with_public_key, "algorithm 'HS256' is not accepted"),
        (lambda: LOCAL.issue("a", Role.ADMIN, "user/*.cruds", now=time.time() - 7200), "expired"),
        (
            lambda: LocalIssuer(LOCAL.issuer, "https://other.example/fhir", LOCAL.private_key).issue("a", Role.ADMIN, ""),
            "another audience",
        ),
        (lambda: LocalIssuer.generate(LOCAL.issuer, LOCAL.audience).issue("a", Role.ADMIN, ""), "does not verify"),
        (
            lambda: LocalIssuer.generate("https://evil.example/", LOCAL.audience).issue("a", Role.ADMIN, ""),
            "issuer is not trusted",
        ),
        (lambda: _idp_token(exp=int(time.time()) + 3 * 3600), "lives longer than"),
        (lambda: _idp_token(pulsebridge_role="superuser"), "names no PulseBridge role"),
        (lambda: _idp_token(pulsebridge_role=None), "names no PulseBridge role"),
        (lambda: _idp_token(aud="someone-else"), "another audience"),
        (lambda: _idp_token(sub=None), "does not verify"),
        (
            lambda: _idp_token(iat=int(time.time()) + 3600, exp=int(time.time()) + 3900, nbf=int(time.time()) + 3600),
            "does not verify",
        ),
        (lambda: _idp_token(kid="k-unknown"), "not in the issuer's key set"),
        (lambda: "not.a.jwt", "not a well-formed JWT"),
        (lambda: "", "not a well-formed JWT"),
    ],
)
async def test_forged_expired_and_foreign_tokens_are_refused(token: Any, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        await _verifier(_Jwks(_jwk(IDP_KEY, "k1"))).verify(token())


def test_local_tokens_live_at_most_an_hour_and_the_key_round_trips() -> None:
    with pytest.raises(TokenError, match="at most"):
        LOCAL.issue("a", Role.ADMIN, "", lifetime=timedelta(hours=2))
    again = LocalIssuer.from_pem(LOCAL.issuer, LOCAL.audience, LOCAL.pem())
    assert again.jwks() == LOCAL.jwks()
    assert LOCAL.jwks()["keys"][0]["alg"] == "ES256"
    assert "d" not in LOCAL.jwks()["keys"][0]  # never the private part
    rsa_pem = IDP_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(TokenError, match="EC P-256"):
        LocalIssuer.from_pem(LOCAL.issuer, LOCAL.audience, rsa_pem)
