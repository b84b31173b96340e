"""Stored Observations as Bundle entries for one EHR: pure, so the golden tests need no server.

What the gateway stores names its own resources: ``Patient/<local id>``, ``Device/<uuid>``. The
EHR knows neither, and a transaction that references what the server cannot resolve is
rejected. So the subject becomes the EHR's Patient (a literal or a conditional reference) and
devices become logical references by identifier (``Reference.identifier``), which need no
resolution and still say which device measured the reading and which gateway carried it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import orjson

from fhir_mapper.bundles import if_none_exist
from fhir_mapper.identity import IDENTIFIER_SYSTEM

BundleType = Literal["transaction", "batch"]
_DEVICE_PREFIX = "Device/"


@dataclass(frozen=True, slots=True)
class PushEntry:
    """One outbox row ready to send: the Observation as the EHR should hold it, and how to write it."""

    reading_key: str
    resource: dict[str, Any]
    method: Literal["POST", "PUT"] = "POST"
    """POST: conditional create (new readings); PUT: conditional update (corrections)."""


def local_patient(resource: dict[str, Any]) -> str | None:
    """The gateway's patient id in a stored Observation's subject."""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference.removeprefix("Patient/")
    return None


def conditional_patient_reference(system: str, value: str) -> str:
    return f"Patient?identifier={quote(system, safe='')}|{quote(value, safe='')}"


def for_destination(resource: dict[str, Any], subject_reference: str | None) -> dict[str, Any]:
    """A copy of a stored Observation addressed to the EHR (``subject_reference`` None keeps the subject)."""
    outgoing = {name: value for name, value in resource.items() if name != "id"}
    meta = outgoing.get("meta")
    if isinstance(meta, dict):
        # The EHR keeps its own version and update time; the profile claims stay.
        kept = {name: value for name, value in meta.items() if name not in {"lastUpdated", "versionId"}}
        if kept:
            outgoing["meta"] = kept
        else:
            del outgoing["meta"]
    if subject_reference is not None:
        outgoing["subject"] = {"reference": subject_reference}
    device = outgoing.get("device")
    if isinstance(device, dict):
        outgoing["device"] = _logical(device)
    extensions = outgoing.get("extension")
    if isinstance(extensions, list):
        outgoing["extension"] = [_logical_extension(extension) for extension in extensions]
    return outgoing


def bundle(entries: Sequence[PushEntry], bundle_type: BundleType) -> bytes:
    """A Bundle of conditional creates (and updates): sending it twice changes nothing the second time."""
    return orjson.dumps({"resourceType": "Bundle", "type": bundle_type, "entry": [_entry(entry) for entry in entries]})


def _entry(entry: PushEntry) -> dict[str, Any]:
    condition = if_none_exist(IDENTIFIER_SYSTEM, f"urn:uuid:{entry.reading_key}")
    if entry.method == "PUT":
        request = {"method": "PUT", "url": f"Observation?{condition}"}
    else:
        request = {"method": "POST", "url": "Observation", "ifNoneExist": condition}
    return {"fullUrl": f"urn:uuid:{entry.reading_key}", "resource": entry.resource, "request": request}


def _logical(reference: dict[str, Any]) -> dict[str, Any]:
    target = reference.get("reference")
    if not isinstance(target, str) or not target.startswith(_DEVICE_PREFIX):
        return reference
    logical: dict[str, Any] = {
        "type": "Device",
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": f"urn:uuid:{target.removeprefix(_DEVICE_PREFIX)}"},
    }
    if "display" in reference:
        logical["display"] = reference["display"]
    return logical


def _logical_extension(extension: object) -> object:
    if isinstance(extension, dict) and isinstance(extension.get("valueReference"), dict):
        return {**extension, "valueReference": _logical(extension["valueReference"])}
    return extension
