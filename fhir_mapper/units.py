"""UCUM normalization: the unit spellings people really send, and exact UCUM conversions.

An unknown unit is an error (``unit_unknown``), never a guess. A converted value keeps the
number of significant digits the device reported (never finer than a whole unit), so a
conversion does not invent precision; the original value and unit are kept beside it.
Factors are UCUM's own definitions: ``mm[Hg]`` = 133.3220 Pa, ``[lb_av]`` = 453.59237 g,
``[in_i]`` = 2.54 cm, ``cal`` = 4.184 J, ``[degF]`` = 5/9 K offset by 32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from types import MappingProxyType

from device_adapters.errors import NormalizeError, ReasonCode
from device_adapters.readings import Quantity

UCUM_CODES = frozenset({
    "/min", "%", "Cel", "[degF]", "kg", "g", "[lb_av]", "cm", "m", "mm", "[in_i]", "mm[Hg]", "kPa", "kg/m2",
    "mg/dL", "mmol/L", "ms", "s", "kJ", "kcal", "{steps}", "Ohm",
})  # fmt: skip
"""UCUM codes accepted as sent (case-sensitive, as UCUM is)."""

# Other spellings, matched case-insensitively after stripping white space.
_FOLDED_ALIASES: Mapping[str, str] = MappingProxyType({
    "bpm": "/min", "1/min": "/min", "beats/min": "/min", "beats/minute": "/min", "{beats}/min": "/min",
    "breaths/min": "/min", "breaths/minute": "/min", "{breaths}/min": "/min", "rpm": "/min",
    "percent": "%",
    "cel": "Cel", "°c": "Cel", "degc": "Cel", "celsius": "Cel",
    "[degf]": "[degF]", "°f": "[degF]", "degf": "[degF]", "fahrenheit": "[degF]",
    "kgs": "kg", "lb": "[lb_av]", "lbs": "[lb_av]", "[lb_av]": "[lb_av]",
    "in": "[in_i]", "[in_i]": "[in_i]",
    "mm[hg]": "mm[Hg]", "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "kpa": "kPa",
    "kg/m²": "kg/m2", "kg/m^2": "kg/m2",
    "mg/dl": "mg/dL", "mmol/l": "mmol/L",
    "msec": "ms", "sec": "s",
    "kj": "kJ", "steps": "{steps}", "step": "{steps}", "ohm": "Ohm", "ω": "Ohm",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Conversion:
    """``target = (value + offset) * factor``."""

    factor: Decimal
    offset: Decimal = Decimal(0)

    def apply(self, value: Decimal) -> Decimal:
        with localcontext() as context:
            context.prec = 34
            return (value + self.offset) * self.factor


CONVERSIONS: Mapping[tuple[str, str], Conversion] = MappingProxyType({
    ("kPa", "mm[Hg]"): Conversion(Decimal(1000) / Decimal("133.3220")),
    ("[degF]", "Cel"): Conversion(Decimal(5) / Decimal(9), Decimal(-32)),
    ("[lb_av]", "kg"): Conversion(Decimal("0.45359237")),
    ("g", "kg"): Conversion(Decimal("0.001")),
    ("m", "cm"): Conversion(Decimal(100)),
    ("mm", "cm"): Conversion(Decimal("0.1")),
    ("[in_i]", "cm"): Conversion(Decimal("2.54")),
    ("s", "ms"): Conversion(Decimal(1000)),
    ("kJ", "kcal"): Conversion(Decimal(1) / Decimal("4.184")),
})  # fmt: skip
"""From a device unit to a kind's canonical unit."""

GLUCOSE_MOLAR_MASS = Decimal("180.156")
"""g/mol: mmol/L x 18.0156 = mg/dL (used only when a destination asks for the other unit)."""


@dataclass(frozen=True, slots=True)
class NormalizedQuantity:
    """A value in a canonical unit, with what the device sent when they differ."""

    value: Decimal
    unit: str
    original: Quantity | None = None


def to_ucum(unit: str) -> str:
    """The UCUM code for a unit spelling; raises ``unit_unknown`` for anything not known."""
    stripped = unit.strip()
    if stripped in UCUM_CODES:
        return stripped
    ucum = _FOLDED_ALIASES.get(stripped.lower())
    if ucum is None:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"unit {unit!r} is not a known UCUM unit or alias")
    return ucum


def normalize(quantity: Quantity, accepted: tuple[str, ...], what: str) -> NormalizedQuantity:
    """Express ``quantity`` in one of the ``accepted`` UCUM units (converting to the first if needed)."""
    ucum = to_ucum(quantity.unit)
    if ucum in accepted:
        return NormalizedQuantity(quantity.value, ucum)
    conversion = CONVERSIONS.get((ucum, accepted[0]))
    if conversion is None:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"unit {quantity.unit!r} cannot express {what} (expected {accepted[0]!r})")
    return NormalizedQuantity(keep_significant_digits(conversion.apply(quantity.value), quantity.value), accepted[0], quantity)


def glucose_in(value: Decimal, unit: str, target: str) -> Decimal:
    """Glucose between mg/dL and mmol/L (molar mass 180.156 g/mol), keeping significant digits."""
    if unit == target:
        return value
    per_mmol = GLUCOSE_MOLAR_MASS / 10  # mg/dL per mmol/L
    match (unit, target):
        case ("mmol/L", "mg/dL"):
            return keep_significant_digits(value * per_mmol, value)
        case ("mg/dL", "mmol/L"):
            return keep_significant_digits(value / per_mmol, value)
        case _:
            raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"glucose cannot go from {unit!r} to {target!r}")


def keep_significant_digits(value: Decimal, source: Decimal) -> Decimal:
    """Round ``value`` to the significant digits of ``source`` (at least whole units)."""
    if value.is_zero():
        return Decimal(0)
    significant = max(len(source.as_tuple().digits), 1)
    exponent = min(value.adjusted() - significant + 1, 0)
    with localcontext() as context:
        # quantize fails when the result has more digits than the context keeps (28 by default),
        # and a payload may carry 34 significant digits.
        context.prec = max(context.prec, value.adjusted() - exponent + 2)
        rounded = value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
        if rounded.adjusted() > value.adjusted() and exponent < 0:
            # 999.99995 -> 1000.0000 gained a digit by rounding up: drop the extra one.
            rounded = rounded.quantize(Decimal(1).scaleb(exponent + 1), rounding=ROUND_HALF_UP)
    return rounded
