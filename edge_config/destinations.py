"""Settings of the EHRs PulseBridge pushes to: where, how to authenticate, how to name the patient, how fast.

Secrets are read from files (``*_file``), never written into the YAML, so the configuration can
be shared and versioned without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoAuthSettings(_Section):
    type: Literal["none"] = "none"


class BearerAuthSettings(_Section):
    """A long-lived token an integration engine issued (the file holds the token alone)."""

    type: Literal["bearer"]
    token_file: Path


class ClientCredentialsSettings(_Section):
    """OAuth2 client credentials with a client secret."""

    type: Literal["client_credentials"]
    token_url: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    client_secret_file: Path
    scope: str = Field(default="system/Observation.c system/Patient.rs", min_length=1)


class SmartBackendSettings(_Section):
    """SMART Backend Services: client credentials with a signed ``private_key_jwt`` assertion."""

    type: Literal["smart_backend_services"]
    token_url: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    private_key_file: Path = Field(description="PEM: an RSA key for RS384, a P-384 EC key for ES384")
    kid: str = Field(min_length=1, description="the key's id in the JWKS registered with the EHR")
    algorithm: Literal["RS384", "ES384"] = "ES384"
    scope: str = Field(default="system/Observation.c system/Patient.rs", min_length=1)


DestinationAuth = Annotated[
    NoAuthSettings | BearerAuthSettings | ClientCredentialsSettings | SmartBackendSettings, Field(discriminator="type")
]


class PatientMatchSettings(_Section):
    """How the EHR's Patient is named in each pushed Observation.

    - ``identifier_search``: ``GET Patient?identifier=system|value`` once per patient (cached); one
      match is used, none or several dead-letter the reading with the reason.
    - ``conditional_reference``: ``subject`` is ``Patient?identifier=system|value`` and the EHR
      resolves it (FHIR allows this in transactions only, so transaction Bundles are sent).
    - ``stored_id``: the patient's identifier in ``identifier_system`` *is* the EHR's Patient id.

    In every mode the identifier comes from the registry (``pulsebridge patients identifier``);
    a patient without one in ``identifier_system`` is dead-lettered, never guessed.
    """

    match: Literal["identifier_search", "conditional_reference", "stored_id"] = "identifier_search"
    identifier_system: str = Field(
        min_length=1, description="the system of the identifier the EHR knows the patient by (its MRN system)"
    )
    cache_seconds: int = Field(default=3600, ge=0, le=7 * 86_400, description="how long a search result is reused")


class DestinationSettings(_Section):
    """An EHR that receives the Observations of its patients."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="names the destination in the outbox and the logs")
    base_url: str = Field(pattern=r"^https?://", description="the EHR's FHIR base URL")
    enabled: bool = Field(default=True, description="false: new readings are not queued for it and nothing is pushed")
    kinds: list[str] | None = Field(default=None, description="only these reading kinds (default: every kind)")
    patients: list[str] | None = Field(default=None, description="only these patients (default: every patient)")
    consent: Literal["implied", "required"] = Field(
        default="implied",
        description="implied: push unless the patient revoked consent for this destination; "
        "required: push only after the patient (or their caregiver, or an administrator) granted it",
    )
    auth: DestinationAuth = Field(default_factory=NoAuthSettings)
    patient: PatientMatchSettings | None = Field(
        default=None, description="how to name the EHR's Patient; null: the gateway's own patient id is sent as is"
    )
    bundle: Literal["auto", "batch", "transaction"] = Field(
        default="auto",
        description="auto: batch when the EHR supports it (one bad reading does not hold back the others), else transaction",
    )
    batch_size: int = Field(default=100, ge=1, le=1000, description="Observations per Bundle")
    workers: int = Field(default=1, ge=1, le=16, description="concurrent senders in this gateway process")
    rate_limit_per_second: float | None = Field(default=None, gt=0, le=10_000, description="Bundles per second at most")
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="for one request, body included; a crashed gateway's claimed rows wait about twice this plus 15 s",
    )
    retry_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    retry_cap_seconds: float = Field(default=300.0, gt=0, le=86_400, description="the longest backoff between two tries")
    breaker_failures: int = Field(default=5, ge=1, le=1000, description="consecutive failed requests that open the breaker")
    breaker_cool_down_seconds: float = Field(default=30.0, ge=0, le=3600)
    poll_seconds: float = Field(default=1.0, gt=0, le=60, description="how often an idle sender looks for new rows")

    @model_validator(mode="after")
    def _consistent(self) -> DestinationSettings:
        if self.retry_base_seconds > self.retry_cap_seconds:
            msg = "retry_base_seconds must not exceed retry_cap_seconds"
            raise ValueError(msg)
        if self.bundle == "batch" and self.patient is not None and self.patient.match == "conditional_reference":
            msg = "conditional_reference needs transaction Bundles (FHIR resolves conditional references there only)"
            raise ValueError(msg)
        return self

    def accepts(self, kind: str, patient_id: str) -> bool:
        return (
            self.enabled and (self.kinds is None or kind in self.kinds) and (self.patients is None or patient_id in self.patients)
        )
