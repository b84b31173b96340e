"""UCUM normalization: the unit spellings people really send, and exact conversions.

An unknown unit is an error (``unit_unknown``), never a guess. A converted value keeps the
number of significant digits the device reported (never finer than a whole unit), so a
conversion does not invent precision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from types import MappingProxyType

from device_adapters.errors import NormalizeError, ReasonCode
from device_adapters.readings import Quantity

# Spellings seen in device payloads -> UCUM. Keys are matched after stripping white space,
# first exactly (UCUM is case-sensitive), then lower-cased against _FOLDED_ALIASES.
_UCUM_CODES = frozenset({"/min", "%", "Cel", "[degF]", "kg", "g", "[lb_av]", "cm", "m", "[in_i]", "mm[Hg]", "kPa", "kg/m2"})
_FOLDED_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "bpm": "/min",
        "1/min": "/min",
        "/min": "/min",
        "beats/min": "/min",
        "beats/minute": "/min",
        "{beats}/min": "/min",
        "breaths/min": "/min",
        "{breaths}/min": "/min",
        "rpm": "/min",
        "%": "%",
        "percent": "%",
        "cel": "Cel",
        "°c": "Cel",
        "degc": "Cel",
        "celsius": "Cel",
        "[degf]": "[degF]",
        "°f": "[degF]",
        "degf": "[degF]",
        "fahrenheit": "[degF]",
        "kg": "kg",
        "kgs": "kg",
        "g": "g",
        "[lb_av]": "[lb_av]",
        "lb": "[lb_av]",
        "lbs": "[lb_av]",
        "cm": "cm",
        "[in_i]": "[in_i]",
        "in": "[in_i]",
        "mm[hg]": "mm[Hg]",
        "mmhg": "mm[Hg]",
        "mm hg": "mm[Hg]",
        "kpa": "kPa",
        "kg/m2": "kg/m2",
        "kg/m²": "kg/m2",
        "kg/m^2": "kg/m2",
    }
)


@dataclass(frozen=True, slots=True)
class Conversion:
    """``canonical = (value + offset) * factor``."""

    factor: Decimal
    offset: Decimal = Decimal(0)


_CONVERSIONS: Mapping[tuple[str, str], Conversion] = MappingProxyType(
    {
        # 1 kPa = 1000 Pa / 133.322387415 Pa per mmHg (the conventional millimetre of mercury).
        ("kPa", "mm[Hg]"): Conversion(Decimal(1000) / Decimal("133.322387415")),
        ("[degF]", "Cel"): Conversion(Decimal(5) / Decimal(9), Decimal(-32)),
        ("[lb_av]", "kg"): Conversion(Decimal("0.45359237")),
        ("g", "kg"): Conversion(Decimal("0.001")),
        ("m", "cm"): Conversion(Decimal(100)),
        ("[in_i]", "cm"): Conversion(Decimal("2.54")),
    }
)


@dataclass(frozen=True, slots=True)
class NormalizedQuantity:
    """A value in the catalogue's canonical unit, with what the device sent when they differ."""

    value: Decimal
    unit: str
    original: Quantity | None = None


def to_ucum(unit: str) -> str:
    """The UCUM code for a unit spelling; raises ``unit_unknown`` for anything not known."""
    stripped = unit.strip()
    if stripped in _UCUM_CODES:
        return stripped
    ucum = _FOLDED_ALIASES.get(stripped.lower())
    if ucum is None:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"unit {unit!r} is not a known UCUM unit or alias")
    return ucum


def normalize(quantity: Quantity, canonical: str, what: str) -> NormalizedQuantity:
    """Express ``quantity`` in the ``canonical`` UCUM unit of ``what``."""
    ucum = to_ucum(quantity.unit)
    if ucum == canonical:
        return NormalizedQuantity(quantity.value, canonical)
    conversion = _CONVERSIONS.get((ucum, canonical))
    if conversion is None:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"unit {quantity.unit!r} cannot express {what} (expected {canonical!r})")
    with localcontext() as context:
        context.prec = 34
        exact = (quantity.value + conversion.offset) * conversion.factor
    return NormalizedQuantity(_keep_significant_digits(exact, quantity.value), canonical, quantity)


def _keep_significant_digits(value: Decimal, source: Decimal) -> Decimal:
    if value.is_zero():
        return Decimal(0)
    significant = max(len(source.as_tuple().digits), 1)
    exponent = min(value.adjusted() - significant + 1, 0)
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
