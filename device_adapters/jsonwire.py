"""Strict JSON for device payloads, and JSON output that keeps decimal precision.

Device JSON is decoded with the standard library because it can hand every number over as a
:class:`~decimal.Decimal` (``2.0`` stays ``2.0``) and lets us refuse what RFC 8259 leaves
open: ``NaN``/``Infinity`` literals, duplicate keys, absurd nesting.
"""

from __future__ import annotations

import json
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
