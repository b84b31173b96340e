"""Device resources, conditional-create Bundles and SampledData windows: shapes and validity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from device_adapters.readings import Quantity, Reading
from fhir_mapper.bundles import BundleType, bundles, if_none_exist
from fhir_mapper.devices import DeviceDescription, device_resource, gateway_device_id, gateway_resource
from fhir_mapper.observation import Attribution, MappedObservation, MappingInput, ObservationMapper
from fhir_mapper.sampled import group_into_windows, sampled_observation, sampled_resource, window_start
from fhir_mapper.validation import validate_resource

DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000002")
WHO = Attribution("pat-1", DEVICE, "watch-2")
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _heart_rates(seconds: list[int]) -> list[Reading]:
    return [
        Reading("watch-2", "heart_rate", START + timedelta(seconds=s), quantity=Quantity(Decimal(60 + s % 7), "/min"))
        for s in seconds
    ]


def _mapped(readings: list[Reading]) -> list[MappedObservation]:
    mapped, rejected = ObservationMapper().map_batch([MappingInput(r, WHO, START + timedelta(hours=1), "mqtt") for r in readings])
    assert not rejected
    return mapped


def test_device_resources_validate_and_the_gateway_id_is_stable() -> None:
    full = DeviceDescription(
        DEVICE, "cuff-9", "Living-room cuff", "cuff", "Omron", "HEM-7155T", "SN123", "1.2.0", "a4:c1:38:00:11:22",
    )  # fmt: skip
    resource = device_resource(full)
    validate_resource(resource)
    assert resource["identifier"] == [
        {"system": "https://pulsebridge.dev/fhir/device-id", "value": "cuff-9"},
        {"type": {"text": "Bluetooth device address"}, "value": "A4:C1:38:00:11:22"},
    ]
    validate_resource(device_resource(DeviceDescription(DEVICE, "bare")))
    gateway = gateway_resource("clinic-1", "0.1.0")
    validate_resource(gateway)
    assert gateway["id"] == str(gateway_device_id("clinic-1")) != str(gateway_device_id("clinic-2"))
    assert orjson.loads(orjson.dumps(gateway))["type"]["coding"][0]["code"] == "531981"


@pytest.mark.parametrize("bundle_type", ["transaction", "batch"])
def test_bundles_are_split_conditional_creates(bundle_type: BundleType) -> None:
    mapped = _mapped(_heart_rates(list(range(5))))
    split = [orjson.loads(body) for body in bundles(mapped, bundle_type, max_entries=2)]
    assert [len(bundle["entry"]) for bundle in split] == [2, 2, 1]
    for bundle in split:
        validate_resource(bundle)
        assert bundle["type"] == bundle_type
    first = split[0]["entry"][0]
    key = mapped[0].reading_key
    assert first["fullUrl"] == f"urn:uuid:{key}"
    assert first["request"] == {
        "method": "POST",
        "url": "Observation",
        "ifNoneExist": f"identifier=urn%3Aietf%3Arfc%3A3986|urn%3Auuid%3A{key}",
    }
    assert first["resource"]["id"] == str(key)
    with pytest.raises(ValueError, match="max_entries"):
        next(bundles(mapped, "batch", 0))
    assert if_none_exist("http://x.org/ids", "a b") == "identifier=http%3A%2F%2Fx.org%2Fids|a%20b"


def test_a_minute_of_heart_rate_becomes_one_sampled_data_observation() -> None:
    mapped = _mapped(_heart_rates([0, 1, 2, 4, 59, 60, 61]))
    windows = group_into_windows(mapped, {DEVICE: "watch-2"}, timedelta(minutes=1))
    assert sorted((key.start, len(samples)) for key, samples in windows.items()) == [
        (START, 5),
        (START + timedelta(minutes=1), 2),
    ]
    key = next(key for key in windows if key.start == START)
    resource = orjson.loads(
        sampled_resource(key, windows[key], timedelta(minutes=1), timedelta(seconds=1), START + timedelta(minutes=2))
    )
    validate_resource(resource)
    sampled = resource["valueSampledData"]
    data = sampled["data"].split()
    assert len(data) == 60
    assert data[:6] == ["60", "61", "62", "E", "64", "E"]
    assert data[59] == str(60 + 59 % 7)
    assert sampled["period"] == 1000
    assert resource["effectivePeriod"] == {"start": "2026-11-22T10:00:00+00:00", "end": "2026-11-22T10:01:00+00:00"}
    again = sampled_observation(key, windows[key], timedelta(minutes=1), timedelta(seconds=1), START + timedelta(hours=5))
    assert again["id"] == resource["id"]  # the same window is the same Observation


def test_window_start_is_aligned_in_utc() -> None:
    local = datetime(2026, 11, 22, 11, 0, 30, tzinfo=UTC).astimezone()
    assert window_start(local, timedelta(minutes=1)) == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="whole number"):
        sampled_observation(next(iter(group_into_windows(_mapped(_heart_rates([0])), {DEVICE: "w"}, timedelta(minutes=1)))),
                            [], timedelta(minutes=1), timedelta(seconds=7), START)  # fmt: skip
