"""FHIR resources the API returns around Observations: Bundles, OperationOutcomes, metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"

IssueSeverity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    severity: IssueSeverity
    code: str
    """An IssueType code: ``invalid``, ``not-found``, ``not-supported``, ``exception``…"""
    diagnostics: str

    def as_fhir(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}


def operation_outcome(issues: Sequence[Issue]) -> dict[str, object]:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_fhir() for issue in issues]}


def searchset_bundle(
    base_url: str,
    resource_type: str,
    entries: Sequence[tuple[str, str]],
    links: Sequence[tuple[str, str]],
    *,
    warnings: Sequence[Issue] = (),
    total: int | None = None,
) -> bytes:
    """A searchset Bundle around stored JSON (``(id, json)`` pairs), written without re-parsing it.

    ``total`` is left out when unknown; so is ``entry`` when there is none (FHIR JSON has no empty arrays).
    """
    bundle_entries: list[dict[str, object]] = [
        {
            "fullUrl": f"{base_url}/{resource_type}/{resource_id}",
            "resource": orjson.Fragment(resource),
            "search": {"mode": "match"},
        }
        for resource_id, resource in entries
    ]
    if warnings:
        bundle_entries.append({"resource": operation_outcome(warnings), "search": {"mode": "outcome"}})
    bundle: dict[str, object] = {"resourceType": "Bundle", "type": "searchset", "timestamp": datetime.now(UTC).isoformat()}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": relation, "url": url} for relation, url in links]
    if bundle_entries:
        bundle["entry"] = bundle_entries
    return orjson.dumps(bundle)


@dataclass(frozen=True, slots=True)
class SearchParameter:
    name: str
    type: str
    documentation: str


@dataclass(frozen=True, slots=True)
class ResourceCapability:
    """What the server does with one resource type, for the CapabilityStatement."""

    type: str
    interactions: tuple[str, ...]
    search_parameters: tuple[SearchParameter, ...]
    operations: tuple[tuple[str, str, str], ...] = ()
    """``(name, OperationDefinition canonical, documentation)``."""

    def as_fhir(self) -> dict[str, object]:
        resource: dict[str, object] = {
            "type": self.type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{self.type}",
            "interaction": [{"code": code} for code in self.interactions],
            "searchParam": [{"name": p.name, "type": p.type, "documentation": p.documentation} for p in self.search_parameters],
        }
        if self.operations:
            resource["operation"] = [
                {"name": name, "definition": definition, "documentation": documentation}
                for name, definition, documentation in self.operations
            ]
        return resource


def capability_statement(
    software_version: str, base_url: str, resources: Sequence[ResourceCapability], interactions: Sequence[str] = ()
) -> dict[str, object]:
    """``interactions`` are the whole-system ones (``batch``, ``transaction``)."""
    rest: dict[str, object] = {"mode": "server", "resource": [resource.as_fhir() for resource in resources]}
    if interactions:
        rest["interaction"] = [{"code": code} for code in interactions]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "PulseBridge", "version": software_version},
        "implementation": {"description": "PulseBridge personal health device gateway", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", FHIR_JSON],
        "rest": [rest],
    }
