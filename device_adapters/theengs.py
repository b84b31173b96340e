"""Theengs decoded advertisements (TheengsDecoder, OpenMQTTGateway ``BTtoMQTT``) -> readings.

TheengsDecoder's ``decodeBLE`` turns a vendor advertisement into a flat JSON object, and
OpenMQTTGateway publishes the same object on ``home/<gateway>/BTtoMQTT/<MAC>``::

    {"id": "...", "brand": "Xiaomi", "model": "Mi Body Composition Scale",
     "model_id": "XMTZC02HM/XMTZC05HM", "type": "SCALE", "weighing_mode": "person",
     "unit": "kg", "weight": 72.45, "impedance": 503}

The mapping is two tables. :data:`MODELS` says which decoder models are health devices and of
which class; :data:`FIELDS` says which field becomes which reading kind and UCUM unit, and for
which classes of device. Everything else a document carries is ignored.

Which device is which (the ambient-versus-body rule)
----------------------------------------------------
The same field means different things on different devices: ``tempc`` is the room on a
LYWSD03MMC (``type`` ``THB``) and the meat on a BBQ probe (``BBQ``), ``weight`` is a coffee dose
on an Atomax Skale (``SCALE``, in grams), ``batt`` is on nearly every device. So a field never
becomes a reading on its name alone:

* The document's ``model_id`` must be listed in :data:`MODELS` (or in the ``models`` a caller
  passes). A model that is not listed yields nothing, whatever fields it has.
* When the document carries the decoder's ``type``, it must equal the type the table expects for
  that model; a mismatch (a decoder version that re-classified the model) yields nothing.
* ``tempc`` becomes ``body_temperature`` only for a model of class ``body_thermometer``, and that
  class is only accepted for the decoder's body type ``BODY``, stated in the document itself.
  Ambient types (``THB``, ``THBX``, ``BBQ``, ``AIR``, ``PLANT``, ``TIRE``…) can never be body
  thermometers. TheengsDecoder 2.5 decodes no body thermometer at all, so the default table has
  none; one is added to ``models`` when a decoder version gains one.
* ``weight`` and ``impedance`` of a body scale become readings only for a person weighing: Mi
  scales report ``weighing_mode`` ``object`` for things put on the scale.
* ``batt`` becomes ``battery_level`` only for devices that are health devices by the rules above.

TheengsDecoder 2.5 emits no ``spo2`` or body-fat field for any model, so the table has none.
Mi Band ``steps`` is a running day total whose start is not in the advertisement; it is left out.

Numbers arrive as JSON text: parse it with :func:`device_adapters.jsonwire.loads_strict` so every
number is a :class:`~decimal.Decimal` printed as the decoder printed it (``72.45`` stays ``72.45``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from device_adapters.errors import DecodeError, InputRejectedError, ReasonCode
from device_adapters.readings import AbsentReason, FrameDecode, Quantity, Reading, require_aware


class DeviceClass(StrEnum):
    """What a decoder model is, as far as health readings go."""

    BODY_SCALE = "body_scale"
    HEART_RATE_MONITOR = "heart_rate_monitor"
    ACTIVITY_TRACKER = "activity_tracker"
    BODY_THERMOMETER = "body_thermometer"


BODY_TYPE = "BODY"
"""TheengsDecoder's device type for body-worn devices (tag ``0b``)."""
SCALE_TYPE = "SCALE"
"""TheengsDecoder's device type for scales (tag ``05``): body scales and kitchen scales alike."""


@dataclass(frozen=True, slots=True)
class TheengsModel:
    """A decoder model that is a health device: the ``type`` the decoder gives it, and its class."""

    type: str
    device_class: DeviceClass

    def __post_init__(self) -> None:
        if self.device_class is DeviceClass.BODY_THERMOMETER and self.type != BODY_TYPE:
            msg = f"a body thermometer must be a decoder model of type {BODY_TYPE!r}, not {self.type!r}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class TheengsField:
    """One decoded field: the reading kind and UCUM unit it becomes, and on which devices."""

    kind: str
    unit: str | None
    """The UCUM unit; None when the document's ``unit`` field says it (:data:`WEIGHT_UNITS`)."""
    classes: frozenset[DeviceClass]
    person_weighing_only: bool = False
    """Dropped when the scale says it weighed an object (``weighing_mode`` other than ``person``)."""


_EVERY_CLASS = frozenset(DeviceClass)

