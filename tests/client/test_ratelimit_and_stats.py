"""The per-account rate limiter (on a fake clock) and the API request statistics."""

from __future__ import annotations

import itertools
import math

import pytest

from exporter.api_stats import ApiStats
from exporter.ratelimit import RateLimiter


class FakeTime:
    """A clock that only moves when the limiter sleeps, so the test is exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


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


def test_api_stats_counts_and_histogram() -> None:
    """Requests by (account, method, code), errors by reason, cumulative duration buckets."""
    stats = ApiStats(buckets=(0.1, 1.0))
    stats.record_request("a", "getObject", "200", 0.05)
    stats.record_request("a", "getObject", "500", 0.1)
    stats.record_request("b", "getInvoices", "none", 5.0)
    stats.record_error("a", "server")
    stats.record_error("b", "timeout")
    stats.record_error("b", "timeout")
    assert stats.requests == {
        ("a", "getObject", "200"): 1,
        ("a", "getObject", "500"): 1,
        ("b", "getInvoices", "none"): 1,
    }
    assert stats.errors == {("a", "server"): 1, ("b", "timeout"): 2}
    assert list(stats.methods) == ["getInvoices", "getObject"]
    buckets, total, count = stats.duration_histogram("getObject")
    assert buckets == [(0.1, 2), (1.0, 2), (math.inf, 2)]
    assert (total, count) == (pytest.approx(0.15), 2)
    assert stats.duration_histogram("getInvoices")[0] == [(0.1, 0), (1.0, 0), (math.inf, 1)]
    assert stats.duration_histogram("never") == ([(0.1, 0), (1.0, 0), (math.inf, 0)], 0.0, 0)
    assert stats.total_requests("a") == 2


def test_api_stats_readers_get_copies() -> None:
    """A scrape holding the mapping is not affected by later requests."""
    stats = ApiStats()
    stats.record_request("a", "getObject", "200", 0.01)
    seen = stats.requests
    stats.record_request("a", "getObject", "200", 0.01)
    assert seen[("a", "getObject", "200")] == 1
    assert stats.requests[("a", "getObject", "200")] == 2
