"""The hot path: one-value readings without flags or status bits, mapped a batch at a time.

Almost every reading a gateway sees has this shape, so its cost per reading is the gateway's
ceiling. Everything that can be done once per batch is: times are written by one orjson call,
reading keys are hashed one by one but formatted as UUIDs all together (numpy), each device's
references are escaped once, and the constant members come from per-(kind, unit, site) text
templates. ``tests/test_mapper.py`` checks that it writes exactly the bytes the general path
writes, for every shape and for random times, offsets and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import orjson

from fhir_mapper.catalogue import UnitChoice, VitalKind
from fhir_mapper.identity import IDENTIFIER_SYSTEM, KEY_VERSION, utc_text, uuid5_seed, uuid5_texts
from fhir_mapper.mapping_types import MappedObservation, MappingInput
from fhir_mapper.templates import ORIGINAL_QUANTITY_EXTENSION, QuantityTemplate, references
from fhir_mapper.units import Conversion, keep_significant_digits

_MINUTE = timedelta(minutes=1)
_MICROSECOND = timedelta(microseconds=1)


class ConvertedValues:
    """One unit conversion with its results kept by the device's value text.

    A conversion is exact Decimal work (about 2 µs), and a device sends the same few hundred
    values again and again; the text (not the Decimal) is the key, since ``154.2`` and
    ``154.20`` are equal but carry different precision.
    """

    __slots__ = ("_conversion", "_known")
    LIMIT = 4096

    def __init__(self, conversion: Conversion) -> None:
        self._conversion = conversion
        self._known: dict[str, tuple[Decimal, str]] = {}

    def convert(self, value: Decimal) -> tuple[Decimal, str]:
        """The value in the canonical unit, to the device's significant digits, and as a JSON number."""
        text = str(value)
        known = self._known.get(text)
        if known is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            converted = keep_significant_digits(self._conversion.apply(value), value)
            known = self._known[text] = (converted, decimal_json(converted))
        return known


class FastPlan(NamedTuple):
    """How to map a one-value reading of a kind in a unit at a site: worked out once, then reused."""

    kind: VitalKind
    choice: UnitChoice
    conversion: ConvertedValues | None
    slot: int
    """Where the mapper keeps this plan's plausible range for the vectorized check."""
    template: QuantityTemplate
    primary_code: str
    key_suffix: str
    """The reading key's site part (``|site=oral``), empty without a site."""


FastEntry = tuple[MappingInput, FastPlan, Decimal, str]
"""A hot-path reading, its value in the canonical unit and that value as a JSON number.

A plain tuple: one is built per reading, and a NamedTuple's constructor costs six times more.
"""


def decimal_json(value: Decimal) -> str:
    """A Decimal as a JSON number, digit for digit (``str`` writes ``1E+2``; JSON wants ``100``)."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def fhir_datetime(time: datetime) -> str:
    """A FHIR dateTime keeping the device's offset; in UTC when the offset has seconds.

    FHIR offsets are ``±hh:mm``; offsets with seconds come only from historical zone rules
    (Amsterdam before 1937: +00:19:32), and the instant matters more than that offset.
    """
    offset = time.utcoffset()
    return time.isoformat() if offset is None or not offset % _MINUTE else utc_text(time)


def iso_texts(times: Sequence[datetime]) -> list[str]:
    """``time.isoformat()`` of every time, written by one orjson call (several times faster).

    orjson writes UTC offsets to the minute only: for a time whose offset has seconds it is not
    :func:`fhir_datetime`, and :func:`build_observations` writes that one again.
    """
    if not times:
        return []
    try:
        joined = orjson.dumps(times)
    except orjson.JSONEncodeError:  # a datetime subclass orjson does not know
        return [time.isoformat() for time in times]
    return joined[2:-2].decode().split('","')


def issued_text(cache: dict[datetime, str], received_at: datetime) -> str:
    """``Observation.issued``: the reception time in UTC, written once per batch and reception."""
    text = cache.get(received_at)
    if text is None:
        text = cache[received_at] = received_at.astimezone(UTC).isoformat()
    return text


def build_observations(entries: Sequence[FastEntry]) -> list[MappedObservation]:
    """The Observations of hot-path readings, in the order given."""
    times = [entry[0].reading.time for entry in entries]
    effective_times = iso_texts(times)
    keys = uuid5_texts(_key_digests(entries, times, effective_times))
    issued_texts: dict[datetime, str] = {}
    mapped: list[MappedObservation] = []
    for (item, plan, value, number), key, start in zip(entries, keys, effective_times, strict=True):
        reading, attribution, template, received = item.reading, item.attribution, plan.template, item.received_at
        subject, device = references(attribution.patient_id, attribution.device_resource_id, attribution.device_id)
        if reading.duration is None:
            effective = f'"effectiveDateTime":"{start}"'
        else:
            end = fhir_datetime(reading.time + reading.duration)
            effective = f'"effectivePeriod":{{"start":"{start}","end":"{end}"}}'
        extension = ""
        if template.original_unit is not None and reading.quantity is not None:
            extension = (
                f',"extension":[{{"url":"{ORIGINAL_QUANTITY_EXTENSION}",'
                f'"valueQuantity":{{"value":{decimal_json(reading.quantity.value)},"unit":{template.original_unit}}}}}]'
            )
        issued = issued_texts.get(received) or issued_text(issued_texts, received)
        resource = (
            f'{{"resourceType":"Observation","id":"{key}","identifier":[{{"system":"{IDENTIFIER_SYSTEM}","value":"urn:uuid:{key}"}}],'
            f'{template.head}{subject},{effective},"issued":"{issued}",{device},'
            f'"valueQuantity":{{"value":{number},{template.unit_members}{extension}}}}}'
        ).encode()
        # tuple.__new__ skips the NamedTuple constructor's Python frame (half the cost).
        mapped.append(
            tuple.__new__(
                MappedObservation,
                (
                    key,
                    reading.time,
                    attribution.patient_id,
                    attribution.device_resource_id,
                    plan.kind.name,
                    plan.primary_code,
                    value,
                    plan.choice.ucum,
                    resource,
                    item.received_at,
                    item.source,
                ),
            )
        )
    return mapped


def _key_digests(entries: Sequence[FastEntry], times: Sequence[datetime], effective_times: list[str]) -> list[bytes]:
    """The reading keys' digests; fixes the rare time orjson cannot write in ``effective_times``.

    The key text is :func:`fhir_mapper.identity.key_text`'s, written out and hashed inline: a
    call per reading costs as much as the rest of this loop.
    """
    seeded = uuid5_seed()
    digests: list[bytes] = []
    for index, (item, plan, _, _) in enumerate(entries):
        reading, time = item.reading, times[index]
        utc = effective_times[index]
        if time.tzinfo is not UTC:
            offset = time.utcoffset()
            if offset is not None and offset % _MINUTE:
                effective_times[index] = fhir_datetime(time)
            if offset:
                utc = utc_text(time)
        if reading.device_time is not None:
            utc = f"device:{reading.device_time}"
        text = f"{KEY_VERSION}|{item.attribution.device_id}|{item.attribution.patient_id}|{reading.kind}|{utc}"
        if reading.duration is not None:
            text += f"|duration={reading.duration // _MICROSECOND}us"
        digest = seeded.copy()
        digest.update((text + plan.key_suffix).encode())
        digests.append(digest.digest())
    return digests
