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
    warnings: Sequence[Issue] = (),
) -> bytes:
    """A searchset Bundle around stored JSON (``(id, json)`` pairs), written without re-parsing it."""
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
    bundle: dict[str, object] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "link": [{"relation": relation, "url": url} for relation, url in links],
        "entry": bundle_entries,
    }
    return orjson.dumps(bundle)


@dataclass(frozen=True, slots=True)
class SearchParameter:
    name: str
    type: str
    documentation: str


OBSERVATION_SEARCH_PARAMETERS: tuple[SearchParameter, ...] = (
    SearchParameter("patient", "reference", "The patient the observation is about (id or Patient/id)."),
    SearchParameter("subject", "reference", "Same as patient (Patient/id)."),
    SearchParameter("code", "token", "LOINC or IEEE 11073 MDC code, optionally system|code; comma-separated values are OR-ed."),
    SearchParameter("date", "date", "Effective time with eq, gt, lt, ge, le, sa, eb prefixes; repeat for a range."),
    SearchParameter("_count", "number", "Page size (capped)."),
    SearchParameter("_sort", "string", "date or -date (default -date)."),
)


def capability_statement(software_version: str, base_url: str) -> dict[str, object]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "PulseBridge", "version": software_version},
        "implementation": {"description": "PulseBridge personal health device gateway", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Observation",
                        "profile": "http://hl7.org/fhir/StructureDefinition/Observation",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": p.name, "type": p.type, "documentation": p.documentation}
                            for p in OBSERVATION_SEARCH_PARAMETERS
                        ],
                    },
                ],
            },
        ],
    }
