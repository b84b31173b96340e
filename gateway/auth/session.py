"""The dashboard's browser session: a short-lived gateway token in an HttpOnly cookie.

A signed-in browser holds the same ES256 access token an API client would send as a bearer,
only in a cookie the page's scripts cannot read (HttpOnly) and the browser sends to this site
alone (SameSite=Strict). The token lives ``session_idle_minutes`` (15 at most); each request
more than a minute into it renews the cookie, so a session ends after that long idle.

Requests that change something and arrive with the cookie (not with a bearer header) must also
carry ``X-PulseBridge-CSRF: 1`` — a header another site's form or image cannot send and a
cross-site script cannot add without a CORS preflight this API never grants — and, when the
browser sends an ``Origin``, it must be this site's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.auth.tokens import Role

SESSION_COOKIE = "pulsebridge_session"
CSRF_HEADER = "x-pulsebridge-csrf"
RENEW_AFTER_SECONDS = 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION_SCOPES: Mapping[Role, str] = MappingProxyType(
    {
        Role.PATIENT: "patient/Observation.rs patient/Patient.rs patient/Device.cruds patient/Flag.rs",
        Role.CAREGIVER: "user/Observation.rs user/Patient.rs user/Device.cruds user/Flag.rus",
        Role.PRACTITIONER: "user/Observation.rs user/Patient.rs user/Device.cruds user/Flag.rus",
        Role.ADMIN: "user/*.cruds",
    }
)
"""What a signed-in person may do, by role: what the demo hands out, plus alerts (Flag). Backend
systems and devices have no dashboard sign-in."""


def csrf_problem(method: str, headers: Mapping[str, str], own_origin: str) -> str | None:
    """Why a cookie-authenticated request must be refused as a possible cross-site forgery (None: it may go on)."""
    if method in SAFE_METHODS:
        return None
    if headers.get(CSRF_HEADER) != "1":
        return f"a request that changes something with the session cookie needs the {CSRF_HEADER} header"
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/") != own_origin.rstrip("/"):
        return "the request comes from another site"
    return None
