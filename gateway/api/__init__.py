"""HTTP API: FHIR R4 under /fhir, health under /healthz."""
