"""``pulsebridge decode gatt``: GATT bytes -> what PulseBridge reads in them, for integrators.

Decoding reports what the device sent: no plausibility ranges and no future-time check (those
are the pipeline's business), placeholder patient and device unless given.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TextIO

import orjson

from device_adapters.ble.context import BleContext
from device_adapters.ble.octets import BleDateTime
from device_adapters.ble.registry import characteristic_for
from device_adapters.errors import InputRejectedError, PulseBridgeError
from device_adapters.jsonwire import dumps
from device_adapters.readings import Reading
from fhir_mapper.catalogue import CATALOGUE
from fhir_mapper.devices import gateway_device_id
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper
from fhir_mapper.plausibility import PlausibilityPolicy, RangeOverride

PLACEHOLDER_PATIENT = "placeholder-patient"
PLACEHOLDER_DEVICE = "placeholder-device"
_UNBOUNDED = RangeOverride(Decimal("-1e12"), Decimal("1e12"))


class DecodeInputError(PulseBridgeError):
    """A decode request that cannot be read (bad hex, bad JSON line)."""


def _unbounded_policy() -> PlausibilityPolicy:
    overrides: dict[str, RangeOverride] = {}
    for kind in CATALOGUE.values():
        for choice in kind.units:
            key = kind.name
            overrides[key] = dataclasses.replace(_UNBOUNDED, unit=choice.ucum if len(kind.units) > 1 else None)
        for component in kind.components:
            overrides[f"{kind.name}.{component.name}"] = _UNBOUNDED
    return PlausibilityPolicy(overrides)


class GattDecoder:
    def __init__(self, patient_id: str, device_id: str) -> None:
        self._attribution = Attribution(patient_id, uuid.uuid5(uuid.NAMESPACE_URL, f"pulsebridge-device:{device_id}"), device_id)
        self._mapper = ObservationMapper(
            MapperContext(gateway_device_id("decode"), future_tolerance=timedelta(days=36500), plausibility=_unbounded_policy())
        )

    def decode(self, uuid_text: str, hex_text: str) -> dict[str, Any]:
        """``{"observations": [...]}`` for a measurement, ``{"decoded": {...}}`` otherwise; raises on bad input."""
        characteristic = characteristic_for(uuid_text)
        try:
            data = bytes.fromhex(hex_text.replace(" ", "").replace(":", ""))
        except ValueError as exc:
            raise DecodeInputError(f"{hex_text[:40]!r} is not hex octets") from exc
        parsed = characteristic.parse(data)
        if characteristic.to_readings is None:
            return {"decoded": _plain(parsed)}
        received = datetime.now(UTC)
        readings = characteristic.to_readings(parsed, BleContext(self._attribution.device_id, received))
        return {"observations": self.observations(readings, received)}

    def observations(self, readings: list[Reading], received: datetime) -> list[orjson.Fragment]:
        """The readings as FHIR Observations (raises the first mapping rejection)."""
        mapped, rejected = self.map(readings, received)
        if rejected:
            raise rejected[0][1]
        return mapped

    def map(
        self, readings: list[Reading], received: datetime
    ) -> tuple[list[orjson.Fragment], list[tuple[int, InputRejectedError]]]:
        """Observations, and the readings (by position) the mapper refused."""
        mapped, rejected = self._mapper.map_batch([MappingInput(r, self._attribution, received, "decode") for r in readings])
        return [orjson.Fragment(observation.resource) for observation in mapped], rejected

    def jsonl(self, lines: Iterable[str]) -> Iterator[bytes]:
        """``{"id", "uuid", "hex"}`` lines -> one answer line each, in order."""

        def answer(request: dict[str, Any], number: int) -> dict[str, Any]:
            uuid_text, hex_text = request.get("uuid"), request.get("hex")
            if not isinstance(uuid_text, str) or not isinstance(hex_text, str):
                raise DecodeInputError(f"line {number} needs string fields 'uuid' and 'hex'")
            return self.decode(uuid_text, hex_text)

        return answer_lines(lines, answer)


def answer_lines(lines: Iterable[str], answer: Callable[[dict[str, Any], int], dict[str, Any]]) -> Iterator[bytes]:
    """One output line per input line, in order, echoing its ``id``; a bad line gets an ``error`` and the rest go on."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        ident: Any = None
        try:
            request = orjson.loads(line)
            if not isinstance(request, dict):
                raise DecodeInputError(f"line {number} is not a JSON object")  # noqa: TRY301 - reported below
            ident = request.get("id")
            yield dumps({"id": ident, **answer(request, number)})
        except orjson.JSONDecodeError as exc:
            yield dumps({"id": ident, "error": f"line {number} is not JSON: {exc}"})
        except (InputRejectedError, DecodeInputError) as exc:
            yield dumps({"id": ident, "error": str(exc)})


def run_decode_gatt(uuid_text: str | None, hex_text: str | None, *, jsonl: bool, patient: str | None, device: str | None,
                    stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:  # fmt: skip
    decoder = GattDecoder(patient or PLACEHOLDER_PATIENT, device or PLACEHOLDER_DEVICE)
    if jsonl:
        for line in decoder.jsonl(stdin):
            stdout.write(line.decode() + "\n")
            stdout.flush()
        return
    if uuid_text is None or hex_text is None:
        raise DecodeInputError("give UUID and HEX, or --jsonl to read requests from standard input")
    try:
        result = decoder.decode(uuid_text, hex_text)
    except InputRejectedError as exc:
        raise DecodeInputError(str(exc)) from exc
    stdout.write(
        dumps(
            result.get("observations", result.get("decoded")),
        ).decode()
        + "\n"
    )


def _plain(value: object) -> object:  # noqa: PLR0911 - one case per JSON shape
    """A decoded dataclass as JSON-ready values (Decimals stay numbers, enums their names)."""
    match value:
        case BleDateTime():
            return value.text()
        case Enum():
            return value.value
        case Decimal() | str() | int() | float() | bool() | None:
            return value
        case bytes():
            return value.hex()
        case frozenset() | set():
            return sorted(_plain(item) for item in value)  # type: ignore[type-var] # names or numbers, one type per field
        case list() | tuple():
            return [_plain(item) for item in value]
        case dict():
            return {str(key): _plain(item) for key, item in value.items()}
        case _ if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
        case _:
            return str(value)
