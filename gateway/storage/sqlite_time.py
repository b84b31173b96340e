"""How the embedded store keeps instants: UTC microseconds since 1970, as integers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(instant: datetime) -> int:
    return (instant - EPOCH) // MICROSECOND


def instant(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def required_instant(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
