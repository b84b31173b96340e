"""The PulseBridge exception tree.

It lives at the bottom of the dependency graph so every stage can raise and catch the same
types. Foreign exceptions are translated at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where in the ingest path an input was turned away."""

    DECODE = "decode"
    VALIDATE = "validate"
    NORMALIZE = "normalize"
    IDENTITY = "identity"
    FHIR_MAP = "fhir-map"
    PUSH = "push"


class ReasonCode(StrEnum):
    """Why an input was quarantined; one code per cause a person must act on."""

    MALFORMED_FRAME = "malformed_frame"
    MALFORMED_JSON = "malformed_json"
    OVERSIZE = "oversize"
    UNKNOWN_DEVICE = "unknown_device"
    UNPAIRED_DEVICE = "unpaired_device"
    IDENTITY_MISMATCH = "identity_mismatch"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNIT_UNKNOWN = "unit_unknown"
    IMPLAUSIBLE_VALUE = "implausible_value"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNSYNCED_CLOCK = "unsynced_clock"
    TIMESTAMP_MISSING = "timestamp_missing"
    FHIR_VALIDATION = "fhir_validation"


class PulseBridgeError(Exception):
    """Base of every error PulseBridge raises on purpose."""


class ConfigError(PulseBridgeError):
    """The configuration is invalid; the message names the location of the mistake."""


class InputRejectedError(PulseBridgeError):
    """An input that cannot become a stored reading: it goes to quarantine with this reason."""

    stage: Stage = Stage.DECODE

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DecodeError(InputRejectedError):
    """The bytes or the JSON structure of a frame are not a valid reading."""

    stage = Stage.DECODE


class IdentityError(InputRejectedError):
    """The reading cannot be attributed to a device and patient."""

    stage = Stage.IDENTITY


class NormalizeError(InputRejectedError):
    """The reading's type, unit or value cannot be normalized to the catalogue."""

    stage = Stage.NORMALIZE


class ValidationError(InputRejectedError):
    """The reading is well formed but violates a time or plausibility rule."""

    stage = Stage.VALIDATE


class StorageError(PulseBridgeError):
    """The store failed; the operation may be retried."""


class StorageUnavailableError(StorageError):
    """The store cannot be reached right now (connection refused, shutting down, ...)."""


class RegistryError(PulseBridgeError):
    """A registry command was refused (unknown patient or device, duplicate id, ...)."""


class NotFoundError(RegistryError):
    """The referenced patient, device or observation does not exist."""
