"""The push family of the PulseBridge exception tree."""

from __future__ import annotations

from device_adapters.errors import PulseBridgeError


class PushError(PulseBridgeError):
    """Talking to an EHR destination failed in a way the caller must handle."""


class PushAuthError(PushError):
    """No access token could be obtained (token endpoint down, credentials refused); retry later."""


class PushProtocolError(PushError):
    """The EHR answered something that is not the FHIR PulseBridge asked for (bad JSON, wrong shape)."""


class PushTransportError(PushError):
    """No usable answer: connection refused or reset, timeout, oversized or redirected response."""
