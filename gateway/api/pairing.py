"""Pairing: a patient (or their care team) makes a code; the device or its hub redeems it once.

- ``POST /api/v1/patients/{id}/pairing-codes`` — needs a token whose ``Device.c`` scope reaches
  the patient; answers the code (``BCDF-GHJK``, 10 minutes, single use) as text and QR code.
- ``POST /api/v1/pairing/redeem`` — no token: the code is the proof. The device is registered
  if new and assigned to the patient, and receives its own API token, once (only its hash is
  kept) — or, with ``"credential": "mqtt"``, its broker user and password, written to the
  broker's password file. Failed attempts are throttled per source address and per device id (429 with
  Retry-After); a device paired to another patient is refused until it is unpaired.
- ``DELETE /api/v1/devices/{device_id}/pairing`` — unpairing: the device's credentials are
  revoked (its token fails at once, and the broker reloads its password file, which cuts a live
  MQTT session) and its assignment ends now, so later readings are not attributed to the patient.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from device_adapters.errors import RegistryError
from device_adapters.jsonwire import dumps
from device_adapters.mqtt.native import topic_for
from device_adapters.readings import DEVICE_ID_PATTERN
from gateway.api.access import (
    CallerDep,
    ConflictError,
    HiddenError,
    RefusedError,
    ThrottledError,
    patient_access,
)
from gateway.api.audit_trail import agent_of
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.auth.pairing import (
    CODE_LIFETIME,
    PairingGrant,
    code_digest,
    display,
    new_code,
    new_device_token,
    normalize,
    qr_svg,
)
from gateway.auth.scopes import Interaction
from gateway.mqtt_sync import BROKER_CREDENTIAL_KIND, password_hash, sync_broker_passwords
from gateway.runtime import Runtime
from gateway.storage import PatientQuery

router = APIRouter(prefix="/api/v1", tags=["pairing"], responses=ERROR_RESPONSES)

_NAME = r"^[a-z][a-z0-9_-]{0,63}$"


class PairingCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_kind: str | None = Field(default=None, pattern=_NAME, description="what is to be paired (cuff, scale, hub…)")


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, description="as shown: BCDF-GHJK (case and dashes do not matter)")
    device_id: str = Field(pattern=f"^{DEVICE_ID_PATTERN.pattern}$", description="the device's own id (serial, MAC)")
    kind: str | None = Field(default=None, pattern=_NAME)
    display_name: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")
    credential: Literal["api-token", "mqtt"] = Field(
        default="api-token", description="an API token (HTTP ingest) or a broker password (MQTT)"
    )


def _json(body: object, status: int) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


@router.post("/patients/{patient_id}/pairing-codes", status_code=201)
async def create_pairing_code(
    patient_id: str, rt: RuntimeDep, principal: CallerDep, request: Annotated[PairingCodeRequest | None, Body()] = None
) -> Response:
    access = await patient_access(rt, principal, "Device", Interaction.CREATE)
    known = access.reaches(patient_id) and await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}), count=1))
    if not known:
        raise HiddenError(f"Patient/{patient_id} is not known")
    code, now = new_code(), datetime.now(UTC)
    grant = PairingGrant(patient_id, agent_of(principal), now, now + CODE_LIFETIME, request.device_kind if request else None)
    await rt.store.add_pairing_code(code_digest(code, rt.auth.pairing_key), grant)
    shown = display(code)
    body = {
        "code": shown,
        "expires_at": grant.expires_at.isoformat(),
        "qr_svg": qr_svg(f"pulsebridge:pair:{shown}"),
        "redeem": "/api/v1/pairing/redeem",
    }
    return _json(body, 201)


@router.post("/pairing/redeem", status_code=201)
async def redeem_pairing_code(http: Request, rt: RuntimeDep, request: RedeemRequest) -> Response:
    now, throttle = datetime.now(UTC), rt.auth.pairing_throttle
    keys = (f"address:{http.client.host if http.client else 'unknown'}", f"device:{request.device_id}")
    waits = [wait for key in keys if (wait := throttle.retry_after(key, now)) is not None]
    if waits:
        raise ThrottledError("too many failed pairing attempts: try again later", math.ceil(max(waits).total_seconds()))
    code = normalize(request.code)
    grant = await rt.store.redeem_pairing_code(code_digest(code, rt.auth.pairing_key), request.device_id, now) if code else None
    if grant is None:
        for key in keys:
            throttle.failed(key, now)
        raise RefusedError("the pairing code is not valid: wrong, expired or already used")
    registration = (await rt.store.registrations({request.device_id})).get(request.device_id)
    if registration is None:
        try:
            await rt.store.add_device(request.device_id, request.kind or grant.device_kind, request.display_name)
        except RegistryError:  # registered meanwhile by a concurrent redemption of another code
            registration = (await rt.store.registrations({request.device_id})).get(request.device_id)
    holder = registration.patient_at(now) if registration is not None else None
    if holder is not None and holder != grant.patient_id:
        # Taking over a device that reports for someone else is how readings reach the wrong record.
        raise ConflictError(f"device {request.device_id!r} is paired to another patient: unpair it first")
    await rt.store.assign_device(request.device_id, grant.patient_id, None)
    return _json(await _credential(rt, request), 201)


async def _credential(rt: Runtime, request: RedeemRequest) -> dict[str, object]:
    """The device's own secret, shown this once: only its hash is kept."""
    if request.credential == "mqtt":
        password = secrets.token_urlsafe(24)
        await rt.store.add_device_credential(
            request.device_id, BROKER_CREDENTIAL_KIND, password_hash(request.device_id, password)
        )
        await sync_broker_passwords(rt.store, rt.settings.mqtt)
        mqtt = {"username": request.device_id, "password": password, "client_id": request.device_id,
                "topic": topic_for(request.device_id), "qos": 1}  # fmt: skip
        return {"device_id": request.device_id, "mqtt": mqtt}
    token, token_hash = new_device_token(request.device_id)
    await rt.store.add_device_credential(request.device_id, "api-token", token_hash)
    return {"device_id": request.device_id, "token_type": "Bearer", "token": token, "ingest": "/fhir/Observation"}


@router.delete("/devices/{device_id}/pairing")
async def unpair_device(device_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await patient_access(rt, principal, "Device", Interaction.DELETE)
    now = datetime.now(UTC)
    registration = (await rt.store.registrations({device_id})).get(device_id)
    holder = registration.patient_at(now) if registration is not None else None
    if registration is None or not access.reaches_compartment(holder):
        raise HiddenError(f"device {device_id!r} is not known")
    revoked = await rt.store.revoke_device_credentials(device_id, now)
    ended = await rt.store.end_assignment(device_id, now)
    if rt.settings.mqtt.managed_password_file is not None:
        await sync_broker_passwords(rt.store, rt.settings.mqtt)  # a live MQTT session is cut now
    return _json({"device_id": device_id, "credentials_revoked": revoked, "assignment_ended": ended}, 200)
