"""Mapping throughput: readings in, serialized FHIR JSON out, on one core.

Prints JSON lines: the PulseBridge mapper (plain JSON with pre-serialized constant parts, orjson)
and, measured in the same run, the same Observations built and serialized through the
``fhir.resources`` R4B models — the baseline the hot path avoids.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from fhir.resources.R4B.observation import Observation

from device_adapters.readings import Quantity, Reading
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper

KINDS = (
    ("heart_rate", "/min", ("60", "72", "85")),
    ("spo2", "%", ("95", "97", "99")),
    ("body_temperature", "Cel", ("36.6", "37.1")),
    ("body_weight", "[lb_av]", ("154.2", "180.0")),
)


def _inputs(count: int) -> list[MappingInput]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    received = start + timedelta(days=30)
    attribution = Attribution("bench-patient", uuid.UUID("00000000-0000-4000-8000-00000000be00"), "bench-device")
    items = []
    for index in range(count):
        kind, unit, values = KINDS[index % len(KINDS)]
        reading = Reading(
            "bench-device", kind, start + timedelta(seconds=index), quantity=Quantity(Decimal(values[index % len(values)]), unit)
        )
        items.append(MappingInput(reading, attribution, received, "mqtt"))
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    mapper = ObservationMapper(MapperContext(gateway_device_id=uuid.UUID("00000000-0000-4000-8000-0000000000aa")))
    items = _inputs(args.readings)
    mapper.map_batch(items[:1000])  # warm the per-kind caches

    def ours() -> None:
        mapped, rejected = mapper.map_batch(items)
        if len(mapped) != len(items):
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
        print(orjson.dumps({"bench": "mapping", "path": name, "observations_per_s": round(rate), "machine": machine}).decode())
    print(orjson.dumps({"bench": "mapping", "speedup_vs_models": round(ours_rate / model_rate, 1), "target_per_s": 200_000,
                        "target_met": ours_rate >= 200_000}).decode())  # fmt: skip


if __name__ == "__main__":
    main()
