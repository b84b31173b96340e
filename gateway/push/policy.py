"""Retry timing for EHR pushes: Retry-After, capped exponential backoff, a circuit breaker.

Pure: times and randomness come in as arguments, so the outbox and the tests share one clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay from ``now``: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    A date in the past means "now" (zero); a value that is neither form is ignored (None), so the
    caller falls back to its own backoff rather than trusting a malformed header.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; parsedate gives a naive datetime only for "-0000".
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def backoff(attempt: int, base: timedelta, cap: timedelta, rng: random.Random) -> timedelta:
    """Delay before retry number ``attempt`` (1-based): "full jitter", uniform in [0, min(cap, base * 2^(attempt-1))].

    Full jitter spreads the retries of many outbox rows that failed together, so a recovering
    EHR is not hit by a synchronized wave.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2.0 ** min(attempt - 1, 62))
    return timedelta(seconds=rng.uniform(0.0, ceiling))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5
    """Consecutive retryable failures that open the breaker."""
    cool_down: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {self.failure_threshold}")
        if self.cool_down < timedelta(0):
            raise ValueError("cool_down must not be negative")


class CircuitBreaker:
    """One per destination: stop sending to an EHR that keeps failing, probe it after a cool-down.

    Closed → open after ``failure_threshold`` consecutive retryable failures; open → half-open once
    ``cool_down`` has passed, when one probe is let through; the probe's result closes or reopens it.
    Times are monotonic seconds passed in by the caller.
    """

    __slots__ = ("_failures", "_opened_at", "_probing", "settings")

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at >= self.settings.cool_down.total_seconds():
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self, now: float) -> bool:
        """Whether a request may go now; in half-open only one probe at a time is allowed."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._probing = True
        return True

    def retry_in(self, now: float) -> timedelta:
        """How long until the breaker lets a probe through (zero unless open)."""
        if self._opened_at is None:
            return timedelta(0)
        return timedelta(seconds=max(0.0, self._opened_at + self.settings.cool_down.total_seconds() - now))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, now: float) -> None:
        """A retryable failure (429, 5xx, timeout, connection error); terminal 4xx are not the EHR's fault."""
        self._failures += 1
        if self._probing or self._failures >= self.settings.failure_threshold:
            self._opened_at = now
            self._probing = False
