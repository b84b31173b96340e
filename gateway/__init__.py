"""The PulseBridge gateway: FastAPI app, ingest pipeline, storage, FHIR API, CLI."""

__version__ = "0.1.0"
