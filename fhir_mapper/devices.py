"""FHIR Device resources: one per physical device, and one for the gateway itself (the PHD IG's PHG)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fhir_mapper.catalogue import MDC
from fhir_mapper.identity import READING_KEY_NAMESPACE

DEVICE_ID_SYSTEM = "https://pulsebridge.dev/fhir/device-id"
GATEWAY_TYPE = {
    "coding": [{"system": MDC, "code": "531981", "display": "MDC_MOC_VMS_MDS_AHD"}],
    "text": "Personal health gateway",
}


@dataclass(frozen=True, slots=True)
class DeviceDescription:
    """What the registry (or the device itself, over BLE's Device Information service) tells."""

    resource_id: uuid.UUID
    device_id: str
    display_name: str | None = None
    kind: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware: str | None = None
    bluetooth_address: str | None = None
    patient_id: str | None = None
    """The patient the device is assigned to now."""


def gateway_device_id(name: str) -> uuid.UUID:
    """The gateway's Device id: stable for a gateway name across restarts and hosts."""
    return uuid.uuid5(READING_KEY_NAMESPACE, f"gateway|{name}")


def device_resource(device: DeviceDescription) -> dict[str, object]:
    identifiers: list[dict[str, object]] = [{"system": DEVICE_ID_SYSTEM, "value": device.device_id}]
    if device.bluetooth_address is not None:
        identifiers.append({"type": {"text": "Bluetooth device address"}, "value": device.bluetooth_address.upper()})
    resource: dict[str, object] = {
        "resourceType": "Device",
        "id": str(device.resource_id),
        "identifier": identifiers,
        "status": "active",
    }
    if device.manufacturer is not None:
        resource["manufacturer"] = device.manufacturer
    if device.serial_number is not None:
        resource["serialNumber"] = device.serial_number
    if device.model is not None:
        resource["modelNumber"] = device.model
    names = [{"name": device.display_name, "type": "user-friendly-name"}] if device.display_name else []
    if names:
        resource["deviceName"] = names
    if device.kind is not None:
        resource["type"] = {"text": device.kind}
    if device.firmware is not None:
        resource["version"] = [{"type": {"text": "firmware revision"}, "value": device.firmware}]
    if device.patient_id is not None:
        resource["patient"] = {"reference": f"Patient/{device.patient_id}"}
    return resource


def gateway_resource(name: str, software_version: str) -> dict[str, object]:
    return {
        "resourceType": "Device",
        "id": str(gateway_device_id(name)),
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": f"gateway:{name}"}],
        "status": "active",
        "manufacturer": "PulseBridge",
        "deviceName": [{"name": name, "type": "user-friendly-name"}],
        "type": GATEWAY_TYPE,
        "version": [{"type": {"text": "software"}, "value": software_version}],
    }
