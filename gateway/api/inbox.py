"""The unassigned inbox: readings no patient could be found for, waiting to be claimed.

A shared blood pressure cuff or scale reports a user slot nobody holds, or a device reports
outside any assignment: the reading is quarantined as ``unpaired_device``, not dropped. A
care-team member, a delegated caregiver or the patient claims it for a patient they may
reach: the slot (or the device) is assigned to that patient and the reading is replayed
through the pipeline, so it is stored exactly once under the claimant's choice.

- ``GET /api/v1/inbox`` — the waiting readings of devices the caller reaches (all for
  administrators): a device is reached through any patient it is or was lent to.
- ``POST /api/v1/inbox/{row_id}/claim`` ``{"patient_id": …}`` — needs a ``Device.u`` scope
  reaching that patient. The reading's user slot (or, without one, the device) is assigned to
  the patient from the reading's own time, so this reading and later ones are theirs.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from device_adapters.errors import InputRejectedError, ReasonCode
from device_adapters.jsonwire import dumps
from device_adapters.readings import RawFrame, Reading
from gateway.api.access import CallerDep, ConflictError, HiddenError, PatientAccess, patient_access
from gateway.api.admin import quarantine_json
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.auth.scopes import Interaction
from gateway.quarantine import replay
from gateway.runtime import Runtime
from gateway.storage import QuarantineRow

router = APIRouter(prefix="/api/v1", tags=["inbox"], responses=ERROR_RESPONSES)

UNASSIGNED = ReasonCode.UNPAIRED_DEVICE.value
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="a FHIR id")


async def _reachable_devices(runtime: Runtime, access: PatientAccess, device_ids: set[str]) -> set[str]:
    """The devices reached through any patient they are or were lent to (slot holders included), in one lookup."""
    if access.everyone:
        return device_ids
    reachable = set()
    for device_id, registration in (await runtime.store.registrations(device_ids)).items():
        holders = {assignment.patient_id for assignment in registration.assignments}
        holders |= {slot.patient_id for slot in registration.slots if slot.patient_id is not None}
        if any(access.reaches(patient) for patient in holders):
            reachable.add(device_id)
    return reachable


def _waiting_reading(runtime: Runtime, row: QuarantineRow) -> Reading:
    """The quarantined reading itself (its time and user slot say what to assign)."""
    try:
        readings = runtime.pipeline.readings_of(RawFrame(row.source, row.channel, row.payload, row.first_seen))
    except InputRejectedError as exc:
        raise ConflictError(f"reading {row.id} no longer decodes: {exc.detail}") from exc
    found = next((reading for reading in readings if reading.index == (row.item_index or 0)), None)
    if found is None:
        raise ConflictError(f"reading {row.id} is not in its frame any more")
    return found


@router.get("/inbox")
async def list_inbox(rt: RuntimeDep, principal: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    access = await patient_access(rt, principal, "Device", Interaction.READ)
    rows = await rt.store.list_quarantine(limit, UNASSIGNED)
    reachable = await _reachable_devices(rt, access, {row.device_id for row in rows if row.device_id is not None})
    visible = [row for row in rows if row.device_id in reachable]
    return Response(dumps([quarantine_json(row) for row in visible]), media_type="application/json")


@router.post("/inbox/{row_id}/claim")
async def claim_reading(row_id: RowId, claim: ClaimRequest, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await patient_access(rt, principal, "Device", Interaction.UPDATE)
    row: QuarantineRow | None = await rt.store.get_quarantine(row_id)
    if (
        row is None
        or row.reason != UNASSIGNED
        or row.device_id is None
        or not access.reaches(claim.patient_id)
        or not await _reachable_devices(rt, access, {row.device_id})
    ):
        raise HiddenError(f"no waiting reading {row_id} this token may claim for Patient/{claim.patient_id}")
    reading = _waiting_reading(rt, row)
    if reading.user is None:
        await rt.store.assign_device(row.device_id, claim.patient_id, reading.time)
    else:
        await rt.store.assign_user_slot(row.device_id, reading.user, claim.patient_id, reading.time)
    outcome = await replay(rt.store, rt.pipeline, row)
    return Response(dumps(dataclasses.asdict(outcome)), media_type="application/json")
