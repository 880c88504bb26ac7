"""The per-account rate limiter, on a fake clock."""

from __future__ import annotations

import itertools
import math

import pytest

from exporter.ratelimit import RateLimiter
from tests.helpers.fakeclock import FakeTime


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    """The most starts inside any closed window of ``window`` seconds."""
    return max(sum(1 for t in starts if s <= t <= s + window) for s in starts)


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.5, 10.0, 49.0])
async def test_never_more_than_the_budget_in_any_second(rate: float) -> None:
    """However many callers queue up, no closed one-second window holds more than the rate."""
    fake = FakeTime()
    limiter = RateLimiter(rate, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(int(rate * 5) + 3):
        await limiter.acquire()
        starts.append(fake.now)
    assert max_in_window(starts) <= max(1, math.floor(rate))
    # ...while still using the budget: the run takes about count / rate seconds.
    assert starts[-1] - starts[0] <= (len(starts) - 1) / min(rate, max(1, math.floor(rate))) + 1


async def test_requests_are_spaced_not_bursted() -> None:
    """Consecutive starts are at least 1/rate apart."""
    fake = FakeTime()
    limiter = RateLimiter(4, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(6):
        await limiter.acquire()
        starts.append(fake.now)
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_invalid_rate_is_rejected(rate: float) -> None:
    """A non-positive or infinite budget is a clear error."""
    with pytest.raises(ValueError, match="rate must be a positive finite number"):
        RateLimiter(rate)
