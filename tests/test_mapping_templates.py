"""Declarative mapping templates: the loader (line-numbered errors, reload) and the evaluator (golden FrameDecodes)."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_adapters.errors import ConfigError, DecodeError, IdentityError, InputRejectedError, ReasonCode
from device_adapters.jsonwire import loads_strict
from device_adapters.mqtt.templates import decode_with_template, device_from_topic, template_for_topic, topic_matches
from device_adapters.readings import FrameDecode, Quantity, Reading
from edge_config.mapping_templates import (
    Expression,
    Template,
    TemplateSet,
    TemplateWatcher,
    filters_overlap,
    load_templates,
    parse_templates,
    topic_filter_problem,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "edge_config" / "defaults" / "templates.example.yaml"
PLUS_ONE = timezone(timedelta(hours=1))
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 1795338000


@pytest.fixture(scope="module")
def example() -> TemplateSet:
    return load_templates(EXAMPLE)


def _template(body: str) -> Template:
    """One template from YAML (the body of a `templates:` item)."""
    text = "templates:\n  - " + textwrap.indent(textwrap.dedent(body).strip(), "    ").lstrip()
    return parse_templates(text, Path("inline.yaml")).templates[0]


# --- loader ---------------------------------------------------------------------------------------


def test_example_loads(example: TemplateSet) -> None:
    assert [template.name for template in example.templates] == ["acme-watch", "omnicuff-bp"]
    watch = example.named("acme-watch")
    assert watch.topic == "acme/+/telemetry"
    assert watch.device_from_topic == 1
    assert watch.device_claim == Expression.compile("deviceId")
    assert [rule.kind.literal for rule in watch.readings] == ["heart_rate", "spo2"]
    assert watch.readings[1].scale == Decimal(100)
    assert watch.readings[0].time_unit == "ms"
    cuff = example.named("omnicuff-bp")
    assert cuff.readings[0].components is not None
    assert list(cuff.readings[0].components) == ["systolic", "diastolic"]
    assert cuff.readings[0].time.root == Expression.compile("time")
    with pytest.raises(KeyError):
        example.named("nope")


def test_yaml_floats_are_exact_decimals() -> None:
    template = _template(
        """
        name: scale
        topic: "s/+"
        device_from_topic: 1
        readings:
          - {type: body_weight, value: g, unit: {literal: kg}, time: t, scale: 0.001, offset: 0.10}
        """
    )
    assert str(template.readings[0].scale) == "0.001"
    assert str(template.readings[0].offset) == "0.10"


HEAD = """\
templates:
  - name: acme-watch
    topic: "acme/+/telemetry"
    device_from_topic: 1
    readings:
"""
RULE = """\
      - each: samples
        type: heart_rate
        value: hr
        unit: {literal: "/min"}
        time: ts
