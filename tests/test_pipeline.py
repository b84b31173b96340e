"""The ingest pipeline on both stores: attribution by device time, partial frames, acks after commit."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import orjson

from device_adapters.readings import Delivery, FrameDecode, Quantity, RawFrame, Reading
from edge_config import DatabaseSettings, IngestSettings
from fhir_mapper.validation import validate_resource
from gateway.ingest_outcomes import FrameReport, ItemStatus, ReportingDelivery
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationQuery, ObservationStore, open_store
from tests.conftest import truncate

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LENT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _delivery(device: str, payload: object | bytes, acks: list[str], label: str) -> Delivery:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    frame = RawFrame("mqtt", f"pulsebridge/v1/devices/{device}/readings", body, NOW)
    return Delivery(frame, lambda: acks.append(label))


def _hr(at: datetime, value: int = 70) -> dict[str, object]:
    return {"type": "heart_rate", "value": value, "unit": "/min", "time": at.isoformat()}


async def test_batch_attributes_by_device_time_and_acks_everything_once(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_patient("bob", None, None)
    await store.add_device("cuff-1", "cuff", None)
    await store.assign_device("cuff-1", "ada", None)
    await store.assign_device("cuff-1", "bob", LENT)
    await store.add_device("spare", None, None)  # registered, never assigned
    pipeline = IngestPipeline(store, IngestSettings())
    acks: list[str] = []
    batch = [
        _delivery(
            "cuff-1", [_hr(LENT - timedelta(hours=1)), _hr(LENT + timedelta(hours=1)), {"type": "heart_rate"}], acks, "mixed"
        ),
        _delivery("spare", _hr(NOW), acks, "unpaired"),
        _delivery("ghost", _hr(NOW), acks, "unknown"),
        _delivery("cuff-1", b"\xff", acks, "garbage"),
        _delivery("cuff-1", _hr(NOW + timedelta(hours=1)), acks, "future"),
    ]
    result = await pipeline.store_until_committed(batch)
    assert (result.inserted, result.duplicates, result.quarantined) == (2, 0, 5)
    assert acks == ["mixed", "unpaired", "unknown", "garbage", "future"]

    ada = await store.search_observations(ObservationQuery(patient_id="ada"))
    bob = await store.search_observations(ObservationQuery(patient_id="bob"))
    assert [row.time for row in ada] == [LENT - timedelta(hours=1)]
    assert [row.time for row in bob] == [LENT + timedelta(hours=1)]
    for row in ada + bob:
        validate_resource(row.resource.encode())
    reasons = sorted((row.reason, row.stage, row.item_index) for row in await store.list_quarantine(10))
    assert reasons == [
        ("future_timestamp", "validate", 0),
        ("malformed_json", "decode", None),
        ("timestamp_missing", "decode", 2),
        ("unknown_device", "identity", None),
        ("unpaired_device", "identity", 0),
    ]

    again = await pipeline.store_until_committed(batch)  # a broker redelivering the whole batch
    assert (again.inserted, again.duplicates) == (0, 2)
    assert len(await store.search_observations(ObservationQuery())) == 2
    assert {row.seen_count for row in await store.list_quarantine(10)} == {2}
    assert pipeline.stats.stored == 2
    assert pipeline.stats.duplicates == 2


async def test_topic_outside_the_native_scheme_is_quarantined(store: ObservationStore) -> None:
    pipeline = IngestPipeline(store, IngestSettings())
    acks: list[str] = []
    frame = RawFrame("mqtt", "pulsebridge/v1/devices/a+b/readings", b"{}", NOW)
    await pipeline.store_until_committed([Delivery(frame, lambda: acks.append("bad-topic"))])
    (row,) = await store.list_quarantine(10)
    assert (row.reason, row.device_id, row.channel) == ("malformed_frame", None, frame.channel)
    assert acks == ["bad-topic"]


class _SlotDecoder:
    """A shared cuff's frame: one heart rate per user number in the payload (``-`` for none)."""

    def device_id(self, frame: RawFrame) -> str:
        return frame.channel

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        users = [None if part == "-" else int(part) for part in frame.payload.decode().split(",")]
        return FrameDecode(tuple(
            Reading(device_id, "heart_rate", LENT + timedelta(minutes=i), quantity=Quantity(Decimal(60 + i), "/min"), index=i, user=user)
            for i, user in enumerate(users)
        ))  # fmt: skip


async def test_user_slots_attribute_each_reading_to_its_slot_holder(store: ObservationStore) -> None:
    await store.add_patient("mum", None, None)
    await store.add_patient("dad", None, None)
    await store.add_device("cuff-1", "cuff", None)
    await store.assign_device("cuff-1", "mum", None)
    await store.assign_user_slot("cuff-1", 1, "mum", None)
    await store.assign_user_slot("cuff-1", 2, "dad", None)
    pipeline = IngestPipeline(store, IngestSettings(), decoders={"ble": _SlotDecoder()})
    acks: list[str] = []
    frame = RawFrame("ble", "cuff-1", b"1,2,3,-", NOW)
    result = await pipeline.store_until_committed([Delivery(frame, lambda: acks.append("cuff"))])
    assert (result.inserted, result.quarantined) == (3, 1)
    assert acks == ["cuff"]
    mum = await store.search_observations(ObservationQuery(patient_id="mum", newest_first=False))
    dad = await store.search_observations(ObservationQuery(patient_id="dad"))
    assert [row.time for row in mum] == [LENT, LENT + timedelta(minutes=3)]  # user 1, and the reading without a user
    assert [row.time for row in dad] == [LENT + timedelta(minutes=1)]
    (unassigned,) = await store.list_quarantine(10)
    assert (unassigned.reason, unassigned.item_index) == ("unpaired_device", 2)
    assert "'cuff-1' user 3 was not assigned" in unassigned.detail


