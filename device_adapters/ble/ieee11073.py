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


def _decode(raw: int, specials: Mapping[int, AbsentReason], mantissa_bits: int, word_bits: int) -> MedicalNumber:
    """``mantissa x 10^exponent``, both two's complement; the exponent fills the bits above the mantissa."""
    special = specials.get(raw)
    if special is not None:
        return special
    mantissa, exponent = raw & ((1 << mantissa_bits) - 1), raw >> mantissa_bits
    if mantissa >> (mantissa_bits - 1):
        mantissa -= 1 << mantissa_bits
    exponent_bits = word_bits - mantissa_bits
    if exponent >> (exponent_bits - 1):
        exponent -= 1 << exponent_bits
    return Decimal(mantissa).scaleb(exponent)


def sfloat(raw: int) -> MedicalNumber:
    """Decode a 16-bit SFLOAT word (already assembled little-endian): 4-bit exponent, 12-bit mantissa."""
    return _decode(raw, _SFLOAT_SPECIALS, mantissa_bits=12, word_bits=16)


def float32(raw: int) -> MedicalNumber:
    """Decode a 32-bit FLOAT word (already assembled little-endian): 8-bit exponent, 24-bit mantissa."""
    return _decode(raw, _FLOAT_SPECIALS, mantissa_bits=24, word_bits=32)