"""


@pytest.mark.parametrize(
    ("text", "line", "message_part"),
    [
        # unknown field, at its own line
        (HEAD + RULE + "        valeu: hr\n", 11, "templates[0].readings[0].valeu: unknown field 'valeu'"),
        # bad JMESPath
        (HEAD + RULE.replace("value: hr", "value: 'hr[0'"), 8, "templates[0].readings[0].value: invalid JMESPath 'hr[0'"),
        # unknown JMESPath function and wrong arity, caught at load
        (HEAD + RULE.replace("value: hr", "value: 'mean(hr)'"), 8, "unknown function mean()"),
        (HEAD + RULE.replace("each: samples", "each: 'sum(a, b)'"), 6, "sum() takes 1 argument(s), got 2"),
        (HEAD + RULE.replace("time: ts", "time: {root: '[?'}"), 10, "templates[0].readings[0].time.root: invalid JMESPath"),
        # topic filters that can never match
        (HEAD.replace("acme/+/telemetry", "acme/#/telemetry"), 3, "'#' must be a whole level and the last one"),
        (HEAD.replace("acme/+/telemetry", "acme/dev+/telemetry"), 3, "'+' must be a whole level"),
        (HEAD.replace("acme/+/telemetry", ""), 3, "must not be empty"),
        (HEAD.replace("acme/+/telemetry", "$share/g/acme/+"), 3, "shared subscriptions"),
        # the device level must be a '+' level of the filter
        (HEAD.replace("device_from_topic: 1", "device_from_topic: 2"), 4, "level 2 of 'acme/+/telemetry' must be a '+' wildcard"),
        # duplicate template names, overlapping filters (the later one is the mistake)
        (HEAD + RULE + HEAD.removeprefix("templates:\n").replace("acme/+/", "other/+/") + RULE, 11, "name 'acme-watch' is already used"),
        (HEAD + RULE + HEAD.removeprefix("templates:\n").replace("acme-watch", "w2").replace("acme/+/telemetry", "acme/+/#") + RULE,
         12, "overlaps 'acme/+/telemetry' of templates[0] (acme-watch)"),
        (HEAD.replace("acme/+/telemetry", "pulsebridge/v1/devices/+/readings").replace("device_from_topic: 1", "device_from_topic: 3")
         + RULE, 3, "overlaps the native format"),
        # value and components both given: at 'components'
        (HEAD + RULE + "        components: {systolic: sys}\n", 11, "templates[0].readings[0].components: give 'value' or 'components', not both"),
        # neither given: at the rule
        (HEAD + RULE.replace("        value: hr\n", ""), 6, "templates[0].readings[0]: give 'value' (one number) or 'components'"),
        # wrong types
        (HEAD.replace("device_from_topic: 1", "device_from_topic: '1'"), 4, "templates[0].device_from_topic: Input should be a valid integer"),
        (HEAD.replace("name: acme-watch", "name: 123"), 2, "templates[0].name: Input should be a valid string"),
        (HEAD.replace("name: acme-watch", "name: Acme_Watch"), 2, "templates[0].name: String should match pattern"),
        (HEAD + RULE + "        scale: yes\n", 11, "templates[0].readings[0].scale: Decimal input should be"),
        (HEAD + RULE + "        scale: 0\n", 11, "scale must not be 0"),
        (HEAD + RULE + "        time_unit: us\n", 11, "templates[0].readings[0].time_unit: Input should be 's' or 'ms'"),
        (HEAD + RULE.replace('unit: {literal: "/min"}', "unit: 5"), 9, "unit: must be a JMESPath string or a mapping"),
        (HEAD + RULE.replace('unit: {literal: "/min"}', "unit: {literal: '/min', root: u}"), 9, "give exactly one of"),
        (HEAD + RULE.replace("value: hr", "value: {literal: '72'}"), 8, "'value' cannot be a literal"),
        (HEAD + RULE.replace("type: heart_rate", "type: Heart Rate"), 7, "'Heart Rate' is not a kind name"),
        (HEAD + RULE.replace("        value: hr\n", "        components: {Systolic: sys}\n"), 8, "components.Systolic"),
        (HEAD + RULE.replace("        value: hr\n", "        components: {systolic: {literal: x}}\n"), 8, "component 'systolic' cannot be a literal"),
        (HEAD.replace("    readings:\n", "    readings: []\n"), 5, "templates[0].readings: needs at least 1 item(s)"),
        # a missing required field: at the mapping that lacks it
        (HEAD + RULE.replace("        time: ts\n", ""), 6, "templates[0].readings[0].time: required field 'time' is missing"),
        # YAML itself
        (HEAD + RULE + "        unit: x\n", 11, "duplicate key 'unit'"),
        (HEAD + RULE + "      - [unclosed\n", 12, "not valid YAML"),
        ("", 1, "the file is empty"),
        ("- a\n- b\n", 1, "the top level must be a mapping"),
        ("templats: []\n", 1, "templats: unknown field 'templats'"),
    ],
)  # fmt: skip
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, message_part: str) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_templates(path)
    message = str(caught.value)
    assert f"{path}:{line}: " in message, message
    assert message_part in message, message


def test_error_line_format_and_several_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + RULE.replace("value: hr", "value: 'hr[0'") + "        extra: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_templates(path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}:8: templates[0].readings[0].value: invalid JMESPath 'hr[0': ")
    assert lines[1] == f"{path}:11: templates[0].readings[0].extra: unknown field 'extra'"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="template file not found"):
        load_templates(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_templates(binary)


def test_empty_template_list_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("templates: []\n", encoding="utf-8")
    assert load_templates(path) == TemplateSet()


@pytest.mark.parametrize(
    ("topic_filter", "ok"),
    [
        ("a/+/b", True), ("#", True), ("+", True), ("a/#", True), ("+/+/#", True), ("$SYS/#", True), ("a//b", True),
        ("a/#/b", False), ("a#", False), ("a/b#", False), ("a+/b", False), ("a/+b", False), ("", False), ("a\x00", False),
    ],
)  # fmt: skip
def test_topic_filter_validity(topic_filter: str, *, ok: bool) -> None:
    assert (topic_filter_problem(topic_filter) is None) is ok


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("a/+/b", "a/x/b", True), ("a/+/b", "a/+/c", False), ("a/#", "a", True), ("a/#", "a/b/c", True), ("a/+", "a", False),
        ("a/+", "a/b/c", False), ("#", "x/y", True), ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/a", True),
        ("acme/+/telemetry", "omnicuff/bp/+", False), ("a/b", "a/b", True),
    ],
)  # fmt: skip
def test_filters_overlap(first: str, second: str, *, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


# --- reloading --------------------------------------------------------------------------------------


def _write(path: Path, text: str, tick: int) -> None:
    """Write and give the file a distinct mtime (coarse file system clocks must not hide a change)."""
    path.write_text(text, encoding="utf-8")
    stamp = 1_800_000_000_000_000_000 + tick * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_watcher_reloads_and_keeps_the_last_good_set(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "templates.yaml"
    _write(path, HEAD + RULE, 1)
    watcher = TemplateWatcher(path)
    first = watcher.current
    assert [t.name for t in first.templates] == ["acme-watch"]
    assert watcher.poll() is None  # unchanged

    _write(path, HEAD.replace("acme-watch", "acme-watch-2") + RULE, 2)
    reloaded = watcher.poll()
    assert reloaded is not None
    assert [t.name for t in reloaded.templates] == ["acme-watch-2"]
    assert watcher.current is reloaded
    assert watcher.poll() is None

    with caplog.at_level(logging.ERROR, logger="edge_config.mapping_templates"):
        _write(path, HEAD + RULE.replace("value: hr", "value: 'hr['"), 3)
        assert watcher.poll() is None
    assert watcher.current is reloaded
    assert f"{path}:8: templates[0].readings[0].value: invalid JMESPath" in caplog.text
    assert watcher.poll() is None  # the broken version is not re-read, nor re-logged, until it changes

    path.unlink()  # an editor's rename-into-place, half way
    assert watcher.poll() is None
    assert watcher.current is reloaded

    _write(path, HEAD + RULE + HEAD.removeprefix("templates:\n").replace("acme-watch", "w2").replace("acme/", "beta/") + RULE, 4)
    fixed = watcher.poll()
    assert fixed is not None
    assert [t.name for t in fixed.templates] == ["acme-watch", "w2"]


def test_watcher_ignores_a_touch_without_a_change(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    _write(path, HEAD + RULE, 1)
    watcher = TemplateWatcher(path)
    _write(path, HEAD + RULE + "# a comment\n", 2)
    assert watcher.poll() is None


def test_watcher_fails_fast_on_an_invalid_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    _write(path, HEAD, 1)
    with pytest.raises(ConfigError, match=r":5: templates\[0\].readings"):
        TemplateWatcher(path)


# --- topics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("acme/+/telemetry", "acme/w-1/telemetry", True),
        ("acme/+/telemetry", "acme//telemetry", True),
        ("acme/+/telemetry", "acme/w-1/telemetry/x", False),
        ("acme/+/telemetry", "acme/w-1", False),
        ("acme/+/telemetry", "acme/w-1/Telemetry", False),
        ("acme/#", "acme", True),
        ("acme/#", "acme/a/b/c", True),
        ("acme/#", "acmex/a", False),
        ("#", "anything/at/all", True),
        ("#", "$SYS/broker/load", False),
        ("+/broker/load", "$SYS/broker/load", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("$SYS/+/load", "$SYS/broker/load", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("+/+", "/a", True),
        ("a/b", "a/b", True),
        ("a/+", "a/+", False),  # a topic name with a wildcard is not a topic
        ("#", "", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, *, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_routing_and_device_from_topic(example: TemplateSet) -> None:
    watch = template_for_topic(example, "acme/w-1001/telemetry")
    assert watch is not None
    assert watch.name == "acme-watch"
    assert device_from_topic(watch, "acme/w-1001/telemetry") == "w-1001"
    cuff = template_for_topic(example, "omnicuff/bp/cuff-7")
    assert cuff is not None
    assert cuff.name == "omnicuff-bp"
    assert template_for_topic(example, "pulsebridge/v1/devices/x/readings") is None
    for topic in ("omnicuff/bp/cuff-7", "acme/bad id/telemetry", "acme/-lead/telemetry", "acme//telemetry"):
        with pytest.raises(DecodeError) as caught:
            device_from_topic(watch, topic)
        assert caught.value.reason is ReasonCode.MALFORMED_FRAME


# --- golden decodes -------------------------------------------------------------------------------


def test_watch_batch_becomes_many_readings(example: TemplateSet) -> None:
    payload = json.dumps(
        {
            "deviceId": "w-1001",
            "samples": [
                {"ts": 1795338000000, "hr": 72, "spo2": 0.97},
                {"ts": 1795338060000, "hr": 75},
                {"ts": 1795338120500, "hr": 71.0, "spo2": 0.955},
            ],
        }
    ).encode()
    decoded = decode_with_template(example.named("acme-watch"), "acme/w-1001/telemetry", payload)
    assert decoded == FrameDecode(
        readings=(
            Reading("w-1001", "heart_rate", T0, Quantity(Decimal(72), "/min"), index=0),
            Reading("w-1001", "heart_rate", T0 + timedelta(minutes=1), Quantity(Decimal(75), "/min"), index=1),
            Reading(
                "w-1001", "heart_rate", T0 + timedelta(minutes=2, milliseconds=500), Quantity(Decimal("71.0"), "/min"), index=2
            ),
            Reading("w-1001", "spo2", T0, Quantity(Decimal("97.00"), "%"), index=3),
            Reading("w-1001", "spo2", T0 + timedelta(minutes=2, milliseconds=500), Quantity(Decimal("95.500"), "%"), index=4),
        ),
        rejections=(),
    )
    values = [str(reading.quantity.value) for reading in decoded.readings if reading.quantity is not None]
    assert values == ["72", "75", "71.0", "97.00", "95.500"]  # the digits the device sent, scaled exactly


def test_cuff_measurement_becomes_compound_and_pulse(example: TemplateSet) -> None:
    payload = b'{"measurements": {"sys": 128, "dia": 82.5, "pulse": 64}, "time": "2026-11-22T07:45:00+01:00"}'
    at = datetime(2026, 11, 22, 7, 45, tzinfo=PLUS_ONE)
    assert decode_with_template(example.named("omnicuff-bp"), "omnicuff/bp/cuff-7", payload) == FrameDecode(
        readings=(
            Reading(
                "cuff-7",
                "blood_pressure",
                at,
                components=(("systolic", Quantity(Decimal(128), "mm[Hg]")), ("diastolic", Quantity(Decimal("82.5"), "mm[Hg]"))),
                index=0,
            ),
            Reading("cuff-7", "pulse_rate", at, Quantity(Decimal(64), "/min"), index=1),
        ),
        rejections=(),
    )
    (reading, _) = decode_with_template(example.named("omnicuff-bp"), "omnicuff/bp/cuff-7", payload).readings
    assert reading.time.utcoffset() == timedelta(hours=1)  # the device's own offset is kept


def test_missing_fields_reject_their_item_only(example: TemplateSet) -> None:
    payload = json.dumps(
        {
            "samples": [
                {"ts": 1795338000000, "hr": 72},
                {"ts": 1795338060000},  # no hr
                {"hr": 70},  # no time
                {"ts": 1795338180000, "hr": "seventy"},
                {"ts": 1795338240000, "hr": None},
                {"ts": 1795338300000, "hr": "73.5"},  # a numeric string is a number
                {"ts": "2026-11-22T10:00:00", "hr": 60},  # no offset
                {"ts": 1795338360000, "hr": True},
            ]
        }
    ).encode()
    decoded = decode_with_template(example.named("acme-watch"), "acme/w-2/telemetry", payload)
    assert decoded.readings == (
        Reading("w-2", "heart_rate", T0, Quantity(Decimal(72), "/min"), index=0),
        Reading("w-2", "heart_rate", T0 + timedelta(minutes=5), Quantity(Decimal("73.5"), "/min"), index=5),
    )
    found = {index: (error.reason, error.detail) for index, error in decoded.rejections}
    assert sorted(found) == [1, 2, 3, 4, 6, 7]
    assert found[1] == (ReasonCode.MALFORMED_FRAME, "template 'acme-watch' readings[0] item 1: 'value' ('hr') is missing")
    assert found[2] == (ReasonCode.TIMESTAMP_MISSING, "template 'acme-watch' readings[0] item 2: 'time' ('ts') is missing")
    assert found[3][0] is ReasonCode.MALFORMED_FRAME
    assert "item 3: 'value' must be a number or a numeric string, got string 'seventy'" in found[3][1]
    assert found[4] == (ReasonCode.MALFORMED_FRAME, "template 'acme-watch' readings[0] item 4: 'value' ('hr') is missing")
    assert "no UTC offset" in found[6][1]
    assert "got boolean" in found[7][1]
    assert all(isinstance(error, DecodeError) for _, error in decoded.rejections)


def test_missing_component_names_it(example: TemplateSet) -> None:
    payload = b'{"measurements": {"sys": 128, "pulse": 64}, "time": "2026-11-22T07:45:00Z"}'
    decoded = decode_with_template(example.named("omnicuff-bp"), "omnicuff/bp/c", payload)
    assert [reading.kind for reading in decoded.readings] == ["pulse_rate"]
    assert decoded.readings[0].index == 1
    ((index, error),) = decoded.rejections
    assert index == 0
    assert error.detail == "template 'omnicuff-bp' readings[0] item 0: component 'diastolic' ('dia') is missing"


def test_calculated_values_are_exact() -> None:
    template = _template(
        """
        name: scale
        topic: "scale/+/weight"
        device_from_topic: 1
        readings:
          - {type: body_weight, value: grams, unit: {literal: kg}, time: at, scale: 0.001}
          - {type: body_temperature, value: raw, unit: {literal: Cel}, time: at, scale: 0.1, offset: -40}
        """
    )
    payload = b'{"grams": 72350, "raw": 773, "at": 1795338000}'
    assert decode_with_template(template, "scale/s-1/weight", payload) == FrameDecode(
        readings=(
            Reading("s-1", "body_weight", T0, Quantity(Decimal("72.350"), "kg"), index=0),
            Reading("s-1", "body_temperature", T0, Quantity(Decimal("37.3"), "Cel"), index=1),
        ),
    )
    (weight, temperature) = decode_with_template(template, "scale/s-1/weight", payload).readings
    assert str(weight.quantity.value) == "72.350"  # type: ignore[union-attr]  # a quantity reading, by the template
    assert str(temperature.quantity.value) == "37.3"  # type: ignore[union-attr]  # as above


def test_precision_kept_through_jmespath() -> None:
    document = loads_strict(b'{"a": 2.0, "b": [1.10, 2.25, 3], "c": 0.1}')
    assert Expression.compile("a").search(document) == Decimal("2.0")
    assert str(Expression.compile("a").search(document)) == "2.0"
    assert str(Expression.compile("sum(b)").search(document)) == "6.35"
    assert str(Expression.compile("avg(b)").search(document)) == "2.11666666666667"  # 15 significant digits where not exact
    assert str(Expression.compile("avg([a, `3`])").search(document)) == "2.5"
    assert str(Expression.compile("max(b)").search(document)) == "3"
    assert str(Expression.compile("min(b)").search(document)) == "1.10"
    assert Expression.compile("sort_by(b[*].{v: @}, &v)[0].v").search(document) == Decimal("1.10")
    assert Expression.compile("type(a)").search(document) == "number"
    assert Expression.compile("to_number('72.50')").search(document) == Decimal("72.50")
    assert Expression.compile("to_string(a)").search(document) == "2.0"
    # literals are Decimals too: no float arithmetic, and 0.1 + 0.2 is 0.3
    assert str(Expression.compile("sum([c, `0.2`])").search(document)) == "0.3"
    # ... in our copy only: jmespath's shared parse cache keeps its floats
    assert jmespath.compile("sum([c, `0.2`])").parsed["children"][0]["children"][1]["value"] == 0.2


def test_aggregates_in_a_template() -> None:
    template = _template(
        """
        name: avg
        topic: "avg/+"
        device_from_topic: 1
        readings:
          - type: heart_rate
            value: "avg(samples[].hr)"
            unit: {literal: /min}
            time: "max(samples[].ts)"
        """
    )
    payload = b'{"samples": [{"hr": 70.0, "ts": 1795338000}, {"hr": 75.0, "ts": 1795338060}]}'
    assert decode_with_template(template, "avg/d", payload) == FrameDecode(
        readings=(Reading("d", "heart_rate", T0 + timedelta(minutes=1), Quantity(Decimal("72.5"), "/min")),)
    )


def test_when_filters_and_evaluated_kinds() -> None:
    template = _template(
        """
        name: multi
        topic: "multi/+/data"
        device_from_topic: 1
        readings:
          - each: "records"
            when: "quality > `50` && kind != 'debug'"
            type: {expression: kind}
            value: v
            unit: u
            time: {root: sent}
        """
    )
    payload = json.dumps(
        {
            "sent": "2026-11-22T09:00:00Z",
            "records": [
                {"kind": "heart_rate", "v": 61, "u": "/min", "quality": 90},
                {"kind": "heart_rate", "v": 62, "u": "/min", "quality": 20},  # filtered: no position
                {"kind": "debug", "v": 1, "u": "1", "quality": 99},  # filtered
                {"kind": "glucose_ketone_ratio", "v": 3, "u": "1", "quality": 80},  # unknown kind: the mapper's call
                {"kind": "Heart Rate", "v": 63, "u": "/min", "quality": 80},
                {"kind": "spo2", "v": 97, "u": "%", "quality": "high"},  # string > number: cannot be evaluated
            ],
        }
    ).encode()
    decoded = decode_with_template(template, "multi/m-1/data", payload)
    assert decoded.readings == (
        Reading("m-1", "heart_rate", T0, Quantity(Decimal(61), "/min"), index=0),
        Reading("m-1", "glucose_ketone_ratio", T0, Quantity(Decimal(3), "1"), index=1),
    )
    assert [(index, error.reason) for index, error in decoded.rejections] == [
        (2, ReasonCode.MALFORMED_FRAME),
        (3, ReasonCode.MALFORMED_FRAME),
    ]
    assert "'type' string 'Heart Rate' is not a lower-case kind name" in decoded.rejections[0][1].detail
    assert "item 5: 'when'" in decoded.rejections[1][1].detail

    everything_filtered = b'{"sent": "2026-11-22T09:00:00Z", "records": [{"quality": 1}]}'
    assert decode_with_template(template, "multi/m-1/data", everything_filtered) == FrameDecode(readings=())


def test_device_claim(example: TemplateSet) -> None:
    watch = example.named("acme-watch")
    sample = '"samples": [{"ts": 1795338000, "hr": 60}]'
    for claim in ('"deviceId": "w-1",', "", '"deviceId": null,'):
        decoded = decode_with_template(watch, "acme/w-1/telemetry", f"{{{claim} {sample}}}".encode())
        assert [reading.device_id for reading in decoded.readings] == ["w-1"]
    numeric = decode_with_template(watch, "acme/1001/telemetry", f'{{"deviceId": 1001, {sample}}}'.encode())
    assert numeric.readings[0].device_id == "1001"
    for claim in ('"w-2"', '"W-1"', "true", '["w-1"]'):
        with pytest.raises(IdentityError) as caught:
            decode_with_template(watch, "acme/w-1/telemetry", f'{{"deviceId": {claim}, {sample}}}'.encode())
        assert caught.value.reason is ReasonCode.IDENTITY_MISMATCH
        assert "published by 'w-1'" in caught.value.detail


@pytest.mark.parametrize(
    ("payload", "reason", "message_part"),
    [
        (b"\xff", ReasonCode.MALFORMED_JSON, "UTF-8"),
        (b'{"samples": [{"ts": 1, "hr": NaN}]}', ReasonCode.MALFORMED_JSON, "NaN"),
        (b'{"samples": [], "samples": []}', ReasonCode.MALFORMED_JSON, "duplicate key"),
        (b'{"samples": []}', ReasonCode.MALFORMED_FRAME, "holds none of its readings"),
        (b'{"deviceId": "w-1"}', ReasonCode.MALFORMED_FRAME, "holds none of its readings"),
        (b"[1, 2]", ReasonCode.MALFORMED_FRAME, "holds none of its readings"),
        (b" " * 70_000 + b"{}", ReasonCode.OVERSIZE, "70002 bytes"),
    ],
)
def test_frame_level_rejections(example: TemplateSet, payload: bytes, reason: ReasonCode, message_part: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_with_template(example.named("acme-watch"), "acme/w-1/telemetry", payload)
    assert caught.value.reason is reason
    assert message_part in caught.value.detail


def test_too_many_items_is_oversize(example: TemplateSet) -> None:
    samples = ",".join('{"ts": 1795338000, "hr": 60}' for _ in range(6))
    payload = f'{{"samples": [{samples}]}}'.encode()
    # Two rules over 6 samples: 12 items to look at (the limit bounds the work, filtered items count).
    assert len(decode_with_template(example.named("acme-watch"), "acme/w/telemetry", payload, max_readings=12).readings) == 6
    with pytest.raises(DecodeError) as caught:
        decode_with_template(example.named("acme-watch"), "acme/w/telemetry", payload, max_readings=11)
    assert caught.value.reason is ReasonCode.OVERSIZE


def test_failing_each_rejects_the_frame() -> None:
    template = _template(
        """
        name: each
        topic: "each/+"
        device_from_topic: 1
        readings:
          - {each: "sort(xs)", type: heart_rate, value: "@", unit: {literal: /min}, time: {root: t}}
        """
    )
    assert [r.quantity for r in decode_with_template(template, "each/d", b'{"xs": [61, 60], "t": 0}').readings] == [
        Quantity(Decimal(60), "/min"),
        Quantity(Decimal(61), "/min"),
    ]
    with pytest.raises(DecodeError, match=r"readings\[0\] 'each': 'sort\(xs\)' cannot be evaluated"):
        decode_with_template(template, "each/d", b'{"xs": [61, "a"], "t": 0}')


def test_out_of_range_and_inexact_values() -> None:
    template = _template(
        """
        name: range
        topic: "range/+"
        device_from_topic: 1
        readings:
          - {each: xs, type: body_weight, value: "@", unit: {literal: kg}, time: {root: t}, scale: 3}
        """
    )
    decoded = decode_with_template(template, "range/d", b'{"xs": [4e11, 0.1234567890123456789, -0.0, 9e999999], "t": 0}')
    assert decoded.readings == (
        Reading("d", "body_weight", datetime(1970, 1, 1, tzinfo=UTC), Quantity(Decimal(0), "kg"), index=2),
    )
    assert [(index, error.reason) for index, error in decoded.rejections] == [
        (0, ReasonCode.MALFORMED_FRAME),
        (1, ReasonCode.MALFORMED_FRAME),
        (3, ReasonCode.MALFORMED_FRAME),
    ]
    details = [error.detail for _, error in decoded.rejections]
    assert "1200000000000 is out of range" in details[0]  # 4e11 * 3
    assert "out of range" in details[1]  # 19 significant digits
    assert "9E+999999 * 3 + 0 is not exact" in details[2]


def test_absurd_unix_times_are_rejected_not_raised() -> None:
    template = _template(
        """
        name: times
        topic: "times/+"
        device_from_topic: 1
        readings:
          - {each: ts, type: heart_rate, value: "`60`", unit: {literal: /min}, time: "@"}
        """
    )
    decoded = decode_with_template(template, "times/d", b'{"ts": [1e999999, -1e999999, "1e20", 1795338000, "1795338000.5"]}')
    assert [reading.time for reading in decoded.readings] == [T0, T0 + timedelta(milliseconds=500)]
    assert [index for index, _ in decoded.rejections] == [0, 1, 2]
    assert all("not a usable Unix time" in error.detail for _, error in decoded.rejections)


# --- robustness -----------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=16,
)
_FIELD_VALUES = (
    _JSON
    | st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22T10:00:00+25:00", "72.5", "1e999999", "-0", "9" * 40])
    | st.integers(-(10**20), 10**20)
    | st.decimals(allow_nan=False, allow_infinity=False).map(float)
)
_SAMPLE = st.dictionaries(
    st.sampled_from(["ts", "hr", "spo2", "sys", "dia", "pulse", "quality", "kind"]), _FIELD_VALUES, max_size=6
)
_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "deviceId": st.sampled_from(["w-1", "w-2", None, 7]) | _JSON,
        "samples": st.lists(_SAMPLE, max_size=5) | _JSON,
        "measurements": _SAMPLE | _JSON,
        "time": _FIELD_VALUES,
        "records": st.lists(_SAMPLE, max_size=4),
    },
)
_STRESS = """
name: stress
topic: "acme/+/telemetry"
device_from_topic: 1
device_claim: deviceId
readings:
  - {each: samples, when: "quality > `50`", type: {expression: kind}, value: hr, unit: {literal: /min}, time: ts}
  - {each: "samples[?hr]", type: heart_rate, value: "avg(samples[].hr)", unit: {literal: /min}, time: "max([ts, `0`])", scale: 0.001}
  - {each: measurements, type: blood_pressure, components: {systolic: sys, diastolic: dia}, unit: {literal: "mm[Hg]"},
     time: {root: time}, time_unit: ms, offset: -0.5}
  - {each: "records[]", type: heart_rate, value: "to_number(to_string(hr))", unit: "to_string(kind)", time: {root: "sort(@)"}}
"""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(_JSON, _SHAPED).map(lambda value: json.dumps(value).encode()) | st.binary(max_size=40))
def test_any_payload_gives_a_frame_decode_or_a_rejection(example: TemplateSet, payload: bytes) -> None:
    templates = [*example.templates, _template(_STRESS)]
    for template in templates:
        topic = "acme/w-1/telemetry" if template.topic.startswith("acme") else "omnicuff/bp/w-1"
        try:
            decoded = decode_with_template(template, topic, payload)
        except InputRejectedError:
            continue
        assert isinstance(decoded, FrameDecode)
        positions = sorted([reading.index for reading in decoded.readings] + [index for index, _ in decoded.rejections])
        assert positions == list(range(len(positions)))
        assert all(reading.device_id == "w-1" for reading in decoded.readings)
        assert all(isinstance(error, InputRejectedError) for _, error in decoded.rejections)