class _Given:
    """A decoder that returns prepared decodes by channel: the pipeline's side of the hooks, alone."""

    def __init__(self, decodes: dict[str, FrameDecode]) -> None:
        self.decodes = decodes

    def device_id(self, frame: RawFrame) -> str:  # noqa: ARG002 - one device here
        return "hub-1"

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:  # noqa: ARG002 - one device here
        return self.decodes[frame.channel]


async def test_reports_per_item_claimed_patients_and_all_or_nothing_frames(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_device("hub-1", "hub", None)
    await store.assign_device("hub-1", "ada", None)

    def hr(index: int, value: int = 70) -> Reading:
        return Reading("hub-1", "heart_rate", LENT + timedelta(minutes=index), Quantity(Decimal(value), "/min"), index=index)

    decoder = _Given({
        "plain": FrameDecode((hr(0), hr(1)), claimed_patients=((0, "ada"), (1, "bob"))),
        "atomic": FrameDecode((hr(2), hr(3, 900)), atomic=True),
        "atomic-ok": FrameDecode((hr(4), hr(0)), atomic=True),
    })  # fmt: skip
    pipeline = IngestPipeline(store, IngestSettings(), decoders={"test": decoder})
    reports: dict[str, FrameReport] = {}
    acks: list[str] = []

    def delivery(channel: str) -> ReportingDelivery:
        return ReportingDelivery(
            RawFrame("test", channel, channel.encode(), NOW), lambda: acks.append(channel),
            lambda report: reports.__setitem__(channel, report),
        )  # fmt: skip

    result = await pipeline.store_until_committed([delivery("plain"), delivery("atomic"), delivery("atomic-ok")])
    assert acks == ["plain", "atomic", "atomic-ok"]
    assert (result.inserted, result.duplicates) == (2, 1)  # hr(0) twice: the second is the same reading
    statuses = {channel: [(item.index, item.status) for item in report.items] for channel, report in reports.items()}
    assert statuses == {
        "plain": [(0, ItemStatus.CREATED), (1, ItemStatus.REJECTED)],
        "atomic": [(2, ItemStatus.NOT_STORED), (3, ItemStatus.REJECTED)],
        "atomic-ok": [(0, ItemStatus.EXISTS), (4, ItemStatus.CREATED)],
    }
    assert reports["atomic"].atomic
    assert not reports["plain"].atomic
    assert reports["plain"].items[1].rejection is not None
    assert reports["plain"].items[1].rejection.reason == "identity_mismatch"
    assert len(await store.search_observations(ObservationQuery(patient_id="ada"))) == 2


async def test_a_later_batch_that_commits_first_waits_for_the_earlier_one_to_be_acknowledged(timescale_url: str) -> None:
    """Two transactions in flight: the second commits while the first is held, yet acks stay in arrival order."""
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    blocker = await asyncpg.connect(timescale_url)
    try:
        await store.add_patient("ada", None, None)
        await store.add_device("cuff-1", "cuff", None)
        await store.assign_device("cuff-1", "ada", None)
        pipeline = IngestPipeline(store, IngestSettings(batch_size=1, batch_wait_ms=0, writes_in_flight=2))
        acks: list[str] = []
        # The first batch only quarantines; holding the quarantine table holds its transaction.
        held = blocker.transaction()
        await held.start()
        await blocker.execute("LOCK TABLE quarantine IN EXCLUSIVE MODE")
        running = asyncio.create_task(pipeline.run())
        await pipeline.submit(_delivery("ghost", _hr(NOW), acks, "first"))
        await pipeline.submit(_delivery("cuff-1", _hr(NOW), acks, "second"))
        async with asyncio.timeout(10):
            while not await store.search_observations(ObservationQuery(patient_id="ada")):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert acks == []  # the second committed, but the first has not
        assert pipeline.stats.stored == 1
        await held.rollback()
        async with asyncio.timeout(10):
            while len(acks) < 2:
                await asyncio.sleep(0.02)
        assert acks == ["first", "second"]
        assert pipeline.stats.quarantined == 1
        assert pipeline.metrics.registry.get_sample_value("pulsebridge_unacknowledged_in_flight") == 0
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        await blocker.close()
        await store.close()


async def test_a_batch_larger_than_one_mapping_slice_keeps_each_rejection_on_its_own_reading(store: ObservationStore) -> None:
    """Decoding and mapping give the event loop turns between slices; positions must survive the slicing."""
    await store.add_patient("ada", None, None)
    await store.add_device("watch-1", "watch", None)
    await store.assign_device("watch-1", "ada", None)
    pipeline = IngestPipeline(store, IngestSettings(max_readings_per_message=5_000, max_payload_bytes=1_000_000))
    acks: list[str] = []
    pack = [_hr(LENT + timedelta(seconds=second), 900 if second in {7, 1_100, 2_999} else 70) for second in range(3_000)]
    result = await pipeline.store_until_committed([
        _delivery("watch-1", pack[:1_500], acks, "first"), _delivery("watch-1", pack[1_500:], acks, "second"),
    ])  # fmt: skip
    assert (result.inserted, result.quarantined) == (2_997, 3)
    assert acks == ["first", "second"]
    rejected = sorted((row.item_index, row.reason) for row in await store.list_quarantine(10))
    assert rejected == [(7, "implausible_value"), (1_100, "implausible_value"), (1_499, "implausible_value")]
