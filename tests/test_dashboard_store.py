"""The dashboard's storage on both stores: account passwords, a patient's device activity and adherence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from device_adapters.errors import NotFoundError
from device_adapters.readings import Quantity, Reading
from fhir_mapper.observation import Attribution, map_reading
from gateway.storage import ObservationStore
from gateway.storage.dashboard_port import ActivityQuery, DeviceActivity, PatientActivity

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WATCH, CUFF = uuid.UUID(int=1), uuid.UUID(int=2)


async def test_passwords_are_set_replaced_and_need_an_account(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_account("dr-who", "practitioner", None, None)
    assert await store.account_password("dr-who") is None
    await store.set_account_password("dr-who", "scrypt$first")
    assert await store.account_password("dr-who") == "scrypt$first"
    await store.set_account_password("dr-who", "scrypt$second")
    assert await store.account_password("dr-who") == "scrypt$second"
    with pytest.raises(NotFoundError, match="no account 'nobody'"):
        await store.set_account_password("nobody", "scrypt$x")
    assert await store.account_password("nobody") is None


async def _write(
    store: ObservationStore, patient: str, *, device: uuid.UUID, kind: str, value: str, unit: str, at: datetime
) -> None:
    reading = Reading(f"dev-{device.int}", kind, at, quantity=Quantity(Decimal(value), unit))
    await store.write_batch([map_reading(reading, Attribution(patient, device, f"dev-{device.int}"), at, source="mqtt")], [])


async def test_activity_is_the_latest_reading_per_device_the_latest_battery_and_whole_days(store: ObservationStore) -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    days = [datetime(2026, 11, d, h, tzinfo=UTC) for d, h in ((2, 8), (2, 23), (5, 0), (29, 23))]
    for at in days:  # four readings on three UTC days
        await _write(store, "ada", device=WATCH, kind="heart_rate", value="70", unit="/min", at=at)
    await _write(store, "ada", device=CUFF, kind="pulse_rate", value="66", unit="/min", at=datetime(2026, 11, 10, 7, tzinfo=UTC))
    await _write(store, "ada", device=WATCH, kind="battery_level", value="80", unit="%", at=datetime(2026, 11, 20, tzinfo=UTC))
    await _write(
        store, "ada", device=WATCH, kind="battery_level", value="41", unit="%", at=datetime(2026, 11, 30, 6, tzinfo=UTC)
    )  # battery: not a day with data
    await _write(
        store, "ada", device=WATCH, kind="heart_rate", value="70", unit="/min", at=since - timedelta(seconds=1)
    )  # before the window
    await _write(
        store, "bob", device=CUFF, kind="heart_rate", value="90", unit="/min", at=datetime(2026, 11, 12, tzinfo=UTC)
    )  # another patient

    assert await store.patient_activity(ActivityQuery("ada", since)) == PatientActivity(
        "ada",
        (
            DeviceActivity(WATCH, datetime(2026, 11, 30, 6, tzinfo=UTC), 41.0, datetime(2026, 11, 30, 6, tzinfo=UTC)),
            DeviceActivity(CUFF, datetime(2026, 11, 10, 7, tzinfo=UTC), None, None),
        ),
        days_with_data=4,
    )
    assert await store.patient_activity(ActivityQuery("nobody", since)) == PatientActivity("nobody", (), 0)


def test_an_activity_query_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="since"):
        ActivityQuery("ada", datetime(2026, 11, 1))  # noqa: DTZ001 - the mistake under test
