"""Account passwords for the dashboard's sign-in: scrypt from the standard library.

The stored form is ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (base64url), so the cost can be
raised later and old hashes still verify. n = 2^15, r = 8, p = 1 is the cost OWASP's password
storage guidance names for scrypt (about 32 MiB and a few tens of milliseconds per check).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from device_adapters.errors import PulseBridgeError

LOG2_N, BLOCK_SIZE, PARALLELISM = 15, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
MIN_LENGTH, MAX_LENGTH = 12, 1024
_MAX_LOG2_N = 20
"""A stored hash asking for more work than this is refused rather than computed (a tampered row must not stall logins)."""


class PasswordError(PulseBridgeError):
    """A password that may not be set (too short, too long); the message says which rule."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p, dklen=HASH_BYTES)


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    check_policy(password)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, log2_n, BLOCK_SIZE, PARALLELISM)
    return f"scrypt${log2_n}${BLOCK_SIZE}${PARALLELISM}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed or over-costly stored hash matches nothing."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        cost = (int(log2_n), int(r), int(p))
        expected = _unb64(digest)
        salt_bytes = _unb64(salt)
    except ValueError:
        return False
    if scheme != "scrypt" or not (1 <= cost[0] <= _MAX_LOG2_N) or not (1 <= cost[1] <= 32) or not (1 <= cost[2] <= 4):  # noqa: PLR2004 - sane scrypt bounds
        return False
    return hmac.compare_digest(_scrypt(password, salt_bytes, *cost), expected)


DUMMY_HASH = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
"""Checked against when the account has no password, so an unknown account costs the same time as a wrong password."""
