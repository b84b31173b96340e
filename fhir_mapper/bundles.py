"""Transaction and batch Bundles of conditional creates, split to what a server accepts.

Every entry is ``POST Observation`` with ``ifNoneExist: identifier=<system>|<value>``: a reading
sent twice (a lost response, two workers) is created once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal
from urllib.parse import quote

import orjson

from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value
from fhir_mapper.observation import MappedObservation

BundleType = Literal["transaction", "batch"]


def if_none_exist(system: str, value: str) -> str:
    """The conditional-create query for one identifier (system and value percent-encoded)."""
    return f"identifier={quote(system, safe='')}|{quote(value, safe='')}"


def create_entry(observation: MappedObservation) -> dict[str, object]:
    return {
        "fullUrl": f"urn:uuid:{observation.key}",
        "resource": orjson.Fragment(observation.resource),
        "request": {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": if_none_exist(IDENTIFIER_SYSTEM, identifier_value(observation.key)),
        },
    }


def bundles(observations: Sequence[MappedObservation], bundle_type: BundleType, max_entries: int) -> Iterator[bytes]:
    """Bundles of at most ``max_entries`` conditional creates each, in order."""
    if max_entries < 1:
        msg = f"max_entries must be at least 1, got {max_entries}"
        raise ValueError(msg)
    for start in range(0, len(observations), max_entries):
        chunk = observations[start : start + max_entries]
        yield orjson.dumps({"resourceType": "Bundle", "type": bundle_type, "entry": [create_entry(o) for o in chunk]})
