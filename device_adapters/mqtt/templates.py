"""Payloads described by mapping templates, as readings (pure: no I/O).

The templates themselves (schema, loading, line-numbered errors) are
:mod:`edge_config.mapping_templates`; this module routes a topic to its template and runs the
template's compiled JMESPath expressions over the strict-JSON payload (every number a
:class:`~decimal.Decimal`, so ``2.0`` stays ``2.0``).

Per frame
    too big -> ``oversize``; not UTF-8 / strict JSON -> ``malformed_json``; the topic does not
    match the template or names no valid device -> ``malformed_frame``; the ``device_claim``
    names another device -> ``identity_mismatch`` (the whole frame); an ``each`` expression
    that fails -> ``malformed_frame``; more items than ``max_readings`` -> ``oversize``; a
    payload in which no rule finds an item -> ``malformed_frame`` (a frame never vanishes
    silently; items skipped by ``when`` are the template's own choice and do not count).

Per item (a rejection at its position; its neighbours are kept)
    every rule's items, in rule order, skipping those ``when`` filters out, take the positions
    0, 1, 2...: a reading's ``index`` and a rejection's position are that running position. A
    missing/null ``value``, component, ``unit`` or ``type``, a non-number value or a failing
    expression -> ``malformed_frame``; a missing/null ``time`` -> ``timestamp_missing``; a bad
    time -> ``malformed_frame`` (exactly as the native format reads times). Values are
    ``value * scale + offset`` in exact decimal arithmetic, then held to the native format's
    range (|value| < 1e12, at most 18 significant digits). The kind is not checked against the
    catalogue here: the mapper quarantines unknown kinds as ``unsupported_type``.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, ReasonCode
from device_adapters.jsonwire import json_number, json_time, json_type, loads_strict
from device_adapters.mqtt.native import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_READINGS
from device_adapters.readings import DEVICE_ID_PATTERN, FrameDecode, Quantity, Reading
from edge_config.mapping_templates import (
    JSON_NUMBER,
    KIND_PATTERN,
    MAX_UNIT_CHARS,
    Expression,
    ReadingRule,
    Source,
    Template,
    TemplateSet,
)

# Exact: any rounding (a value with more digits than this) is refused, never done silently.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.Overflow, decimal.Underflow, decimal.InvalidOperation])
_UNIT = Decimal(1)
_MAX_UNIX_SECONDS = Decimal("1e12")  # beyond the year 9999 either way
_ZERO = Decimal(0)
# What a JMESPath expression may raise on data of an unexpected shape ("abc" > `5`, sum of strings).
_EVALUATION_ERRORS = (ValueError, TypeError, ArithmeticError, KeyError, RecursionError)


# --- topics ---------------------------------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` by the MQTT rules.

    ``+`` matches exactly one level (an empty one too), ``#`` the rest including none
    (``a/#`` matches ``a``), and a wildcard in the first level never matches a topic starting
    with ``$`` (``$SYS/...``). A topic name holding a wildcard matches nothing.
    """
    if not topic or "+" in topic or "#" in topic:
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in {"+", "#"}:
        return False
    for position, level in enumerate(filter_levels):
        if level == "#":
            return True
        if position >= len(topic_levels):
            return False
        if level not in {"+", topic_levels[position]}:
            return False
    return len(filter_levels) == len(topic_levels)


def template_for_topic(templates: TemplateSet, topic: str) -> Template | None:
    """The template ``topic`` routes to (the loader makes filters disjoint: at most one)."""
    return next((template for template in templates.templates if topic_matches(template.topic, topic)), None)


def device_from_topic(template: Template, topic: str) -> str:
    """The device id in the template's device level of ``topic``: the broker-authenticated one."""
    if not topic_matches(template.topic, topic):
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"topic {topic!r} does not match template {template.name!r} ({template.topic!r})"
        )
    device_id = topic.split("/")[template.device_from_topic]
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"device id {device_id!r} in topic {topic!r} is not a valid device id")
    return device_id


# --- payloads -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    rule_index: int
    rule: ReadingRule
    item_index: int
    value: object


def decode_with_template(
    template: Template,
    topic: str,
    payload: bytes,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_readings: int = DEFAULT_MAX_READINGS,
) -> FrameDecode:
    """Decode one payload published on ``topic`` with ``template``.

    Frame-level problems raise :class:`DecodeError` (or :class:`IdentityError` for a device
    claim naming another device); a problem with one item rejects that item only.
    """
    if len(payload) > max_payload_bytes:
        raise DecodeError(ReasonCode.OVERSIZE, f"payload is {len(payload)} bytes, the limit is {max_payload_bytes}")
    device_id = device_from_topic(template, topic)
    document = loads_strict(payload)
    _check_claim(template, document, device_id)

    items: list[_Item] = []
    for rule_index, rule in enumerate(template.readings):
        for item_index, value in enumerate(_items(template, rule_index, rule, document)):
            items.append(_Item(rule_index, rule, item_index, value))
            if len(items) > max_readings:
                raise DecodeError(
                    ReasonCode.OVERSIZE, f"template {template.name!r}: payload has more than {max_readings} items (the limit)"
                )

    if not items:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"template {template.name!r}: the payload holds none of its readings")

    readings: list[Reading] = []
    rejections: list[tuple[int, InputRejectedError]] = []
    for item in items:
        scope = _Scope(item.value, document, f"template {template.name!r} readings[{item.rule_index}] item {item.item_index}")
        position = len(readings) + len(rejections)
        try:
            if _wanted(item.rule, scope):
                readings.append(_reading(item.rule, scope, device_id, position))
        except InputRejectedError as exc:
            rejections.append((position, exc))
    return FrameDecode(tuple(readings), tuple(rejections))


