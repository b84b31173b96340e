"""Validate FHIR R4 JSON with the ``fhir.resources`` models.

``fhir.resources`` 8 ships R5, R4B and STU3 but no R4; Observation, Device, Patient, Flag and
Bundle have the same shape in R4 and R4B, so R4B models check our R4 output.
"""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError as PydanticValidationError

from device_adapters.errors import InputRejectedError, ReasonCode, Stage

_MODELS: dict[str, Any] = {
    "Observation": Observation,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Device": Device,
    "Flag": Flag,
    "OperationOutcome": OperationOutcome,
    "Patient": Patient,
}


class FhirValidationError(InputRejectedError):
    """A resource PulseBridge built does not validate: a bug, kept out of the store."""

    stage = Stage.FHIR_MAP


def validate_resource(resource: bytes | dict[str, Any]) -> None:
    """Raise :class:`FhirValidationError` when ``resource`` is not valid R4 (checked as R4B)."""
    document = orjson.loads(resource) if isinstance(resource, bytes) else resource
    model = _MODELS.get(document.get("resourceType", ""))
    if model is None:
        raise FhirValidationError(ReasonCode.FHIR_VALIDATION, f"no validator for resourceType {document.get('resourceType')!r}")
    try:
        model.model_validate(document)
    except PydanticValidationError as exc:
        raise FhirValidationError(ReasonCode.FHIR_VALIDATION, str(exc)) from exc
