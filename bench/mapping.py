"""Mapping throughput: readings in, serialized FHIR JSON out, on one core.

Prints JSON lines: the PulseBridge mapper (plain JSON with pre-serialized constant parts, orjson)
and, measured in the same run, the same Observations built and serialized through the
``fhir.resources`` R4B models — the baseline the hot path avoids.

The readings look like a programme's traffic: 500 devices of 500 patients, a quarter of them
reporting local times with an offset, values spread over realistic ranges (weights in pounds,
converted to kg), mapped in batches of the ingest pipeline's batch size, garbage collector on.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
from fhir.resources.R4B.observation import Observation

from device_adapters.readings import Quantity, Reading
from edge_config import IngestSettings
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper

# kind, device unit, lowest value, number of distinct values, step
KINDS = (
    ("heart_rate", "/min", Decimal(40), 141, Decimal(1)),
    ("spo2", "%", Decimal(85), 16, Decimal(1)),
    ("body_temperature", "Cel", Decimal("35.0"), 50, Decimal("0.1")),
    ("body_weight", "[lb_av]", Decimal("90.0"), 2101, Decimal("0.1")),
)
DEVICES = 500
LOCAL_OFFSET = timezone(timedelta(hours=1))


def _inputs(count: int) -> list[MappingInput]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    received = start + timedelta(days=30)
    attributions = [
        Attribution(f"bench-patient-{n}", uuid.uuid5(uuid.NAMESPACE_URL, f"bench-device-{n}"), f"bench-device-{n}")
        for n in range(DEVICES)
    ]
    items = []
    for index in range(count):
        kind, unit, low, spread, step = KINDS[index % len(KINDS)]
        device = index % DEVICES
        time = start + timedelta(seconds=index)
        if device % 4 == 0:
            time = time.astimezone(LOCAL_OFFSET)
        value = low + step * ((index * 7919) % spread)
        reading = Reading(f"bench-device-{device}", kind, time, quantity=Quantity(value, unit))
        items.append(MappingInput(reading, attributions[device], received, "mqtt"))
    return items


def _best_rate(run: Callable[[], None], count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--baseline-readings", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=IngestSettings().batch_size, help="readings per map_batch call")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    mapper = ObservationMapper(MapperContext(gateway_device_id=uuid.UUID("00000000-0000-4000-8000-0000000000aa")))
    items = _inputs(args.readings)
    mapper.map_batch(items[:1000])  # warm the per-kind caches

    batches = [items[start : start + args.batch] for start in range(0, len(items), args.batch)]

    def ours() -> None:
        for batch in batches:
            mapped, rejected = mapper.map_batch(batch)
            if len(mapped) != len(batch):
                raise SystemExit(f"bench inputs were rejected: {rejected[:1]}")

    baseline_items = items[: args.baseline_readings]
    documents = [orjson.loads(m.resource) for m in mapper.map_batch(baseline_items)[0]]

    def through_models() -> None:
        for document in documents:
            Observation.model_validate(document).model_dump_json(exclude_none=True)

    ours_rate = _best_rate(ours, len(items), args.repeats)
    model_rate = _best_rate(through_models, len(documents), args.repeats)
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    for name, rate in (("pulsebridge mapper (orjson)", ours_rate), ("fhir.resources R4B models (baseline)", model_rate)):
        print(orjson.dumps({"bench": "mapping", "path": name, "observations_per_s": round(rate), "batch": args.batch,
                            "machine": machine}).decode())  # fmt: skip
    print(orjson.dumps({"bench": "mapping", "speedup_vs_models": round(ours_rate / model_rate, 1), "target_per_s": 200_000,
                        "target_met": ours_rate >= 200_000}).decode())  # fmt: skip


if __name__ == "__main__":
    main()
