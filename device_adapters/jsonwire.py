"""Strict JSON for device payloads, and JSON output that keeps decimal precision.

Device JSON is decoded with the standard library because it can hand every number over as a
:class:`~decimal.Decimal` (``2.0`` stays ``2.0``) and lets us refuse what RFC 8259 leaves
open: ``NaN``/``Infinity`` literals, duplicate keys, absurd nesting.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from device_adapters.errors import DecodeError, ReasonCode


class _DuplicateKeyError(ValueError):
    pass


def _reject_constant(name: str) -> Any:  # noqa: ANN401 - signature imposed by json.loads
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                msg = f"duplicate key {key!r}"
                raise _DuplicateKeyError(msg)
            seen.add(key)
    return obj


def loads_strict(payload: bytes) -> Any:  # noqa: ANN401 - JSON is untyped until checked
    """Decode device JSON; every failure is a :class:`DecodeError` ``malformed_json``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(ReasonCode.MALFORMED_JSON, f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_pairs_without_duplicates,
        )
    except RecursionError as exc:
        raise DecodeError(ReasonCode.MALFORMED_JSON, "JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise DecodeError(ReasonCode.MALFORMED_JSON, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:
        raise DecodeError(ReasonCode.MALFORMED_JSON, f"invalid JSON: {exc}") from exc


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    msg = f"cannot serialize {type(value).__name__}"
    raise TypeError(msg)


def dumps(value: object) -> bytes:
    """Serialize to JSON bytes; Decimals are written digit for digit as JSON numbers."""
    return orjson.dumps(value, default=_default)


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?",
)
# FHIR decimals are meant to round-trip through IEEE doubles: keep to what survives that.
_MAX_SIGNIFICANT_DIGITS = 18
_MAX_MAGNITUDE = Decimal("1e12")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def json_number(raw: object, what: str) -> Decimal:
    if not isinstance(raw, Decimal):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{what} must be a JSON number, got {json_type(raw)}")
    digits = len(raw.as_tuple().digits)
    if raw.adjusted() >= _MAX_MAGNITUDE.adjusted() or digits > _MAX_SIGNIFICANT_DIGITS:  # adjusted(): safe for 1e999999999
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME,
            f"{what} {raw} is out of range (|value| < 1e12, at most {_MAX_SIGNIFICANT_DIGITS} significant digits)",
        )
    # -0 and 0E+3 are the same reading as 0: one spelling keeps the reading key stable.
    return raw + 0 if raw.is_zero() else raw


def json_time(raw: object, where: str) -> datetime:
    if isinstance(raw, Decimal):
        try:
            micros = int((raw * 1_000_000).to_integral_value())
            return _EPOCH + timedelta(microseconds=micros)
        except (OverflowError, ArithmeticError) as exc:  # decimal.Overflow is an ArithmeticError, not an OverflowError
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'time' {raw} is not a usable Unix time") from exc
    if not isinstance(raw, str):
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: 'time' must be an RFC 3339 string or Unix seconds, got {json_type(raw)}"
        )
    match = _RFC3339.fullmatch(raw)
    if match is None:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: 'time' {raw[:40]!r} is not RFC 3339 (YYYY-MM-DDThh:mm:ss[.fff]±hh:mm)"
        )
    date, clock, fraction, offset = match.groups()
    if offset is None:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'time' {raw!r} has no UTC offset ('Z' or ±hh:mm)")
    micro = f".{(fraction + '00000')[:6]}" if fraction else ""
    zone = "+00:00" if offset in {"Z", "z"} else offset
    try:
        return datetime.fromisoformat(f"{date}T{clock}{micro}{zone}")
    except ValueError as exc:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'time' {raw!r} is not a valid date and time: {exc}") from exc


_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (Decimal, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: object) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)
