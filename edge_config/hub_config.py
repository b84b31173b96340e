"""The configuration the gateway sends a hub on ``hubs/<hub>/config`` (retained): its paired devices.

Pairing a device on the gateway changes this document; the hub connects to exactly the devices it
lists and files their readings under the patient given here (for its duplicate filter; the gateway
attributes readings from its own registry).
"""

from __future__ import annotations

import hashlib

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_adapters.errors import ConfigError
from edge_config.edge import HUB_ID_PATTERN


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubDeviceConfig(_Document):
    device_id: str = Field(pattern=HUB_ID_PATTERN)
    address: str = Field(min_length=1, max_length=64, description="Bluetooth address (or the id of a device on the local broker)")
    patient_id: str | None = Field(default=None, max_length=64)


class HubConfig(_Document):
    hub_id: str = Field(pattern=HUB_ID_PATTERN)
    devices: tuple[HubDeviceConfig, ...] = ()

    @property
    def revision(self) -> str:
        """A digest of what the hub must act on: the same pairing gives the same revision."""
        return hashlib.sha256(self.payload()).hexdigest()[:16]

    def payload(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def parse(cls, payload: bytes) -> HubConfig:
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
            raise ConfigError(f"hub configuration refused: {problems}") from exc
