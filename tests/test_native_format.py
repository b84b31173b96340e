"""Golden tests for the native v1 MQTT format: whole-object equality, every rejection reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, ReasonCode
from device_adapters.mqtt.native import decode_payload, device_from_topic, encode_readings, topic_for
from device_adapters.readings import FrameDecode, Quantity, Reading

PLUS_ONE = timezone(timedelta(hours=1))


def test_single_reading_keeps_offset_and_precision() -> None:
    payload = b'{"type": "body_temperature", "value": 37.0, "unit": "Cel", "time": "2026-11-22T10:00:00+01:00"}'
    assert decode_payload(payload, "thermo-1") == FrameDecode(
        readings=(
            Reading(
                "thermo-1", "body_temperature", datetime(2026, 11, 22, 10, tzinfo=PLUS_ONE), Quantity(Decimal("37.0"), "Cel")
            ),
        ),
        rejections=(),
    )
    quantity = decode_payload(payload, "thermo-1").readings[0].quantity
    assert quantity is not None
    assert str(quantity.value) == "37.0"


def test_list_with_compound_reading_and_unix_time() -> None:
    payload = (
        b'[{"type": "blood_pressure", "components": {"systolic": 120, "diastolic": 80}, "unit": "mm[Hg]",'
        b' "time": "2026-11-22T09:00:00Z"},'
        b' {"type": "pulse_rate", "value": 64, "unit": "bpm", "time": 1795338000.25, "device_id": "cuff-7"}]'
    )
    at = datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert decode_payload(payload, "cuff-7") == FrameDecode(
        readings=(
            Reading(
                "cuff-7",
                "blood_pressure",
                at,
                components=(("systolic", Quantity(Decimal(120), "mm[Hg]")), ("diastolic", Quantity(Decimal(80), "mm[Hg]"))),
            ),
            Reading("cuff-7", "pulse_rate", at + timedelta(milliseconds=250), Quantity(Decimal(64), "bpm"), index=1),
        ),
        rejections=(),
    )


def test_fraction_beyond_microseconds_is_truncated() -> None:
    payload = b'{"type": "heart_rate", "value": 60, "unit": "/min", "time": "2026-11-22T10:00:00.123456789-05:00"}'
    (reading,) = decode_payload(payload, "w").readings
    assert reading.time == datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", ReasonCode.MALFORMED_JSON),
        (b"", ReasonCode.MALFORMED_JSON),
        (b"{", ReasonCode.MALFORMED_JSON),
        (b'{"type": "heart_rate", "value": NaN, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_JSON),
        (b'{"type": "heart_rate", "value": Infinity, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_JSON),
        (
            b'{"type": "heart_rate", "type": "spo2", "value": 1, "unit": "/min", "time": "2026-11-22T10:00:00Z"}',
            ReasonCode.MALFORMED_JSON,
        ),
        (b"[" * 30_000 + b"]" * 30_000, ReasonCode.MALFORMED_JSON),
        (b"42", ReasonCode.MALFORMED_FRAME),
        (b'"reading"', ReasonCode.MALFORMED_FRAME),
        (b"null", ReasonCode.MALFORMED_FRAME),
        (b"[]", ReasonCode.MALFORMED_FRAME),
        (b" " * 70_000 + b"{}", ReasonCode.OVERSIZE),
    ],
)
def test_frame_level_rejections(payload: bytes, reason: ReasonCode) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_payload(payload, "dev-1")
    assert caught.value.reason is reason
    assert caught.value.detail


def test_too_many_readings_is_oversize() -> None:
    item = b'{"type": "heart_rate", "value": 60, "unit": "/min", "time": "2026-11-22T10:00:00Z"}'
    with pytest.raises(DecodeError) as caught:
        decode_payload(b"[" + b",".join([item] * 11) + b"]", "dev-1", max_readings=10)
    assert caught.value.reason is ReasonCode.OVERSIZE


GOOD = '{"type": "heart_rate", "value": 60, "unit": "/min", "time": "2026-11-22T10:00:00Z"}'


@pytest.mark.parametrize(
    ("item", "reason", "message_part"),
    [
        ("17", ReasonCode.MALFORMED_FRAME, "must be an object"),
        ('{"type": "heart_rate", "value": 60, "unit": "/min"}', ReasonCode.TIMESTAMP_MISSING, "'time' is missing"),
        ('{"type": "heart_rate", "value": 60, "unit": "/min", "time": "2026-11-22T10:00:00"}', ReasonCode.MALFORMED_FRAME, "no UTC offset"),
        ('{"type": "heart_rate", "value": 60, "unit": "/min", "time": "2026-13-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "not a valid"),
        ('{"type": "heart_rate", "value": 60, "unit": "/min", "time": "yesterday"}', ReasonCode.MALFORMED_FRAME, "RFC 3339"),
        ('{"type": "heart_rate", "value": 60, "unit": "/min", "time": true}', ReasonCode.MALFORMED_FRAME, "got boolean"),
        ('{"type": "heart_rate", "value": "60", "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "got string"),
        ('{"type": "heart_rate", "value": true, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "got boolean"),
        ('{"type": "heart_rate", "value": 1e400, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "out of range"),
        ('{"type": "heart_rate", "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "exactly one"),
        ('{"type": "Heart Rate", "value": 1, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "'type'"),
        ('{"type": "heart_rate", "value": 1, "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "'unit'"),
        ('{"type": "heart_rate", "value": 1, "unit": "", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "'unit'"),
        ('{"type": "heart_rate", "value": 1, "unit": "/min", "time": "2026-11-22T10:00:00Z", "x": 1}', ReasonCode.MALFORMED_FRAME, "'x'"),
        ('{"type": "bp", "components": [], "unit": "mm[Hg]", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "components"),
        ('{"type": "bp", "components": {"Sys": 1}, "unit": "mm[Hg]", "time": "2026-11-22T10:00:00Z"}', ReasonCode.MALFORMED_FRAME, "'Sys'"),
        ('{"type": "heart_rate", "value": 1, "unit": "/min", "time": "2026-11-22T10:00:00Z", "device_id": "other"}',
         ReasonCode.IDENTITY_MISMATCH, "'other'"),
    ],
)  # fmt: skip
def test_reading_level_rejections_keep_good_neighbours(item: str, reason: ReasonCode, message_part: str) -> None:
    decoded = decode_payload(f"[{GOOD}, {item}]".encode(), "dev-1")
    assert [reading.kind for reading in decoded.readings] == ["heart_rate"]
    ((index, error),) = decoded.rejections
    assert index == 1
    assert error.reason is reason
    assert message_part in error.detail


def test_identity_mismatch_is_an_identity_error() -> None:
    decoded = decode_payload(b'{"type": "heart_rate", "value": 1, "unit": "/min", "time": 0, "device_id": "B"}', "A")
    assert isinstance(decoded.rejections[0][1], IdentityError)


def test_topics() -> None:
    assert topic_for("watch-9") == "pulsebridge/v1/devices/watch-9/readings"
    assert device_from_topic("pulsebridge/v1/devices/watch-9/readings") == "watch-9"
    for topic in ("pulsebridge/v2/devices/a/readings", "pulsebridge/v1/devices//readings", "pulsebridge/v1/devices/a/b/readings"):
        with pytest.raises(DecodeError):
            device_from_topic(topic)


def test_encode_then_decode_round_trips() -> None:
    readings = (
        Reading("d", "body_weight", datetime(2026, 1, 2, 3, 4, 5, tzinfo=PLUS_ONE), Quantity(Decimal("70.50"), "kg")),
        Reading(
            "d",
            "blood_pressure",
            datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
            components=(("systolic", Quantity(Decimal(118), "mm[Hg]")), ("diastolic", Quantity(Decimal(76), "mm[Hg]"))),
            index=1,
        ),
    )
    assert decode_payload(encode_readings(readings), "d").readings == readings


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_decode_errors(payload: bytes) -> None:
    try:
        decoded = decode_payload(payload, "dev-1")
    except DecodeError:
        return
    assert len(decoded.readings) + len(decoded.rejections) >= 1


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["type", "value", "unit", "time", "components", "x"]), children, max_size=5),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(_json)
def test_arbitrary_json_is_decoded_or_rejected_with_a_reason(document: object) -> None:
    reason: ReasonCode | None = None
    try:
        decoded = decode_payload(json.dumps(document).encode(), "dev-1")
    except InputRejectedError as exc:
        reason = exc.reason
    if reason is not None:
        assert reason in ReasonCode
        return
    for _, error in decoded.rejections:
        assert error.reason in ReasonCode
    for reading in decoded.readings:
        assert reading.time.tzinfo is not None
