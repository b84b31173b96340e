"""Operations API of the EHR push: the outbox per destination, dead letters, and replaying them (administrators)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from gateway.api.access import CallerDep, require_admin
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.storage.outbox import DeadLetter

RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a dead-letter (outbox row) id")]
DestinationName = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]

router = APIRouter(prefix="/api/v1/outbox", tags=["operations"], responses=ERROR_RESPONSES)


def _json(response: object) -> Response:
    return Response(dumps(response), media_type="application/json")


def dead_letter_json(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.id,
        "destination": letter.destination,
        "observation": f"Observation/{letter.reading_key}",
        "time": letter.time.isoformat(),
        "attempts": letter.attempts,
        "error": letter.error,
        "http_status": letter.http_status,
        "operation_outcome": None if letter.operation_outcome is None else _raw(letter.operation_outcome),
        "updated_at": letter.updated_at.isoformat(),
    }


def _raw(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@router.get("")
async def outbox_status(rt: RuntimeDep, principal: CallerDep) -> Response:
    require_admin(principal)
    counts = await rt.store.outbox_status()
    return _json(
        [
            {
                "destination": c.destination,
                "status": c.status,
                "count": c.count,
                "oldest_due": c.oldest_due.isoformat() if c.oldest_due else None,
                "oldest_queued": c.oldest_created.isoformat() if c.oldest_created else None,
            }
            for c in counts
        ]
    )


@router.get("/dead-letters")
async def list_dead_letters(
    rt: RuntimeDep,
    principal: CallerDep,
    destination: DestinationName = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="rows after this id (the last id of the previous page)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    require_admin(principal)
    letters = await rt.store.dead_letters(destination, after, limit)
    return _json([dead_letter_json(letter) for letter in letters])


@router.post("/dead-letters/replay")
async def replay_all_dead_letters(rt: RuntimeDep, principal: CallerDep, destination: DestinationName = None) -> Response:
    """Every dead letter (of ``destination``) is queued again and pushed as soon as its EHR takes it."""
    require_admin(principal)
    return _json({"replayed": await rt.store.replay_dead_letters(None, destination, datetime.now(UTC))})


@router.post("/dead-letters/{row_id}/replay")
async def replay_dead_letter(row_id: RowId, rt: RuntimeDep, principal: CallerDep) -> Response:
    require_admin(principal)
    if await rt.store.replay_dead_letters([row_id], None, datetime.now(UTC)) == 0:
        raise HTTPException(404, f"no dead letter {row_id}")
    return _json({"replayed": 1})
