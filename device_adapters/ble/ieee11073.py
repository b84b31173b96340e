"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) medical floats.

``value = mantissa x 10^exponent`` with two's-complement fields. The special values are exact raw
words (exponent 0) and become an :class:`AbsentReason`, never a number: NaN -> not-a-number,
NRes and the reserved word -> error, +/-INFINITY -> positive/negative-infinity (HL7 PHD IG
FLOATS.md). Values are Decimals that keep the device's precision (``0xF014`` is ``2.0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from device_adapters.readings import AbsentReason

MedicalNumber = Decimal | AbsentReason

_SFLOAT_SPECIALS: Mapping[int, AbsentReason] = MappingProxyType({
    0x07FF: AbsentReason.NOT_A_NUMBER,
    0x0800: AbsentReason.ERROR,  # NRes: not at this resolution
    0x07FE: AbsentReason.POSITIVE_INFINITY,
    0x0802: AbsentReason.NEGATIVE_INFINITY,
    0x0801: AbsentReason.ERROR,  # reserved for future use
})  # fmt: skip
_FLOAT_SPECIALS: Mapping[int, AbsentReason] = MappingProxyType({
    0x007FFFFF: AbsentReason.NOT_A_NUMBER,
    0x00800000: AbsentReason.ERROR,
    0x007FFFFE: AbsentReason.POSITIVE_INFINITY,
    0x00800002: AbsentReason.NEGATIVE_INFINITY,
    0x00800001: AbsentReason.ERROR,
})  # fmt: skip


def sfloat(raw: int) -> MedicalNumber:
    """Decode a 16-bit SFLOAT word (already assembled little-endian)."""
    special = _SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    mantissa, exponent = raw & 0x0FFF, raw >> 12
    if mantissa & 0x0800:
        mantissa -= 0x1000
    if exponent & 0x8:
        exponent -= 0x10
    return Decimal(mantissa).scaleb(exponent)


def float32(raw: int) -> MedicalNumber:
    """Decode a 32-bit FLOAT word (already assembled little-endian)."""
    special = _FLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    mantissa, exponent = raw & 0xFFFFFF, raw >> 24
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    if exponent & 0x80:
        exponent -= 0x100
    return Decimal(mantissa).scaleb(exponent)
