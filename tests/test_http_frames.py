"""Frames posted over HTTP: the device comes from the channel, untrusted FHIR is validated first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from device_adapters.errors import InputRejectedError, ReasonCode
from device_adapters.readings import RawFrame
from edge_config import IngestSettings
from gateway.http_frames import HttpFormat, HttpFrameDecoder, http_channel

EXAMPLES = Path(__file__).resolve().parent.parent / ".cache" / "fhir-r4-examples"
DECODER = HttpFrameDecoder(IngestSettings())
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _frame(payload: object, posted: HttpFormat = HttpFormat.OBSERVATION) -> RawFrame:
    return RawFrame("http", http_channel("dev-1", posted), orjson.dumps(payload), NOW)


def _heart_rate() -> dict[str, object]:
    document: dict[str, object] = orjson.loads((EXAMPLES / "Observation-heart-rate.json").read_bytes())
    return document


def test_an_observation_becomes_a_reading_with_the_patient_it_names() -> None:
    frame = _frame(_heart_rate())
    assert DECODER.device_id(frame) == "dev-1"
    decoded = DECODER.decode(frame, "dev-1")
    assert [reading.kind for reading in decoded.readings] == ["heart_rate"]
    assert decoded.claimed_patients == ((0, "example"),)
    assert not decoded.atomic


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({**_heart_rate(), "valueQuantity": "44 beats/min"}, ReasonCode.FHIR_VALIDATION),
        ({"resourceType": "Patient", "id": "x"}, ReasonCode.FHIR_VALIDATION),
        ([1, 2], ReasonCode.FHIR_VALIDATION),
        ({**_heart_rate(), "status": "cancelled"}, ReasonCode.MALFORMED_FRAME),
    ],
)
def test_what_is_not_a_valid_vital_sign_observation_is_refused(payload: object, reason: ReasonCode) -> None:
    with pytest.raises(InputRejectedError) as caught:
        DECODER.decode(_frame(payload), "dev-1")
    assert caught.value.reason == reason


def test_a_batch_bundle_keeps_its_good_entries_and_rejects_the_bad_one_by_position() -> None:
    good = {"resource": _heart_rate(), "request": {"method": "POST", "url": "Observation"}}
    bad = {"resource": {**_heart_rate(), "valueQuantity": "x"}, "request": {"method": "POST", "url": "Observation"}}
    put = {**good, "request": {"method": "PUT", "url": "Observation/1"}}
    for kind in ("batch", "transaction"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [good, bad, put]}
        decoded = DECODER.decode(_frame(bundle, HttpFormat.BUNDLE), "dev-1")
        assert [reading.index for reading in decoded.readings] == [0]
        assert [(index, error.reason) for index, error in decoded.rejections] == [
            (1, ReasonCode.FHIR_VALIDATION),
            (2, ReasonCode.MALFORMED_FRAME),
        ]
        assert decoded.atomic is (kind == "transaction")


def test_a_channel_that_names_no_device_is_refused() -> None:
    with pytest.raises(InputRejectedError):
        DECODER.device_id(RawFrame("http", "devices/a b/fhir", b"{}", NOW))
