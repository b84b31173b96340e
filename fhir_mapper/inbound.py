"""FHIR in: an Observation a device or hub posted, back to a Reading like any other source's.

Posted Observations are not stored as sent: they become readings and go through the same
attribution, normalization, plausibility and identity as MQTT and Bluetooth readings, so the
stored Observation is PulseBridge's (codes, units, key) whoever sent it. The resource must
first pass :func:`fhir_mapper.validation.validate_resource` (untrusted FHIR is validated with
the models); this module reads what it needs from the validated JSON.

- ``code``: any coding the catalogue knows (LOINC or IEEE 11073 MDC); an MDC code decides
  between kinds that share a LOINC code (heart rate and pulse rate share 8867-4).
- time: ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod`` (its end gives the
  duration). A date without a time (``1999-07-02``, as FHIR allows) is anchored at midnight
  UTC, and its text keys the reading (like a zone-less device clock), so re-posting it keeps
  its identity.
- value: ``valueQuantity`` (UCUM ``code``, else the ``unit`` text through the alias table),
  ``component`` for panels, ``dataAbsentReason`` for special values.
- ``subject``: returned for the caller to check against the device's assigned patient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from device_adapters.errors import DecodeError, NormalizeError, ReasonCode
from device_adapters.jsonwire import json_number, json_time, json_type
from device_adapters.readings import AbsentReason, Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, MDC, UCUM, VitalKind, kinds_for_token

RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
_DATE_ONLY = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_ABSENT: Mapping[str, AbsentReason] = {
    "not-a-number": AbsentReason.NOT_A_NUMBER,
    "error": AbsentReason.ERROR,
    "positive-infinity": AbsentReason.POSITIVE_INFINITY,
    "negative-infinity": AbsentReason.NEGATIVE_INFINITY,
    "unknown": AbsentReason.UNKNOWN,
    "asked-unknown": AbsentReason.UNKNOWN,
    "temp-unknown": AbsentReason.UNKNOWN,
    "not-asked": AbsentReason.UNKNOWN,
    "masked": AbsentReason.UNKNOWN,
    "not-performed": AbsentReason.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class InboundReading:
    reading: Reading
    subject: str | None
    """The patient id the Observation names (``Patient/<id>``), if any."""


def reading_from_observation(resource: Mapping[str, Any], device_id: str, *, index: int = 0) -> InboundReading:
    """The reading a posted Observation carries; rejected with a reason a person can act on."""
    where = f"Observation {index}" if index else "Observation"
    if resource.get("resourceType") != "Observation":
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: resourceType must be 'Observation'")
    status = resource.get("status")
    if status not in RESULT_STATUSES:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: status {status!r} is not a result ({', '.join(sorted(RESULT_STATUSES))})"
        )
    kind = _kind(resource.get("code"), where)
    time, device_time, duration = _effective(resource, where)
    quantity: Quantity | None = None
    components: tuple[tuple[str, Quantity], ...] = ()
    absent: AbsentReason | None = None
    if kind.compound:
        components = _components(kind, resource.get("component"), where)
        if not components:
            absent = _absent(resource.get("dataAbsentReason"), where)
    elif "valueQuantity" in resource:
        quantity = _quantity(resource["valueQuantity"], f"{where}: valueQuantity")
    else:
        absent = _absent(resource.get("dataAbsentReason"), where)
    reading = Reading(
        device_id, kind.name, time, quantity, components, index=index, absent=absent, duration=duration, device_time=device_time
    )
    return InboundReading(reading, _subject(resource.get("subject"), where))


def _kind(code: object, where: str) -> VitalKind:
    codings = code.get("coding") if isinstance(code, Mapping) else None
    if not isinstance(codings, list) or not codings:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: code has no coding")
    candidates: list[tuple[bool, frozenset[str]]] = []
    for coding in codings:
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
            system = coding.get("system") if isinstance(coding.get("system"), str) else None
            kinds = kinds_for_token(system, coding["code"]) if system is not None else frozenset()
            if kinds:
                candidates.append((system == MDC, kinds))
    if not candidates:
        shown = ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings if isinstance(c, Mapping))
        raise NormalizeError(ReasonCode.UNSUPPORTED_TYPE, f"{where}: no supported vital sign in code ({shown[:200]})")
    # The most specific coding decides: an MDC code names one kind; LOINC may name several.
    candidates.sort(key=lambda candidate: (not candidate[0], len(candidate[1])))
    chosen = candidates[0][1]
    for _, kinds in candidates[1:]:
        chosen = (chosen & kinds) or chosen
    return next(kind for kind in CATALOGUE.values() if kind.name in chosen)


def _effective(resource: Mapping[str, Any], where: str) -> tuple[datetime, str | None, timedelta | None]:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if name in resource:
            time, device_time = _date_time(resource[name], f"{where}: {name}")
            return time, device_time, None
    period = resource.get("effectivePeriod")
    if isinstance(period, Mapping) and "start" in period:
        start, device_time = _date_time(period["start"], f"{where}: effectivePeriod.start")
        if "end" not in period:
            return start, device_time, None
        end, _ = _date_time(period["end"], f"{where}: effectivePeriod.end")
        if end < start:
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: effectivePeriod ends before it starts")
        return start, device_time, end - start
    raise DecodeError(ReasonCode.TIMESTAMP_MISSING, f"{where}: no effectiveDateTime, effectiveInstant or effectivePeriod.start")


def _date_time(raw: object, where: str) -> tuple[datetime, str | None]:
    """An instant, or a date's midnight UTC with the date's text for the reading key."""
    if isinstance(raw, str):
        date = _DATE_ONLY.fullmatch(raw)
        if date is not None:
            year, month, day = (int(part) if part else 1 for part in date.groups())
            try:
                return datetime(year, month, day, tzinfo=UTC), f"date:{raw}"
            except ValueError as exc:
                raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: {raw!r} is not a date: {exc}") from exc
    return json_time(raw, where), None


def _quantity(raw: object, where: str) -> Quantity:
    if not isinstance(raw, Mapping):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where} must be an object, got {json_type(raw)}")
    value = raw.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = Decimal(str(value))
    number = json_number(value, f"{where}.value")
    code, unit = raw.get("code"), raw.get("unit")
    spelled = code if isinstance(code, str) and raw.get("system") == UCUM else unit if isinstance(unit, str) else code
    if not isinstance(spelled, str) or not spelled:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"{where} has no unit (a UCUM code or a unit text)")
    return Quantity(number, spelled)


def _components(kind: VitalKind, raw: object, where: str) -> tuple[tuple[str, Quantity], ...]:
    found: list[tuple[str, Quantity]] = []
    for position, component in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(component, Mapping) or "valueQuantity" not in component:
            continue  # a component without a value (dataAbsentReason): the panel needs the others
        codes = {
            (coding.get("system"), coding.get("code"))
            for coding in (component.get("code") or {}).get("coding", [])
            if isinstance(coding, Mapping)
        }
        spec = next((spec for spec in kind.components if any((c.system, c.code) in codes for c in spec.codings)), None)
        if spec is not None:
            found.append((spec.name, _quantity(component["valueQuantity"], f"{where}: component {position} valueQuantity")))
    return tuple(found)


def _absent(raw: object, where: str) -> AbsentReason:
    codings = raw.get("coding") if isinstance(raw, Mapping) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, Mapping) and coding.get("code") in _ABSENT:
            return _ABSENT[coding["code"]]
    raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: no value (valueQuantity, component or a known dataAbsentReason)")


def _subject(raw: object, where: str) -> str | None:
    if raw is None:
        return None
    reference = raw.get("reference") if isinstance(raw, Mapping) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/") or "/" in reference[len("Patient/") :]:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: subject must be a reference Patient/<id>")
    return reference[len("Patient/") :]
