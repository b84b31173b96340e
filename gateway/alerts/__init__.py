"""Alerts: pure rules (NEWS2 among them), the engine task, storage, webhooks and FHIR Flags."""