MODELS: Mapping[str, TheengsModel] = MappingProxyType({
    "XMTZC01HM/XMTZC04HM": TheengsModel(SCALE_TYPE, DeviceClass.BODY_SCALE),  # Mi Smart Scale (1, 2)
    "XMTZC02HM/XMTZC05HM": TheengsModel(SCALE_TYPE, DeviceClass.BODY_SCALE),  # Mi Body Composition Scale (1, 2)
    "H10": TheengsModel(BODY_TYPE, DeviceClass.HEART_RATE_MONITOR),  # Polar H10
    "XOSSX2": TheengsModel(BODY_TYPE, DeviceClass.HEART_RATE_MONITOR),  # XOSS X2
    "MB/SW": TheengsModel(BODY_TYPE, DeviceClass.ACTIVITY_TRACKER),  # Mi Band / Amazfit watches
})  # fmt: skip
"""``model_id`` -> health device, for the models of TheengsDecoder 2.5 that carry health fields.

Deliberately absent: ``SKALE`` (a coffee scale weighing grams), every ambient sensor.
"""

FIELDS: Mapping[str, TheengsField] = MappingProxyType({
    "weight": TheengsField("body_weight", None, frozenset({DeviceClass.BODY_SCALE}), person_weighing_only=True),
    "impedance": TheengsField("body_impedance", "Ohm", frozenset({DeviceClass.BODY_SCALE}), person_weighing_only=True),
    "bpm": TheengsField("heart_rate", "/min", frozenset({DeviceClass.HEART_RATE_MONITOR})),
    "act_bpm": TheengsField("heart_rate", "/min", frozenset({DeviceClass.ACTIVITY_TRACKER})),
    "tempc": TheengsField("body_temperature", "Cel", frozenset({DeviceClass.BODY_THERMOMETER})),
    "batt": TheengsField("battery_level", "%", _EVERY_CLASS),
})  # fmt: skip
"""Decoded field -> reading, in the order readings are indexed within a document."""

WEIGHT_UNITS: Mapping[str, str] = MappingProxyType({"kg": "kg", "lb": "[lb_av]", "lbs": "[lb_av]"})
"""The decoder's ``unit`` values (``lbs`` from older decoder versions) -> UCUM."""

PERSON = "person"


def readings_from_theengs(
    document: Mapping[str, object],
    device_id: str,
    received_at: datetime,
    *,
    models: Mapping[str, TheengsModel] = MODELS,
) -> FrameDecode:
    """The health readings of one decoded document, at ``received_at`` (advertisements carry no time).

    A document that is not a health device's, or has no health field, yields ``FrameDecode(())``.
    A health field with the wrong type (or an unknown weight unit) is rejected on its own, with
    the index it would have had; a ``model_id``/``type``/``weighing_mode`` of the wrong type
    rejects the document (index 0).
    """
    require_aware("received_at", received_at)
    if not isinstance(document, Mapping):
        return _rejected(f"a Theengs document must be a JSON object, got {_json_type(document)}")
    try:
        device_class = _device_class(document, models)
        person = _person_weighing(document) if device_class is DeviceClass.BODY_SCALE else True
    except DecodeError as exc:
        return FrameDecode((), ((0, exc),))
    if device_class is None:
        return FrameDecode(())

    readings: list[Reading] = []
    rejections: list[tuple[int, InputRejectedError]] = []
    index = 0
    for name, spec in FIELDS.items():
        if name not in document or device_class not in spec.classes:
            continue
        if spec.person_weighing_only and not person:
            continue
        try:
            readings.append(
                Reading(device_id, spec.kind, received_at, _quantity(name, document[name], spec, document), index=index)
            )
        except DecodeError as exc:
            rejections.append((index, exc))
        index += 1
    return FrameDecode(tuple(readings), tuple(rejections))


def _device_class(document: Mapping[str, object], models: Mapping[str, TheengsModel]) -> DeviceClass | None:
    model_id = document.get("model_id")
    if model_id is None:
        return None
    if not isinstance(model_id, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"Theengs model_id must be a string, got {_json_type(model_id)}")
    model = models.get(model_id)
    if model is None:
        return None
    declared = document.get("type")
    if declared is not None and not isinstance(declared, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"Theengs type must be a string, got {_json_type(declared)}")
    if declared is None and model.device_class is DeviceClass.BODY_THERMOMETER:
        return None  # a body temperature needs the decoder itself to say the device is body-worn
    if declared is not None and declared != model.type:
        return None
    return model.device_class


