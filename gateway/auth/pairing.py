"""Pairing codes: a patient (or their care team) lets a device or hub write as itself.

A code is 8 characters from RFC 8628's 20-consonant alphabet (20^8 ≈ 2^34.6: no vowels, so no
words; no look-alikes), shown as ``BCDF-GHJK`` and as a QR code. It is single use, expires
after 10 minutes, and only its keyed digest is stored, so a copy of the database does not pair
anything. Guessing is throttled per source address and per device: with 5 failures per
10 minutes, 10,000 guesses from 10 addresses get 50 tries at a 1-in-25-billion code.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import segno

PAIRING_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
CODE_LENGTH = 8
CODE_LIFETIME = timedelta(minutes=10)
_SEPARATORS = str.maketrans("", "", "- \t")


def new_code() -> str:
    return "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(CODE_LENGTH))


def display(code: str) -> str:
    """How the code is shown to a person: two groups of four."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize(entered: str) -> str | None:
    """The code a person typed (any case, dashes and spaces), or None if it cannot be one."""
    code = entered.translate(_SEPARATORS).upper()
    if len(code) != CODE_LENGTH or any(character not in PAIRING_ALPHABET for character in code):
        return None
    return code


def code_digest(code: str, key: bytes) -> bytes:
    """What the store keeps: HMAC-SHA-256 under the gateway's secret (short codes hash fast)."""
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PairingGrant:
    """A code's promise: the device that redeems it in time belongs to this patient."""

    patient_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    device_kind: str | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class AttemptThrottle:
    """Failed attempts per key (a source address, a device id) in a sliding window.

    In memory: each gateway process throttles what reaches it, which bounds a guesser by the
    number of processes too. ``retry_after`` says how long a key must wait.
    """

    def __init__(self, limit: int = 5, window: timedelta = timedelta(minutes=10), max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._failures: dict[str, deque[datetime]] = {}

    def retry_after(self, key: str, now: datetime) -> timedelta | None:
        """None if ``key`` may try now, else how long until it may."""
        failures = self._recent(key, now)
        if failures is None or len(failures) < self._limit:
            return None
        return failures[0] + self._window - now

    def failed(self, key: str, now: datetime) -> None:
        failures = self._recent(key, now)
        if failures is None:
            if len(self._failures) >= self._max_keys:
                self._forget_idle(now)
            failures = self._failures[key] = deque(maxlen=self._limit)
        failures.append(now)

    def _recent(self, key: str, now: datetime) -> deque[datetime] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] + self._window <= now:
            failures.popleft()
        return failures

    def _forget_idle(self, now: datetime) -> None:
        idle = [key for key, failures in self._failures.items() if not failures or failures[-1] + self._window <= now]
        for key in idle:
            del self._failures[key]
        if len(self._failures) >= self._max_keys:
            # Still full of active keys: the oldest go, so a flood of addresses cannot grow memory.
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[: self._max_keys // 10]:
                del self._failures[key]


DEVICE_TOKEN_PREFIX = "pbd."  # noqa: S105 - a format marker, not a secret


def new_device_token(device_id: str) -> tuple[str, str]:
    """A device's API token and the hash the store keeps (the token is shown once, never stored).

    ``pbd.<device id>.<256 random bits>``: the device id says whose credentials to check, the
    secret is compared by its SHA-256 (random secrets need no slow hash).
    """
    secret = secrets.token_urlsafe(32)
    return f"{DEVICE_TOKEN_PREFIX}{device_id}.{secret}", device_token_hash(secret)


def device_token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_device_token(token: str) -> tuple[str, str] | None:
    """(device id, secret) of a device token, or None if it is not one."""
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        return None
    device_id, dot, secret = token[len(DEVICE_TOKEN_PREFIX) :].rpartition(".")
    return (device_id, secret) if dot and device_id and secret else None


def pairing_key(signing_key_pem: bytes) -> bytes:
    """The HMAC key of pairing-code digests, derived from the gateway's signing key.

    Codes then die with the key, like the tokens it signs (an in-memory key: at restart).
    """
    return hmac.new(signing_key_pem, b"pulsebridge pairing codes v1", hashlib.sha256).digest()


def qr_svg(text: str) -> str:
    """The text as a QR code (SVG), for a phone or a hub's camera."""
    image = io.BytesIO()
    segno.make(text, error="m").save(image, kind="svg", scale=4, border=2)
    return image.getvalue().decode()
