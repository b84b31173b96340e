"""What the CapabilityStatement says about search: one documented row per parameter in the tables."""

from __future__ import annotations

from fhir_mapper.resources import ResourceCapability, SearchParameter

LASTN_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
_P = SearchParameter

OBSERVATION = ResourceCapability(
    "Observation",
    ("read", "search-type", "create"),
    (
        _P("patient", "reference", "The patient (id or Patient/id); one per search."),
        _P("subject", "reference", "Same as patient."),
        _P("code", "token", "LOINC or IEEE 11073 MDC: code, system|code, |code or system|; comma-separated values are OR-ed."),
        _P("category", "token", "vital-signs (observation-category) or phd (PHD IG); as code or system|code."),
        _P(
            "date",
            "date",
            "Effective time: eq, ne, gt, lt, ge, le, sa, eb, ap; a value covers its precision; repeat for a range.",
        ),
        _P("device", "reference", "The device (Device/id or id)."),
        _P("identifier", "token", "urn:ietf:rfc:3986|urn:uuid:<reading key>, or the value alone."),
        _P("_lastUpdated", "date", "When the gateway received the reading (meta.lastUpdated); same prefixes as date."),
        _P("_count", "number", "Page size (capped at the configured maximum); 0 returns the total only."),
        _P("_sort", "string", "date or -date (default -date); any other is ignored with a warning."),
        _P("_summary", "token", "count: the total only."),
        _P("_total", "token", "accurate: always give Bundle.total (counted); otherwise only when the first page holds all."),
    ),
    (
        (
            "lastn",
            LASTN_DEFINITION,
            "Latest Observations per code of one patient by effective time: patient (required), category, code, date, max.",
        ),
    ),
)
PATIENT = ResourceCapability(
    "Patient",
    ("read", "search-type"),
    (
        _P("_id", "token", "Patient ids, comma-separated."),
        _P("identifier", "token", "MRN, as value or https://pulsebridge.dev/fhir/mrn|value."),
        _P("name", "string", "Case-insensitive start of the name or of a word in it."),
        _P("_count", "number", "Page size (capped)."),
    ),
)
DEVICE = ResourceCapability(
    "Device",
    ("read", "search-type"),
    (
        _P("_id", "token", "Device resource ids, comma-separated."),
        _P("identifier", "token", "Device id, as value or https://pulsebridge.dev/fhir/device-id|value."),
        _P("patient", "reference", "Devices assigned to this patient now."),
        _P("_count", "number", "Page size (capped)."),
    ),
)
FLAG = ResourceCapability(
    "Flag",
    ("read", "search-type"),
    (
        _P("patient", "reference", "The patient (id or Patient/id); alerts of the care team's patients by default."),
        _P("_count", "number", "Page size (capped at 1000), newest first."),
    ),
)
RESOURCES = (OBSERVATION, PATIENT, DEVICE, FLAG)
SYSTEM_INTERACTIONS = ("batch", "transaction")
"""POST /fhir: Bundles of Observations created by devices (HTTP ingest)."""
