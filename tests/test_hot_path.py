"""The mapper's hot path writes exactly what the general path writes, for any time, offset and value."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.jsonwire import dumps
from device_adapters.readings import Quantity, Reading
from fhir_mapper.hot_path import ConvertedValues, decimal_json, fhir_datetime, iso_texts
from fhir_mapper.identity import utc_text as fast_utc_text
from fhir_mapper.identity import uuid5_seed, uuid5_text, uuid5_texts
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper
from fhir_mapper.plausibility import PlausibilityPolicy, RangeOverride
from fhir_mapper.units import CONVERSIONS, keep_significant_digits
from fhir_mapper.validation import validate_resource

NAMESPACE = uuid.UUID("5b0f4f3e-8a53-4d5c-9a0e-2f1c7c6d9e10")
GATEWAY = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
RECEIVED = datetime(2100, 1, 2, tzinfo=UTC)
# Wide ranges: these tests are about text, not plausibility.
UNBOUNDED = PlausibilityPolicy({
    "heart_rate": RangeOverride(Decimal(-(10**12)), Decimal(10**12)),
    "body_weight": RangeOverride(Decimal(-(10**12)), Decimal(10**12)),
    "steps": RangeOverride(Decimal(-(10**12)), Decimal(10**12)),
})  # fmt: skip
MAPPER = ObservationMapper(MapperContext(gateway_device_id=GATEWAY, plausibility=UNBOUNDED))

# Offsets to the minute, to the second (historical zone rules), and zones with DST.
_fixed_offsets = st.integers(min_value=-(14 * 3600), max_value=14 * 3600).map(lambda s: timezone(timedelta(seconds=s)))
_minute_offsets = st.integers(min_value=-(14 * 60), max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_zones = st.sampled_from([UTC, ZoneInfo("Europe/Amsterdam"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu")])
_times = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis attaches the zone
    max_value=datetime(2099, 1, 1),  # noqa: DTZ001 - hypothesis attaches the zone
    timezones=st.one_of(_zones, _fixed_offsets, _minute_offsets),
)
_values = st.decimals(min_value=Decimal(-(10**9)), max_value=Decimal(10**9), allow_nan=False, allow_infinity=False, places=None)
_shapes = st.sampled_from([
    ("heart_rate", "/min", None),
    ("heart_rate", "bpm", None),
    ("body_weight", "kg", None),
    ("body_weight", "[lb_av]", None),
    ("body_weight", "g", None),
    ("steps", "{steps}", timedelta(minutes=15)),
])  # fmt: skip
_patients = st.sampled_from(["p-1", "p-2", 'p"3\\ünïcode'])


@st.composite
def _items(draw: st.DrawFn) -> MappingInput:
    kind, unit, duration = draw(_shapes)
    patient = draw(_patients)
    reading = Reading(f"dev-{patient}", kind, draw(_times), quantity=Quantity(draw(_values), unit), duration=duration)
    device_time = draw(st.one_of(st.none(), st.just("2024-01-02T03:04:05")))
    if device_time is not None:
        reading = Reading(reading.device_id, kind, reading.time, quantity=reading.quantity, duration=duration,
                          device_time=device_time)  # fmt: skip
    attribution = Attribution(patient, uuid.uuid5(NAMESPACE, patient), f"dev-{patient}")
    return MappingInput(reading, attribution, RECEIVED, "mqtt")


@settings(max_examples=300, deadline=None)
@given(st.lists(_items(), min_size=1, max_size=40))
def test_a_batch_on_the_hot_path_writes_what_the_general_path_writes(items: list[MappingInput]) -> None:
    mapped, rejected = MAPPER.map_batch(items)
    assert rejected == []
    assert len(mapped) == len(items)
    for item, observation in zip(items, mapped, strict=True):
        general = dumps(MAPPER.resource(MAPPER.normalized(item), observation.key, "2100-01-02T00:00:00+00:00"))
        assert observation.resource == general
        assert observation.time == item.reading.time
        assert observation.patient_id == item.attribution.patient_id


@settings(max_examples=40, deadline=None)
@given(st.lists(_items(), min_size=1, max_size=10))
def test_hot_path_observations_validate(items: list[MappingInput]) -> None:
    for observation in MAPPER.map_batch(items)[0]:
        validate_resource(observation.resource)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(), max_size=30))
def test_batched_uuid5_texts_are_the_standard_uuid5(texts: list[str]) -> None:
    digests = []
    for text in texts:
        digest = uuid5_seed()
        digest.update(text.encode())
        digests.append(digest.digest())
    expected = [str(uuid.uuid5(NAMESPACE, text)) for text in texts]
    assert uuid5_texts(digests) == expected
    assert [uuid5_text(text) for text in texts] == expected


@settings(max_examples=1000, deadline=None)
@given(_times)
def test_utc_text_is_isoformat_in_utc(time: datetime) -> None:
    assert fast_utc_text(time) == time.astimezone(UTC).isoformat()


@settings(max_examples=1000, deadline=None)
@given(st.lists(_times, max_size=20))
def test_iso_texts_are_isoformat_for_offsets_to_the_minute(times: list[datetime]) -> None:
    texts = iso_texts(times)
    assert len(texts) == len(times)
    for time, text in zip(times, texts, strict=True):
        offset = time.utcoffset()
        assert offset is not None
        if offset % timedelta(minutes=1):  # historical zone rules: FHIR cannot say it, the instant is kept in UTC
            assert fhir_datetime(time) == time.astimezone(UTC).isoformat()
        else:
            assert text == time.isoformat() == fhir_datetime(time)


def test_converted_values_keep_the_device_precision_and_the_cache_is_bounded() -> None:
    conversion = CONVERSIONS["[lb_av]", "kg"]
    cache = ConvertedValues(conversion)
    for text in ("154.2", "154.20", "154.2", "1E+2", "100"):
        value = Decimal(text)
        expected = keep_significant_digits(conversion.apply(value), value)
        converted, number = cache.convert(value)
        assert (converted, converted.as_tuple()) == (expected, expected.as_tuple())
        assert number == decimal_json(expected)
    assert cache.convert(Decimal("154.2"))[1] == "69.94"
    assert cache.convert(Decimal("154.20"))[1] == "69.944"
    for step in range(ConvertedValues.LIMIT + 10):
        cache.convert(Decimal(step))
    assert cache.convert(Decimal("154.20"))[1] == "69.944"


def test_decimal_json_writes_plain_numbers() -> None:
    assert [decimal_json(Decimal(text)) for text in ("2.0", "1E+2", "1E-7", "-0", "72")] == [
        "2.0",
        "100",
        "0.0000001",
        "-0",
        "72",
    ]


def test_a_converted_value_with_34_significant_digits_maps() -> None:
    value = Decimal("0.003707327754236164841951009847462543")
    reading = Reading("dev-p-1", "body_weight", RECEIVED, quantity=Quantity(value, "[lb_av]"))
    item = MappingInput(reading, Attribution("p-1", uuid.uuid5(NAMESPACE, "p-1"), "dev-p-1"), RECEIVED, "mqtt")
    observation = MAPPER.map_one(item)
    assert observation.value == keep_significant_digits(CONVERSIONS["[lb_av]", "kg"].apply(value), value)
    assert len(observation.value.as_tuple().digits) == 34
