"""FHIR Patient resources from the registry (id, name, MRN)."""

from __future__ import annotations

from collections.abc import Sequence

MRN_SYSTEM = "https://pulsebridge.dev/fhir/mrn"
"""The registry keeps an MRN without its issuer, so the identifier is in PulseBridge's own system."""
MRN_TYPE = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}],
}


def patient_resource(
    patient_id: str, name: str | None, mrn: str | None, identifiers: Sequence[tuple[str, str]] = ()
) -> dict[str, object]:
    """``identifiers``: (system, value) pairs the EHRs know the patient by (their MRNs)."""
    resource: dict[str, object] = {"resourceType": "Patient", "id": patient_id}
    written = [{"use": "usual", "type": MRN_TYPE, "system": MRN_SYSTEM, "value": mrn}] if mrn is not None else []
    written += [{"type": MRN_TYPE, "system": system, "value": value} for system, value in identifiers]
    if written:
        resource["identifier"] = written
    if name is not None:
        resource["name"] = [{"text": name}]
    return resource
