"""`pulsebridge decode gatt`: one value, JSON lines, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import orjson

from fhir_mapper.validation import validate_resource
from tests.services import cli


def test_one_measurement_prints_its_observations() -> None:
    result = cli({}, "decode", "gatt", "2A35", "1E 78 00 50 00 5D 00 E8 07 01 02 03 04 05 48 00 01 00 00", "--patient", "pat-9")
    assert result.returncode == 0, result.stderr
    panel, pulse = orjson.loads(result.stdout)
    for resource in (panel, pulse):
        validate_resource(resource)
        assert resource["subject"] == {"reference": "Patient/pat-9"}
    assert panel["effectiveDateTime"] == "2024-01-02T03:04:05+00:00"


def test_decoding_reports_what_the_device_sent_without_plausibility() -> None:
    result = cli({}, "decode", "gatt", "0x2a35", "00 20 03 50 00 5D 00")  # systolic 800 mmHg: implausible, still decoded
    assert result.returncode == 0, result.stderr
    (panel,) = orjson.loads(result.stdout)
    assert panel["component"][0]["valueQuantity"]["value"] == 800
    assert panel["subject"] == {"reference": "Patient/placeholder-patient"}


def test_malformed_input_is_a_one_line_error() -> None:
    for args in (("2A35", "02 78 00"), ("2A35", "xyz"), ("FFFF", "00"), ("not-a-uuid", "00")):
        result = cli({}, "decode", "gatt", *args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("pulsebridge: error: ")


def test_jsonl_answers_every_line_in_order() -> None:
    lines = [
        {"id": "a", "uuid": "2A35", "hex": "00 78 00 50 00 FF 07"},
        {"id": "b", "uuid": "00002a36-0000-1000-8000-00805f9b34fb", "hex": "0064000000000000"[:14]},
        {"id": "c", "uuid": "2A35", "hex": "02 78 00"},
        {"id": 4, "uuid": "2A35"},
    ]
    text = "\n".join(orjson.dumps(line).decode() for line in lines) + "\nnot json\n"
    result = subprocess.run([sys.executable, "-m", "gateway", "decode", "gatt", "--jsonl"], input=text, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [answer.get("id") for answer in answers] == ["a", "b", "c", 4, None]
    assert len(answers[0]["observations"]) == 1
    validate_resource(answers[0]["observations"][0])
    assert answers[1]["decoded"]["cuff_pressure"] == 100
    assert answers[2]["error"].startswith("Blood Pressure Measurement: flags 0x02 need 14 octets, have 3")
    assert "uuid" in answers[3]["error"]
    assert "not JSON" in answers[4]["error"]


def test_decode_mqtt_shows_readings_observations_and_rejections() -> None:
    payload = (
        '[{"type": "heart_rate", "value": 70, "unit": "bpm", "time": "2026-11-22T10:00:00Z"},'
        ' {"type": "mood", "value": 1, "unit": "%", "time": "2026-11-22T10:00:00Z"}]'
    )
    result = cli({}, "decode", "mqtt", "--format", "native", "--device", "w1", payload)
    assert result.returncode == 0, result.stderr
    answer = orjson.loads(result.stdout)
    (observation,) = answer["observations"]
    validate_resource(observation)
    assert answer["rejected"] == [
        {"index": 1, "reason": "unsupported_type", "detail": "reading type 'mood' is not in the catalogue"}
    ]


def test_decode_mqtt_with_a_template_and_as_json_lines() -> None:
    example = "edge_config/defaults/templates.example.yaml"
    lines = [
        {
            "id": 1,
            "format": "acme-watch",
            "payload": {"deviceId": "w1", "samples": [{"ts": 1795338000000, "hr": 64, "spo2": 0.97}]},
        },
        {"id": 2, "format": "senml", "payload": '[{"n": "heart_rate", "u": "beat/min", "v": 61, "t": 1795338600}]'},
        {"id": 3, "format": "native", "payload": "{"},
        {"id": 4, "format": "nope", "payload": "{}"},
    ]
    text = "\n".join(orjson.dumps(line).decode() for line in lines) + "\n"
    result = subprocess.run([sys.executable, "-m", "gateway", "decode", "mqtt", "--jsonl", "--templates", example, "--device", "w1"],
                            input=text, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [len(answer.get("observations", [])) for answer in answers] == [2, 1, 0, 0]
    assert answers[2]["error"].startswith("malformed_json")
    assert "no format 'nope'" in answers[3]["error"]
