"""The per-device token bucket behind HTTP ingest's 429."""

from __future__ import annotations

import pytest

from gateway.api.ratelimit import RateLimiter


def test_a_burst_passes_then_the_rate_refills_it() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("dev-1") for _ in range(3)] == [None, None, None]
    assert limiter.take("dev-1") == pytest.approx(0.5)
    assert limiter.take("dev-2") is None  # each device has its own bucket
    now[0] = 0.5
    assert limiter.take("dev-1") is None
    assert limiter.take("dev-1") == pytest.approx(0.5)
