"""Helpers shared by the BLE parser tests: hex vectors, FHIR through the real mapper, fuzzing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.context import BleContext, DeviceClock
from device_adapters.ble.octets import GattParseError
from device_adapters.readings import Reading
from fhir_mapper.observation import Attribution, MappingInput, ObservationMapper
from fhir_mapper.validation import validate_resource

RECEIVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONTEXT = BleContext("ble-device", RECEIVED, DeviceClock())
WHO = Attribution("ble-patient", uuid.UUID("00000000-0000-4000-8000-00000000b1e0"), "ble-device")
MAPPER = ObservationMapper()


def octets(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def observations(readings: list[Reading]) -> list[dict[str, Any]]:
    """The readings through the real mapper; every resource validated against the FHIR models."""
    mapped, rejected = MAPPER.map_batch([MappingInput(reading, WHO, RECEIVED, "ble") for reading in readings])
    assert not rejected, rejected
    resources = [orjson.loads(observation.resource) for observation in mapped]
    for resource in resources:
        validate_resource(resource)
    return resources


def fuzz(parse: Callable[[bytes], object], *, examples: int = 5000) -> Callable[[], None]:
    """A test: any bytes (and any flag byte with any tail) parse or raise GattParseError, nothing else."""

    @settings(max_examples=examples, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=40), st.tuples(st.integers(0, 255), st.binary(max_size=30)).map(lambda t: bytes([t[0]]) + t[1])
        )
    )
    def run(data: bytes) -> None:
        try:
            parse(data)
        except GattParseError:
            return

    return run
