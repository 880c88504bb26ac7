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
    """Requests by (account, method, code), errors by reason, durations by account and method."""
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
    buckets, total = stats.duration("a", "getObject")
    # A value equal to a bound is in that bound's bucket (le semantics).
    assert buckets == [("0.1", 2), ("1.0", 2), ("+Inf", 2)]
    assert total == pytest.approx(0.15)
    assert stats.duration("b", "getInvoices")[0] == [("0.1", 0), ("1.0", 0), ("+Inf", 1)]
    assert stats.duration("a", "getInvoices") == ([], 0.0)


def test_api_stats_version_moves_on_every_change() -> None:
    """Every counted request or error, and a change of accounts, moves the version."""
    stats = ApiStats()
    versions = [stats.version]
    stats.record_request("a", "getObject", "200", 0.01)
    versions.append(stats.version)
    stats.record_error("a", "auth")
    versions.append(stats.version)
    stats.set_accounts(["a"], ["auth"])
    versions.append(stats.version)
    assert versions == sorted(set(versions))


def test_api_stats_error_series_follow_the_accounts() -> None:
    """Configured accounts get every reason at 0; an account no longer configured is dropped."""
    stats = ApiStats()
    stats.record_request("gone", "getObject", "200", 0.01)
    stats.record_error("gone", "auth")
    stats.set_accounts(["a", "b"], ["auth", "timeout"])
    series = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in stats.collect()
        for s in family.samples
    }
    errors = {labels: v for (name, labels), v in series.items() if name.endswith("errors_total")}
    assert errors == {
        (("account", a), ("reason", r)): 0.0 for a in ("a", "b") for r in ("auth", "timeout")
    }
    assert not [labels for _, labels in series if ("account", "gone") in labels]
    assert not [name for name, _ in series if name.endswith("_created")]
    assert stats.errors == {}  # zeros are exported, not counted


def test_api_stats_readers_get_copies() -> None:
    """A scrape holding the mapping is not affected by later requests."""
    stats = ApiStats()
    stats.record_request("a", "getObject", "200", 0.01)
    seen = stats.requests
    stats.record_request("a", "getObject", "200", 0.01)
    assert seen[("a", "getObject", "200")] == 1
    assert stats.requests[("a", "getObject", "200")] == 2