def _check_claim(template: Template, document: object, device_id: str) -> None:
    if template.device_claim is None:
        return
    claimed = _evaluate(template.device_claim, document, f"template {template.name!r} device_claim")
    if claimed is None:  # no claim made: the topic alone identifies the device
        return
    spelled = str(claimed) if isinstance(claimed, (str, Decimal)) else None
    if spelled != device_id:
        raise IdentityError(
            ReasonCode.IDENTITY_MISMATCH,
            f"template {template.name!r}: payload claims device {_shown(claimed)} ({template.device_claim.source!r})"
            f" but was published by {device_id!r}",
        )


def _items(template: Template, rule_index: int, rule: ReadingRule, document: object) -> list[object]:
    selected = _evaluate(rule.each, document, f"template {template.name!r} readings[{rule_index}] 'each'")
    if selected is None:
        return []
    return list(selected) if isinstance(selected, list) else [selected]


@dataclass(frozen=True, slots=True)
class _Scope:
    """What an item's expressions see: the item, the whole payload, and where it is (for messages)."""

    item: object
    document: object
    where: str

    def resolve(self, source: Source, what: str) -> object:
        if source.literal is not None:
            return source.literal
        if source.root is not None:
            return _evaluate(source.root, self.document, f"{self.where}: {what}")
        if source.expression is not None:
            return _evaluate(source.expression, self.item, f"{self.where}: {what}")
        raise AssertionError  # pragma: no cover - Source validates that one of the three is set


def _wanted(rule: ReadingRule, scope: _Scope) -> bool:
    if rule.when is None:
        return True
    verdict = _evaluate(rule.when, scope.item, f"{scope.where}: 'when'")
    # JMESPath truth: false, null, "", [] and {} are false; every number (0 too) is true.
    return not (verdict is None or verdict is False or (isinstance(verdict, (str, list, dict)) and not verdict))


def _reading(rule: ReadingRule, scope: _Scope, device_id: str, position: int) -> Reading:
    where = scope.where
    kind = scope.resolve(rule.kind, "'type'")
    if kind is None:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'type' ({_described(rule.kind)}) is missing")
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: 'type' {_shown(kind)} is not a lower-case kind name such as 'heart_rate'"
        )

    raw_time = scope.resolve(rule.time, "'time'")
    if raw_time is None:
        raise DecodeError(ReasonCode.TIMESTAMP_MISSING, f"{where}: 'time' ({_described(rule.time)}) is missing")
    time = _when(raw_time, rule, where)

    unit = scope.resolve(rule.unit, "'unit'")
    if not isinstance(unit, str) or not 0 < len(unit) <= MAX_UNIT_CHARS:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME,
            f"{where}: 'unit' ({_described(rule.unit)}) must be a string of 1 to {MAX_UNIT_CHARS} characters, got {_shown(unit)}",
        )

    if rule.value is not None:
        value = _value(rule, rule.value, scope, "'value'")
        return Reading(device_id, kind, time, Quantity(value, unit), index=position)
    components = tuple(
        (name, Quantity(_value(rule, source, scope, f"component {name!r}"), unit))
        for name, source in (rule.components or {}).items()
    )
    return Reading(device_id, kind, time, components=components, index=position)


def _value(rule: ReadingRule, source: Source, scope: _Scope, what: str) -> Decimal:
    where = scope.where
    raw = scope.resolve(source, what)
    if raw is None:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: {what} ({_described(source)}) is missing")
    number = _decimal(raw, f"{where}: {what}")
    if rule.scale != _UNIT or rule.offset != _ZERO:
        try:
            number = _EXACT.add(_EXACT.multiply(number, rule.scale), rule.offset)
        except ArithmeticError as exc:
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME, f"{where}: {what} {number} * {rule.scale} + {rule.offset} is not exact"
            ) from exc
    return json_number(number, f"{where}: {what}")


def _when(raw: object, rule: ReadingRule, where: str) -> datetime:
    if isinstance(raw, str) and not JSON_NUMBER.fullmatch(raw):
        return json_time(raw, where)
    seconds = _decimal(raw, f"{where}: 'time'")
    if rule.time_unit == "ms":
        seconds = seconds.scaleb(-3)
    # Checked here because the native reader's microsecond product can overflow the decimal
    # context (decimal.Overflow) for absurd times such as 1e999999.
    if abs(seconds) >= _MAX_UNIX_SECONDS:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'time' {seconds} is not a usable Unix time")
    return json_time(seconds, where)


def _decimal(raw: object, what: str) -> Decimal:
    """A JSON number, a number from an expression, or a numeric string, as an exact Decimal."""
    if isinstance(raw, Decimal) and raw.is_finite():
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return Decimal(raw)
    if isinstance(raw, float) and math.isfinite(raw):
        return Decimal(repr(raw))
    if isinstance(raw, str) and JSON_NUMBER.fullmatch(raw):
        return Decimal(raw)
    raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{what} must be a number or a numeric string, got {_shown(raw)}")


def _evaluate(expression: Expression, document: object, where: str) -> Any:  # noqa: ANN401 - JSON is untyped until checked
    try:
        return expression.search(document)
    except _EVALUATION_ERRORS as exc:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: {expression.source!r} cannot be evaluated here: {_first_line(exc)}"
        ) from exc


def _described(source: Source) -> str:
    if source.root is not None:
        return f"root {source.root.source!r}"
    if source.expression is not None:
        return repr(source.expression.source)
    return f"literal {source.literal!r}"


def _shown(value: object) -> str:
    """A value for a message: its JSON type, and its text when short (never a nested structure)."""
    if isinstance(value, (list, dict)) or value is None:
        return json_type(value)
    text = repr(str(value)) if isinstance(value, Decimal) else repr(value)
    return f"{json_type(value)} {text[:40]}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
