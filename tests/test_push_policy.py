"""Retry-After parsing, capped exponential backoff with full jitter, and the circuit breaker: pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from gateway.push.policy import BreakerSettings, BreakerState, CircuitBreaker, backoff, parse_retry_after

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - retry jitter, not secrets; seeded to be reproducible


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", timedelta(seconds=7)),
        (" 0 ", timedelta(0)),
        ("Mon, 30 Nov 2026 12:00:09 GMT", timedelta(seconds=9)),
        ("Mon, 30 Nov 2026 11:59:00 GMT", timedelta(0)),
        ("Monday, 30-Nov-26 12:00:03 GMT", timedelta(seconds=3)),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds_and_http_date(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    rng = seeded(8)
    base, cap = timedelta(seconds=0.5), timedelta(seconds=30)
    for attempt in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff(attempt, base, cap, rng).total_seconds() for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: the draws spread over the whole range, not bunched at the ceiling.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_backoff_is_reproducible_and_refuses_attempt_zero() -> None:
    first = [backoff(n, timedelta(seconds=1), timedelta(seconds=60), seeded(1)) for n in range(1, 10)]
    again = [backoff(n, timedelta(seconds=1), timedelta(seconds=60), seeded(1)) for n in range(1, 10)]
    assert first == again
    with pytest.raises(ValueError, match="attempt"):
        backoff(0, timedelta(seconds=1), timedelta(seconds=60), seeded(1))


def test_breaker_opens_after_consecutive_failures_and_probes_after_cool_down() -> None:
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=3, cool_down=timedelta(seconds=10)))
    breaker.record_failure(0.0)
    breaker.record_failure(1.0)
    breaker.record_success()  # a success in between resets the count
    breaker.record_failure(2.0)
    breaker.record_failure(3.0)
    assert breaker.state(3.0) is BreakerState.CLOSED
    assert breaker.allow(3.0)
    breaker.record_failure(4.0)
    assert breaker.state(4.0) is BreakerState.OPEN
    assert not breaker.allow(13.9)
    assert breaker.retry_in(10.0) == timedelta(seconds=4)
    assert breaker.state(14.0) is BreakerState.HALF_OPEN
    assert breaker.allow(14.0)
    assert not breaker.allow(14.1), "one probe at a time"
    breaker.record_failure(15.0)  # the probe failed: open again for a full cool-down
    assert breaker.state(24.9) is BreakerState.OPEN
    assert breaker.allow(25.0)
    breaker.record_success()
    assert breaker.state(25.0) is BreakerState.CLOSED
    assert breaker.retry_in(25.0) == timedelta(0)
    assert all(breaker.allow(25.0) for _ in range(3))


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerSettings(failure_threshold=0)
    with pytest.raises(ValueError, match="cool_down"):
        BreakerSettings(cool_down=timedelta(seconds=-1))
