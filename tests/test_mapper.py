"""Readings -> FHIR R4 Observations: codes, units, identity, plausibility, validity against the models."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.errors import ConfigError, InputRejectedError, NormalizeError, ReasonCode, ValidationError
from device_adapters.jsonwire import dumps
from device_adapters.readings import AbsentReason, Quantity, Reading, ReadingFlag
from fhir_mapper.catalogue import CATALOGUE, kinds_for_token
from fhir_mapper.identity import reading_key
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper, map_reading
from fhir_mapper.plausibility import PlausibilityPolicy, RangeOverride
from fhir_mapper.units import CONVERSIONS, UCUM_CODES, glucose_in, normalize, to_ucum
from fhir_mapper.validation import FhirValidationError, validate_resource

DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000001")
GATEWAY = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
WHO = Attribution("patient-a", DEVICE, "watch-1")
RECEIVED = datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC)
AT = datetime(2026, 11, 22, 10, 0, tzinfo=timezone(timedelta(hours=1)))
MAPPER = ObservationMapper(MapperContext(gateway_device_id=GATEWAY))


def _reading(
    kind: str, value: str | None = None, unit: str = "", components: dict[str, str] | None = None, **extra: Any
) -> Reading:
    if components is not None:
        return Reading(
            "watch-1", kind, AT, components=tuple((n, Quantity(Decimal(v), unit)) for n, v in components.items()), **extra
        )
    if value is None:
        return Reading("watch-1", kind, AT, **extra)
    return Reading("watch-1", kind, AT, quantity=Quantity(Decimal(value), unit), **extra)


def _map(reading: Reading) -> dict[str, Any]:
    mapped = MAPPER.map_one(MappingInput(reading, WHO, RECEIVED, "mqtt"))
    validate_resource(mapped.resource)
    resource: dict[str, Any] = orjson.loads(mapped.resource)
    return resource


def _rejection(reading: Reading, mapper: ObservationMapper = MAPPER) -> InputRejectedError:
    with pytest.raises(InputRejectedError) as caught:
        mapper.map_one(MappingInput(reading, WHO, RECEIVED, "mqtt"))
    return caught.value


def test_heart_rate_observation_golden() -> None:
    key = reading_key("watch-1", "patient-a", "heart_rate", AT)
    assert _map(_reading("heart_rate", "72", "bpm")) == {
        "resourceType": "Observation",
        "id": str(key),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{key}"}],
        "meta": {
            "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "http://hl7.org/fhir/StructureDefinition/heartrate"]
        },
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                "valueReference": {"reference": f"Device/{GATEWAY}"},
            },
        ],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ],
                "text": "Vital Signs",
            },
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories",
                        "code": "phd",
                        "display": "PHD generated",
                    }
                ]
            },
        ],
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
                {"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"},
            ],
            "text": "Heart rate",
        },
        "subject": {"reference": "Patient/patient-a"},
        "effectiveDateTime": "2026-11-22T10:00:00+01:00",
        "issued": "2026-11-22T09:00:05+00:00",
        "device": {"reference": f"Device/{DEVICE}", "display": "watch-1"},
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def test_blood_pressure_in_kpa_becomes_a_panel_in_mmhg_keeping_the_original() -> None:
    resource = _map(_reading("blood_pressure", unit="kPa", components={"systolic": "16.0", "diastolic": "10.7"}))
    assert resource["code"]["coding"][0]["code"] == "85354-9"
    systolic, diastolic = resource["component"]
    assert systolic["code"]["coding"][0]["code"] == "8480-6"
    assert systolic["valueQuantity"]["code"] == "mm[Hg]"
    assert systolic["valueQuantity"]["value"] == 120  # 16.0 kPa = 120.01 mm[Hg]: three significant digits
    assert systolic["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 16.0, "unit": "kPa"}
    assert diastolic["valueQuantity"]["value"] == 80.3  # 10.7 kPa = 80.26 mm[Hg]


def test_glucose_keeps_the_device_unit_and_picks_loinc_by_dimension() -> None:
    mass = _map(_reading("blood_glucose", "104", "mg/dl"))
    assert (mass["code"]["coding"][0]["code"], mass["valueQuantity"]["code"]) == ("41653-7", "mg/dL")
    moles = _map(_reading("blood_glucose", "5.8", "mmol/L"))
    assert (moles["code"]["coding"][0]["code"], moles["valueQuantity"]["code"]) == ("14743-9", "mmol/L")
    assert str(moles["valueQuantity"]["value"]) == "5.8"
    cgm = _map(_reading("cgm_glucose", "6.1", "mmol/L"))
    assert cgm["code"]["coding"][0]["code"] == "105272-9"
    assert kinds_for_token("http://loinc.org", "14743-9") == {"blood_glucose"}


def test_temperature_site_adds_site_codes_and_keeps_8310_5_first() -> None:
    resource = _map(_reading("body_temperature", "37.2", "Cel", site="oral"))
    codes = [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in resource["code"]["coding"]]
    assert codes == [("loinc.org", "8310-5"), ("loinc.org", "8331-1"), ("urn:iso:std:iso:11073:10101", "188424")]
    assert _rejection(_reading("body_temperature", "37.2", "Cel", site="elbow")).reason is ReasonCode.MALFORMED_FRAME
    assert _rejection(_reading("heart_rate", "60", "/min", site="oral")).reason is ReasonCode.MALFORMED_FRAME


def test_interval_readings_get_an_effective_period_and_their_own_key() -> None:
    resource = _map(_reading("steps", "4200", "steps", duration=timedelta(hours=1)))
    assert resource["effectivePeriod"] == {"start": "2026-11-22T10:00:00+01:00", "end": "2026-11-22T11:00:00+01:00"}
    assert "effectiveDateTime" not in resource
    hour = reading_key("watch-1", "patient-a", "steps", AT, duration=timedelta(hours=1))
    day = reading_key("watch-1", "patient-a", "steps", AT, duration=timedelta(days=1))
    assert resource["id"] == str(hour) != str(day)


@pytest.mark.parametrize("reason", list(AbsentReason))
def test_special_values_become_data_absent_reason(reason: AbsentReason) -> None:
    resource = _map(_reading("spo2", absent=reason))
    assert "valueQuantity" not in resource
    assert resource["dataAbsentReason"]["coding"][0]["code"] == reason.value
    panel = _map(_reading("blood_pressure", absent=reason))
    assert [c["dataAbsentReason"]["coding"][0]["code"] for c in panel["component"]] == [reason.value, reason.value]


def test_device_flags_become_interpretation() -> None:
    resource = _map(_reading("blood_glucose", "590", "mg/dL", flags=frozenset({ReadingFlag.HIGH})))
    assert resource["interpretation"] == [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"}
            ]
        },
    ]


# Exact UCUM definitions: 1 mm[Hg] = 133.3220 Pa, 1 [lb_av] = 453.59237 g, 1 [in_i] = 2.54 cm,
# 1 kcal = 4.184 kJ, Cel = ([degF] - 32) * 5/9. Results keep the device's significant digits.
@pytest.mark.parametrize(
    ("value", "unit", "canonical", "expected"),
    [
        ("133.3220", "kPa", "mm[Hg]", "1000.000"),
        ("212.0", "°F", "Cel", "100.0"),
        ("98.6", "[degF]", "Cel", "37.0"),
        ("100.4", "degF", "Cel", "38.00"),
        ("-40.0", "°F", "Cel", "-40.0"),
        ("100.00000", "[lb_av]", "kg", "45.359237"),
        ("154", "lbs", "kg", "69.9"),
        ("70500", "g", "kg", "70.500"),
        ("1.75", "m", "cm", "175"),
        ("1750", "mm", "cm", "175.0"),
        ("100.0", "[in_i]", "cm", "254.0"),
        ("4184", "kJ", "kcal", "1000"),
        ("0.812", "s", "ms", "812"),
        ("2.0", "kg", "kg", "2.0"),
        ("60", "BPM", "/min", "60"),
        ("70.2", "kg ", "kg", "70.2"),
        ("120", "mm Hg", "mm[Hg]", "120"),
        ("97", "percent", "%", "97"),
    ],
)
def test_unit_table_converts_as_ucum_defines(value: str, unit: str, canonical: str, expected: str) -> None:
    normalized = normalize(Quantity(Decimal(value), unit), (canonical,), "test")
    assert (str(normalized.value), normalized.unit) == (expected, canonical)
    assert (normalized.original is not None) == (to_ucum(unit) != canonical)


def test_every_conversion_targets_a_canonical_unit_and_every_accepted_unit_is_ucum() -> None:
    canonical = {choice.ucum for kind in CATALOGUE.values() for choice in kind.units}
    assert canonical <= UCUM_CODES
    for source, target in CONVERSIONS:
        assert source in UCUM_CODES
        assert target in canonical


def test_glucose_conversion_uses_the_molar_mass() -> None:
    assert glucose_in(Decimal("5.5"), "mmol/L", "mg/dL") == Decimal(99)
    assert glucose_in(Decimal("180.156"), "mg/dL", "mmol/L") == Decimal("10.0000")


@pytest.mark.parametrize("unit", ["furlongs", "mmol", "KG/M", "beats", "cal", "mg"])
def test_unknown_units_are_rejected_by_name(unit: str) -> None:
    error = _rejection(_reading("body_weight", "70", unit))
    assert error.reason is ReasonCode.UNIT_UNKNOWN
    assert repr(unit) in error.detail


def test_a_unit_of_the_wrong_dimension_is_unit_unknown() -> None:
    assert _rejection(_reading("heart_rate", "70", "kg")).reason is ReasonCode.UNIT_UNKNOWN


def test_unsupported_type() -> None:
    assert _rejection(_reading("mood", "7", "%")).reason is ReasonCode.UNSUPPORTED_TYPE


def test_future_timestamps_are_refused_beyond_the_tolerance() -> None:
    soon = Reading("w", "heart_rate", RECEIVED + timedelta(minutes=4), quantity=Quantity(Decimal(70), "/min"))
    assert map_reading(soon, WHO, RECEIVED, source="mqtt").time == soon.time
    late = Reading("w", "heart_rate", RECEIVED + timedelta(minutes=6), quantity=Quantity(Decimal(70), "/min"))
    with pytest.raises(ValidationError) as caught:
        map_reading(late, WHO, RECEIVED, source="mqtt")
    assert caught.value.reason is ReasonCode.FUTURE_TIMESTAMP


@pytest.mark.parametrize(
    ("reading", "accepted"),
    [
        (_reading("blood_pressure", unit="mm[Hg]", components={"systolic": "400", "diastolic": "80"}), False),
        (_reading("blood_pressure", unit="mm[Hg]", components={"systolic": "300", "diastolic": "80"}), True),
        (_reading("blood_pressure", unit="mm[Hg]", components={"systolic": "110", "diastolic": "120"}), False),
        (_reading("heart_rate", "0", "/min"), False),
        (_reading("heart_rate", "400", "/min"), False),
        (_reading("heart_rate", "20", "/min"), True),
        (_reading("heart_rate", "300", "/min"), True),
        (_reading("spo2", "101", "%"), False),
        (_reading("spo2", "100", "%"), True),
        (_reading("body_temperature", "10", "Cel"), False),
        (_reading("body_temperature", "45.0", "Cel"), True),
        (_reading("body_weight", "2000", "kg"), False),
        (_reading("blood_glucose", "1001", "mg/dL"), False),
        (_reading("blood_glucose", "55", "mmol/L"), True),
    ],
)
def test_plausibility_boundaries(reading: Reading, accepted: bool) -> None:  # noqa: FBT001 - pytest parameters are positional
    if accepted:
        _map(reading)
    else:
        error = _rejection(reading)
        assert error.reason is ReasonCode.IMPLAUSIBLE_VALUE
        assert "400" in error.detail or "outside" in error.detail or "not below" in error.detail


def test_plausibility_is_checked_for_a_whole_batch_and_names_the_value() -> None:
    readings = [_reading("heart_rate", str(rate), "/min") for rate in (60, 401, 70, 10)]
    items = [
        MappingInput(Reading(r.device_id, r.kind, AT + timedelta(seconds=i), r.quantity), WHO, RECEIVED, "mqtt")
        for i, r in enumerate(readings)
    ]
    mapped, rejected = MAPPER.map_batch(items)
    assert [m.value for m in mapped] == [Decimal(60), Decimal(70)]
    assert [(position, error.reason) for position, error in rejected] == [
        (1, ReasonCode.IMPLAUSIBLE_VALUE),
        (3, ReasonCode.IMPLAUSIBLE_VALUE),
    ]
    assert "heart_rate 401 /min" in rejected[0][1].detail


def test_plausibility_overrides_and_their_mistakes() -> None:
    strict = ObservationMapper(
        MapperContext(plausibility=PlausibilityPolicy({"heart_rate": RangeOverride(Decimal(40), Decimal(180))}))
    )
    assert _rejection(_reading("heart_rate", "190", "/min"), strict).reason is ReasonCode.IMPLAUSIBLE_VALUE
    for key, override in (
        ("heart_rat", RangeOverride(Decimal(1), Decimal(2))),
        ("blood_pressure.pulse", RangeOverride(Decimal(1), Decimal(2))),
        ("blood_glucose", RangeOverride(Decimal(1), Decimal(2))),
        ("heart_rate", RangeOverride(Decimal(3), Decimal(2))),
        ("heart_rate", RangeOverride(Decimal(1), Decimal(2), "kg")),
    ):
        with pytest.raises(ConfigError) as caught:
            PlausibilityPolicy({key: override})
        assert f"plausibility.{key}" in str(caught.value)


def test_blood_pressure_needs_systolic_and_diastolic() -> None:
    error = _rejection(_reading("blood_pressure", unit="mm[Hg]", components={"systolic": "120"}))
    assert isinstance(error, NormalizeError)
    assert "diastolic" in error.detail


def test_reading_key_is_the_same_instant_whatever_the_offset() -> None:
    assert reading_key("d", "p", "heart_rate", AT) == reading_key("d", "p", "heart_rate", AT.astimezone(UTC))
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "p", "pulse_rate", AT)
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "q", "heart_rate", AT)
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "p", "heart_rate", AT + timedelta(microseconds=1))
    assert reading_key("d", "p", "body_temperature", AT) != reading_key("d", "p", "body_temperature", AT, site="oral")


def _sample_value(kind_name: str, unit: str) -> str:
    bounds = MAPPER_POLICY.bounds(kind_name, None, unit)
    return str((bounds[0] + bounds[1]) / 2) if bounds else "50"


MAPPER_POLICY = PlausibilityPolicy()
_SHAPES = [
    (kind.name, unit.ucum, site, absent, flags)
    for kind in CATALOGUE.values()
    for unit in kind.units
    for site in [None, *kind.sites]
    for absent in [None, AbsentReason.NOT_A_NUMBER]
    for flags in [frozenset(), frozenset({ReadingFlag.HIGH, ReadingFlag.CRITICAL_HIGH})]
]


@pytest.mark.parametrize(("kind_name", "unit", "site", "absent", "flags"), _SHAPES)
def test_every_shape_the_mapper_emits_validates(
    kind_name: str, unit: str, site: str | None, absent: AbsentReason | None, flags: frozenset[ReadingFlag]
) -> None:
    kind = CATALOGUE[kind_name]
    extra: dict[str, Any] = {"site": site, "flags": flags}
    if absent is not None:
        reading = _reading(kind_name, absent=absent, **extra)
    elif kind.compound:
        reading = _reading(kind_name, unit=unit, components={"systolic": "120", "diastolic": "80", "mean": "93"}, **extra)
    else:
        reading = _reading(kind_name, _sample_value(kind_name, unit), unit, **extra)
    for duration in (None, timedelta(minutes=1)):
        resource = _map(Reading(reading.device_id, reading.kind, reading.time, reading.quantity, reading.components,
                                absent=reading.absent, site=reading.site, flags=reading.flags, duration=duration))  # fmt: skip
        assert resource["code"]["coding"]
        if kind.vital_sign:
            assert resource["meta"]["profile"][0] == "http://hl7.org/fhir/StructureDefinition/vitalsigns"


def test_validation_rejects_a_broken_observation() -> None:
    with pytest.raises(FhirValidationError):
        validate_resource({"resourceType": "Observation", "code": {"text": "x"}, "valueQuantity": "72"})


def test_code_tokens_find_kinds_by_loinc_and_mdc() -> None:
    assert kinds_for_token(None, "8867-4") == {"heart_rate", "pulse_rate"}
    assert kinds_for_token("urn:iso:std:iso:11073:10101", "147842") == {"heart_rate"}
    assert kinds_for_token("http://loinc.org", "147842") == frozenset()


def test_catalogue_covers_the_required_kinds() -> None:
    required = {
        "heart_rate", "pulse_rate", "rr_interval", "respiratory_rate", "spo2", "blood_pressure", "body_temperature", "body_weight",
        "body_height", "bmi", "body_fat", "blood_glucose", "blood_glucose_plasma", "cgm_glucose", "steps", "energy_expended",
        "heart_rate_variability", "battery_level",
    }  # fmt: skip
    assert required <= set(CATALOGUE)
    for first, second in itertools.combinations(CATALOGUE.values(), 2):
        assert first.codings != second.codings or first.units != second.units


_values = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**11), max_value=10**11, places=3)
_units = st.sampled_from(
    [
        "/min",
        "bpm",
        "%",
        "Cel",
        "°F",
        "kg",
        "lbs",
        "g",
        "cm",
        "m",
        "in",
        "mmHg",
        "kPa",
        "kg/m2",
        "mg/dL",
        "mmol/l",
        "s",
        "kJ",
        "parsec",
        " kg ",
    ]
)
_kinds = st.sampled_from([*sorted(CATALOGUE), "mood"])
# hypothesis takes naive bounds and attaches the zone itself
_times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001 - hypothesis attaches the zone


@settings(max_examples=3000, deadline=None)
@given(
    _kinds,
    _values,
    _units,
    _times,
    st.lists(st.sampled_from(["systolic", "diastolic", "mean", "pulse"]), max_size=4, unique=True),
)
def test_any_parsed_reading_maps_or_is_rejected_with_a_reason(
    kind: str, value: Decimal, unit: str, at: datetime, component_names: list[str]
) -> None:
    if component_names:
        reading = Reading("w", kind, at, components=tuple((name, Quantity(value, unit)) for name in component_names))
    else:
        reading = Reading("w", kind, at, quantity=Quantity(value, unit))
    mapped, rejected = MAPPER.map_batch([MappingInput(reading, WHO, RECEIVED, "mqtt")])
    assert len(mapped) + len(rejected) == 1
    for _, error in rejected:
        assert error.reason in ReasonCode
    for observation in mapped:
        assert observation.kind == kind
        validate_resource(observation.resource)


_ONE_VALUE_SHAPES = [
    (kind.name, unit, site, duration)
    for kind in CATALOGUE.values()
    if not kind.compound
    for unit in [
        *(choice.ucum for choice in kind.units),
        *(source for source, target in CONVERSIONS if target == kind.canonical_unit.ucum),
    ]
    for site in [None, *kind.sites]
    for duration in [None, timedelta(seconds=90)]
]


@pytest.mark.parametrize(("kind_name", "unit", "site", "duration"), _ONE_VALUE_SHAPES)
def test_hot_path_writes_the_same_bytes_as_the_general_path(
    kind_name: str, unit: str, site: str | None, duration: timedelta | None
) -> None:
    kind = CATALOGUE[kind_name]
    unbounded = {
        f"{kind_name}": RangeOverride(
            Decimal(-(10**11)), Decimal(10**11), kind.canonical_unit.ucum if len(kind.units) > 1 else None
        )
    }
    mapper = ObservationMapper(MapperContext(gateway_device_id=GATEWAY, plausibility=PlausibilityPolicy(unbounded)))
    reading = Reading("watch-1", kind_name, AT, quantity=Quantity(Decimal("12.50"), unit), site=site, duration=duration)
    item = MappingInput(reading, WHO, RECEIVED, "mqtt")
    mapped = mapper.map_one(item)
    general = dumps(mapper.resource(mapper.normalized(item), mapped.key, "2026-11-22T09:00:05+00:00"))
    assert mapped.resource == general
    validate_resource(mapped.resource)


def test_device_status_bits_become_boolean_components() -> None:
    reading = _reading("pulse_rate", "72", "/min", status_codes=(("8410608.2", "irregular-pulse"),))
    resource = _map(reading)
    assert resource["component"] == [
        {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ASN1ToHL7", "code": "8410608.2", "display": "irregular-pulse"}]},
         "valueBoolean": True},
    ]  # fmt: skip


def test_a_zone_less_device_time_keys_the_reading_whatever_its_anchoring() -> None:
    early = Reading("watch-1", "heart_rate", AT, quantity=Quantity(Decimal(70), "/min"), device_time="2024-01-02T03:04:05")
    later = Reading(
        "watch-1",
        "heart_rate",
        AT + timedelta(seconds=3),
        quantity=Quantity(Decimal(70), "/min"),
        device_time="2024-01-02T03:04:05",
    )
    assert (
        MAPPER.map_one(MappingInput(early, WHO, RECEIVED, "ble")).key
        == MAPPER.map_one(MappingInput(later, WHO, RECEIVED, "ble")).key
    )
    assert MAPPER.map_one(MappingInput(early, WHO, RECEIVED, "ble")).key != _map(_reading("heart_rate", "70", "/min"))["id"]
