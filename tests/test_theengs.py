"""Theengs decoded documents -> readings: the real decoder's output, the ambient rule, deduplication.

The documents are produced by running TheengsDecoder's ``decodeBLE`` on advertisements from its
own test suite (``tests/BLE/test_ble.cpp`` of theengs/decoder: Mi Smart Scale on 0x181d, Mi Body
Composition Scale 2 on 0x181b, the LYWSD03MMC ATC firmware on 0x181a). The Polar H10, XOSS X2
and Atomax Skale manufacturer data are built to the decoder's own model conditions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from device_adapters.ble.advertisements import theengs_decode
from device_adapters.errors import DecodeError, ReasonCode
from device_adapters.jsonwire import loads_strict
from device_adapters.readings import FrameDecode, Quantity, Reading
from device_adapters.theengs import (
    FIELDS,
    MODELS,
    AdvertisementDeduplicator,
    DeviceClass,
    TheengsModel,
    readings_from_theengs,
)
from tests.ble_support import observations

RECEIVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SCALE_ID = "5C:CA:D3:00:00:01"


def decoded(**request: object) -> dict[str, object]:
    document = theengs_decode({"id": SCALE_ID, "rssi": -67, **request})
    assert document is not None, request
    return document


def body_composition_scale(servicedata: str) -> dict[str, object]:
    return decoded(name="MIBFS", servicedatauuid="181b", servicedata=servicedata)


def quantities(result: FrameDecode) -> list[tuple[str, Quantity | None, int]]:
    return [(reading.kind, reading.quantity, reading.index) for reading in result.readings]


def test_body_composition_scale_gives_weight_and_impedance() -> None:
    document = body_composition_scale("0226e607020e10293af7019a38")
    assert document["model_id"] == "XMTZC02HM/XMTZC05HM"
    assert document["type"] == "SCALE"
    result = readings_from_theengs(document, "scale-1", RECEIVED)
    assert result.rejections == ()
    assert quantities(result) == [
        ("body_weight", Quantity(Decimal("72.45"), "kg"), 0),
        ("body_impedance", Quantity(Decimal(503), "Ohm"), 1),
    ]
    assert all(reading.time == RECEIVED and reading.device_id == "scale-1" for reading in result.readings)

    weight, impedance = observations(list(result.readings))
    assert weight["code"]["coding"][0]["code"] == "29463-7"
    assert weight["valueQuantity"] == {"value": 72.45, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    assert impedance["valueQuantity"]["code"] == "Ohm"
    assert impedance["valueQuantity"]["value"] == 503


def test_pounds_become_ucum_avoirdupois_pounds() -> None:
    document = body_composition_scale("0326e607020e10293af701f136")
    assert document["unit"] == "lb"
    result = readings_from_theengs(document, "scale-1", RECEIVED)
    assert quantities(result) == [
        ("body_weight", Quantity(Decimal("140.65"), "[lb_av]"), 0),
        ("body_impedance", Quantity(Decimal(503), "Ohm"), 1),
    ]
    weight, _ = observations(list(result.readings))
    assert weight["valueQuantity"]["code"] == "kg"  # the mapper converts to the canonical unit


def test_weight_without_impedance() -> None:
    result = readings_from_theengs(body_composition_scale("0224e607020e10293a00009a38"), "scale-1", RECEIVED)
    assert quantities(result) == [("body_weight", Quantity(Decimal("72.45"), "kg"), 0)]


def test_mi_smart_scale() -> None:
    document = decoded(name="MI_SCALE", servicedatauuid="181d", servicedata="223e30e607020e10293a")
    assert document["model_id"] == "XMTZC01HM/XMTZC04HM"
    result = readings_from_theengs(document, "scale-2", RECEIVED)
    assert quantities(result) == [("body_weight", Quantity(Decimal("61.75"), "kg"), 0)]


def test_an_object_on_the_scale_is_not_a_body_weight() -> None:
    document = body_composition_scale("0624e607020e10293a0000fc03")
    assert (document["weighing_mode"], document["weight"]) == ("object", Decimal("5.1"))
    assert readings_from_theengs(document, "scale-1", RECEIVED) == FrameDecode(())


def test_an_ambient_sensor_temperature_is_never_a_body_temperature() -> None:
    document = decoded(id="A4:C1:38:D5:D4:98", servicedatauuid="181a", servicedata="a4c138d5d49801453e510b7b62")
    assert document["model_id"] == "LYWSD03MMC/MJWSD05MMC_ATC"
    assert document["type"] == "THB"
    assert document["tempc"] == Decimal("32.5")  # inside the body temperature plausible range: must still not pass
    assert document["batt"] == Decimal(81)
    assert readings_from_theengs(document, "room-1", RECEIVED) == FrameDecode(())


def test_an_ambient_type_cannot_be_declared_a_body_thermometer() -> None:
    with pytest.raises(ValueError, match="body thermometer must be a decoder model of type 'BODY'"):
        TheengsModel("THB", DeviceClass.BODY_THERMOMETER)


def test_body_temperature_needs_a_body_thermometer_model_of_type_body() -> None:
    models = {**MODELS, "FEVER-1": TheengsModel("BODY", DeviceClass.BODY_THERMOMETER)}
    document: dict[str, object] = {"model_id": "FEVER-1", "type": "BODY", "tempc": Decimal("36.85"), "batt": Decimal(90)}
    result = readings_from_theengs(document, "thermo-1", RECEIVED, models=models)
    assert quantities(result) == [
        ("body_temperature", Quantity(Decimal("36.85"), "Cel"), 0),
        ("battery_level", Quantity(Decimal(90), "%"), 1),
    ]
    temperature, battery = observations(list(result.readings))
    assert temperature["code"]["coding"][0]["code"] == "8310-5"
    assert battery["valueQuantity"]["code"] == "%"
    # The decoder itself must say the device is body-worn: no type, or another type, yields nothing.
    assert readings_from_theengs({**document, "type": "THB"}, "thermo-1", RECEIVED, models=models) == FrameDecode(())
    without_type = {key: value for key, value in document.items() if key != "type"}
    assert readings_from_theengs(without_type, "thermo-1", RECEIVED, models=models) == FrameDecode(())
    # Not in the table: the default has no body thermometer (TheengsDecoder 2.5 decodes none).
    assert readings_from_theengs(document, "thermo-1", RECEIVED) == FrameDecode(())
    assert not [model for model in MODELS.values() if model.device_class is DeviceClass.BODY_THERMOMETER]


def test_a_coffee_scale_weight_is_not_a_body_weight() -> None:
    document = decoded(name="Skale", manufacturerdata="ef81e8030000")
    assert (document["model_id"], document["type"], document["weight"]) == ("SKALE", "SCALE", Decimal(100))
    assert readings_from_theengs(document, "kitchen", RECEIVED) == FrameDecode(())


def test_heart_rate_straps() -> None:
    polar = decoded(name="Polar H10 12345678", manufacturerdata="6b00072e1048")
    assert (polar["model_id"], polar["type"]) == ("H10", "BODY")
    assert quantities(readings_from_theengs(polar, "strap-1", RECEIVED)) == [("heart_rate", Quantity(Decimal(72), "/min"), 0)]
    xoss = decoded(name="XOSS X2", manufacturerdata="04ff00500048")
    result = readings_from_theengs(xoss, "strap-2", RECEIVED)
    assert quantities(result) == [
        ("heart_rate", Quantity(Decimal(72), "/min"), 0),
        ("battery_level", Quantity(Decimal(80), "%"), 1),
    ]
    heart_rate, _ = observations(list(result.readings))
    assert heart_rate["code"]["coding"][0]["code"] == "8867-4"


def test_activity_tracker_heart_rate_and_no_steps() -> None:
    document: dict[str, object] = {"model_id": "MB/SW", "type": "BODY", "steps": Decimal(7842), "act_bpm": Decimal(95)}
    assert quantities(readings_from_theengs(document, "band-1", RECEIVED)) == [("heart_rate", Quantity(Decimal(95), "/min"), 0)]


def test_printed_precision_is_kept() -> None:
    document = loads_strict(b'{"model_id":"XMTZC02HM/XMTZC05HM","type":"SCALE","unit":"kg","weight":72.40,"impedance":503}')
    result = readings_from_theengs(document, "scale-1", RECEIVED)
    assert repr(result.readings[0].quantity) == repr(Quantity(Decimal("72.40"), "kg"))
    # A document decoded with plain floats keeps the digits the float prints.
    floats: dict[str, object] = {"model_id": "XMTZC02HM/XMTZC05HM", "unit": "kg", "weight": 72.45, "impedance": 503}
    assert quantities(readings_from_theengs(floats, "scale-1", RECEIVED))[0][1] == Quantity(Decimal("72.45"), "kg")


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"id": SCALE_ID, "rssi": Decimal(-60)},
        {"model_id": "XMTZC02HM/XMTZC05HM", "type": "SCALE", "weighing_mode": "person", "unit": "kg"},
        {"model_id": "UNKNOWN", "weight": Decimal(70), "unit": "kg", "bpm": Decimal(60)},
        {"model_id": "XMTZC02HM/XMTZC05HM", "type": "THB", "unit": "kg", "weight": Decimal(70)},  # decoder says: not a scale
        {"model_id": "H10", "type": "BODY", "tempc": Decimal("36.6"), "hum": Decimal(40)},  # a strap's temperature
    ],
)
def test_documents_without_health_readings(document: dict[str, object]) -> None:
    assert readings_from_theengs(document, "dev-1", RECEIVED) == FrameDecode(())


def test_wrong_field_types_are_rejected_one_by_one() -> None:
    document: dict[str, object] = {
        "model_id": "XOSSX2",
        "type": "BODY",
        "bpm": "72",
        "batt": True,
    }
    result = readings_from_theengs(document, "strap-2", RECEIVED)
    assert result.readings == ()
    assert [(index, error.reason, error.detail) for index, error in result.rejections] == [
        (0, ReasonCode.MALFORMED_FRAME, "Theengs bpm must be a number, got string"),
        (1, ReasonCode.MALFORMED_FRAME, "Theengs batt must be a number, got boolean"),
    ]
    assert all(isinstance(error, DecodeError) for _, error in result.rejections)
    good_and_bad = readings_from_theengs({**document, "bpm": Decimal(61)}, "strap-2", RECEIVED)
    assert quantities(good_and_bad) == [("heart_rate", Quantity(Decimal(61), "/min"), 0)]
    assert [index for index, _ in good_and_bad.rejections] == [1]


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ({"model_id": 5, "weight": Decimal(70)}, "Theengs model_id must be a string, got number"),
        (
            {"model_id": "XMTZC02HM/XMTZC05HM", "type": ["SCALE"], "weight": Decimal(70)},
            "Theengs type must be a string, got array",
        ),
        (
            {"model_id": "XMTZC02HM/XMTZC05HM", "weighing_mode": 1, "unit": "kg", "weight": Decimal(70)},
            "Theengs weighing_mode must be a string, got number",
        ),
    ],
)
def test_wrong_document_level_types_reject_the_document(document: dict[str, object], detail: str) -> None:
    result = readings_from_theengs(document, "dev-1", RECEIVED)
    assert result.readings == ()
    [(index, error)] = result.rejections
    assert (index, error.reason, error.detail) == (0, ReasonCode.MALFORMED_FRAME, detail)


def test_a_document_that_is_not_an_object_is_rejected() -> None:
    result = readings_from_theengs([1, 2], "dev-1", RECEIVED)  # type: ignore[arg-type]  # what a bad JSON payload holds
    [(index, error)] = result.rejections
    assert (index, error.reason) == (0, ReasonCode.MALFORMED_FRAME)


@pytest.mark.parametrize(
    ("extra", "reason", "detail"),
    [
        ({"unit": "stone"}, ReasonCode.UNIT_UNKNOWN, "Theengs weight unit 'stone' is not one of ['kg', 'lb', 'lbs']"),
        ({}, ReasonCode.UNIT_UNKNOWN, "Theengs weight needs a unit string, got null"),
        ({"unit": 1}, ReasonCode.MALFORMED_FRAME, "Theengs weight needs a unit string, got number"),
    ],
)
def test_weight_unit_problems(extra: dict[str, object], reason: ReasonCode, detail: str) -> None:
    document: dict[str, object] = {"model_id": "XMTZC01HM/XMTZC04HM", "type": "SCALE", "weight": Decimal("61.75"), **extra}
    [(index, error)] = readings_from_theengs(document, "scale-2", RECEIVED).rejections
    assert (index, error.reason, error.detail) == (0, reason, detail)


def test_non_finite_numbers_are_rejected() -> None:
    document: dict[str, object] = {"model_id": "H10", "type": "BODY", "bpm": Decimal("NaN")}
    [(_, error)] = readings_from_theengs(document, "strap-1", RECEIVED).rejections
    assert error.detail == "Theengs bpm must be a finite number, got NaN"


def test_the_table_uses_catalogue_kinds_and_units() -> None:
    from fhir_mapper.catalogue import CATALOGUE  # noqa: PLC0415 - only this test needs the mapper's table

    for name, spec in FIELDS.items():
        kind = CATALOGUE[spec.kind]
        if spec.unit is not None:
            assert kind.unit_choice(spec.unit) is not None, name


def test_naive_reception_time_is_refused() -> None:
    with pytest.raises(ValueError, match="received_at must be timezone-aware"):
        readings_from_theengs({}, "dev-1", datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


# --- deduplication ---------------------------------------------------------------------------


def weight(value: str, *, device: str = "scale-1", unit: str = "kg", index: int = 0) -> Reading:
    return Reading(device, "body_weight", RECEIVED, Quantity(Decimal(value), unit), index=index)


def battery(value: int, *, device: str = "scale-1") -> Reading:
    return Reading(device, "battery_level", RECEIVED, Quantity(Decimal(value), "%"))


def test_repeats_within_the_window_are_dropped() -> None:
    dedup = AdvertisementDeduplicator()
    first = [weight("72.45"), battery(80)]
    assert dedup.filter("scale-1", first, RECEIVED) == tuple(first)
    assert dedup.filter("scale-1", first, RECEIVED + timedelta(seconds=1)) == ()
    assert dedup.filter("scale-1", first, RECEIVED + timedelta(seconds=59)) == ()


def test_a_changed_value_passes_and_becomes_the_last_emitted() -> None:
    dedup = AdvertisementDeduplicator()
    dedup.filter("scale-1", [weight("72.45"), battery(80)], RECEIVED)
    later = RECEIVED + timedelta(seconds=5)
    assert dedup.filter("scale-1", [weight("72.50"), battery(80)], later) == (weight("72.50"),)
    assert dedup.filter("scale-1", [weight("72.45")], later + timedelta(seconds=1)) == (weight("72.45"),)
    assert dedup.filter("scale-1", [weight("72.45", unit="[lb_av]")], later + timedelta(seconds=2)) == (
        weight("72.45", unit="[lb_av]"),
    )


def test_after_the_window_the_same_value_is_emitted_again() -> None:
    dedup = AdvertisementDeduplicator(timedelta(seconds=60))
    dedup.filter("scale-1", [weight("72.45")], RECEIVED)
    # Dropped copies do not extend the window: a constant value is emitted once per window.
    for seconds in range(10, 60, 10):
        assert dedup.filter("scale-1", [weight("72.45")], RECEIVED + timedelta(seconds=seconds)) == ()
    assert dedup.filter("scale-1", [weight("72.45")], RECEIVED + timedelta(seconds=60)) == (weight("72.45"),)
    assert dedup.filter("scale-1", [weight("72.45")], RECEIVED + timedelta(seconds=119)) == ()


def test_devices_are_deduplicated_separately() -> None:
    dedup = AdvertisementDeduplicator()
    assert dedup.filter("scale-1", [weight("72.45")], RECEIVED) == (weight("72.45"),)
    other = weight("72.45", device="scale-2")
    assert dedup.filter("scale-2", [other], RECEIVED) == (other,)
    dedup.forget("scale-1")
    assert dedup.filter("scale-1", [weight("72.45")], RECEIVED) == (weight("72.45"),)


def test_equal_decimals_are_the_same_value() -> None:
    dedup = AdvertisementDeduplicator()
    dedup.filter("scale-1", [weight("72.4")], RECEIVED)
    assert dedup.filter("scale-1", [weight("72.40")], RECEIVED + timedelta(seconds=1)) == ()


def test_deduplicator_arguments() -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        AdvertisementDeduplicator(timedelta(0))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        AdvertisementDeduplicator().filter("scale-1", [], datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_deduplicating_decoded_documents() -> None:
    """A gateway relays the same scale advertisement three times, then the next weighing."""
    dedup = AdvertisementDeduplicator()
    document = body_composition_scale("0226e607020e10293af7019a38")
    emitted = [
        dedup.filter("scale-1", readings_from_theengs(document, "scale-1", at).readings, at)
        for at in (RECEIVED, RECEIVED + timedelta(seconds=2), RECEIVED + timedelta(seconds=4))
    ]
    assert [len(readings) for readings in emitted] == [2, 0, 0]
    next_day = RECEIVED + timedelta(days=1)
    assert len(dedup.filter("scale-1", readings_from_theengs(document, "scale-1", next_day).readings, next_day)) == 2