def _person_weighing(document: Mapping[str, object]) -> bool:
    mode = document.get("weighing_mode")
    if mode is None:
        return True  # decoders before weighing_mode existed reported person weighings only
    if not isinstance(mode, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"Theengs weighing_mode must be a string, got {_json_type(mode)}")
    return mode == PERSON


def _quantity(name: str, value: object, spec: TheengsField, document: Mapping[str, object]) -> Quantity:
    number = _decimal(name, value)
    unit = spec.unit
    if unit is None:
        raw_unit = document.get("unit")
        if not isinstance(raw_unit, str):
            detail = f"Theengs {name} needs a unit string, got {_json_type(raw_unit)}"
            raise DecodeError(ReasonCode.UNIT_UNKNOWN if raw_unit is None else ReasonCode.MALFORMED_FRAME, detail)
        unit = WEIGHT_UNITS.get(raw_unit)
        if unit is None:
            raise DecodeError(ReasonCode.UNIT_UNKNOWN, f"Theengs {name} unit {raw_unit!r} is not one of {sorted(WEIGHT_UNITS)}")
    return Quantity(number, unit)


def _decimal(name: str, value: object) -> Decimal:
    """A JSON number as a Decimal keeping its printed digits; anything else is malformed."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"Theengs {name} must be a number, got {_json_type(value)}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, float):
        number = Decimal(repr(value))  # a float's shortest repr is what a JSON printer wrote
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"Theengs {name} must be a finite number, got {number}")
    return number


def _rejected(detail: str) -> FrameDecode:
    return FrameDecode((), ((0, DecodeError(ReasonCode.MALFORMED_FRAME, detail)),))


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    ((Decimal, int, float), "number"),
    (str, "string"),
    (Mapping, "object"),
    ((list, tuple), "array"),
)


def _json_type(value: object) -> str:
    return next((name for kinds, name in _JSON_TYPES if isinstance(value, kinds)), type(value).__name__)


DEFAULT_WINDOW = timedelta(seconds=60)

_Value = tuple[Quantity | None, tuple[tuple[str, Quantity], ...], AbsentReason | None, str | None]


def _value_of(reading: Reading) -> _Value:
    return (reading.quantity, reading.components, reading.absent, reading.site)


@dataclass(slots=True)
class _Emitted:
    value: _Value
    at: datetime


@dataclass(slots=True)
class AdvertisementDeduplicator:
    """Drops the copies of one advertisement that gateways publish again and again.

    Per device it keeps the last *emitted* value of each kind and when it was emitted. A reading
    whose value (quantity, components, absent reason and site) equals the last emitted one of its
    kind, less than ``window`` after that emission, is dropped; a dropped copy does not extend the
    window, so a value that never changes is emitted again once per window. A different value is
    always emitted. Pure: the caller passes ``now`` (the frame's reception time).

    Each call moves the state on: a caller that may process the same frame twice (the pipeline
    decodes a batch again after a store failure) must give the first answer again rather than
    ask twice, as :class:`~device_adapters.ble.advertisements.AdvertisementFrameDecoder` does.
    """

    window: timedelta = DEFAULT_WINDOW
    _last: dict[str, dict[str, _Emitted]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            msg = f"the deduplication window must be positive, got {self.window}"
            raise ValueError(msg)

    def filter(self, device_id: str, readings: Iterable[Reading], now: datetime) -> tuple[Reading, ...]:
        """The readings of ``device_id`` that are not repeats, in order; remembers those it lets through."""
        require_aware("now", now)
        last = self._last.setdefault(device_id, {})
        for kind in [kind for kind, emitted in last.items() if now - emitted.at >= self.window]:
            del last[kind]  # expired: keeps the memory bounded by the kinds seen within one window
        kept: list[Reading] = []
        for reading in readings:
            value = _value_of(reading)
            previous = last.get(reading.kind)
            if previous is not None and previous.value == value and now - previous.at < self.window:
                continue
            last[reading.kind] = _Emitted(value, now)
            kept.append(reading)
        if not last:
            del self._last[device_id]
        return tuple(kept)

    def forget(self, device_id: str) -> None:
        """Drop what is remembered for ``device_id`` (its next reading of every kind is emitted)."""
        self._last.pop(device_id, None)
