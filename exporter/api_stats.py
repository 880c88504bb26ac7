"""Counters and latency histograms of the SoftLayer API requests the exporter makes.

The client records every HTTP attempt here; the metrics collector reads the totals at
scrape time. Readers get copies, so a scrape never iterates a dict the poller is growing.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_BUCKETS", "ApiStats", "DurationHistogram"]

#: Upper bounds (seconds) of the request-duration histogram. SoftLayer billing calls take
#: from tens of milliseconds to the two-minute timeouts seen on large accounts.
DEFAULT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class DurationHistogram:
    """A cumulative-on-read latency histogram of one method."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, last one is +Inf
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        # bisect_left puts a value equal to a bound into that bound's bucket (le semantics).
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper_bound, cumulative_count)`` pairs ending with ``(inf, count)``."""
        running = 0
        result = []
        for bound, bucket_count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += bucket_count
            result.append((bound, running))
        return result


class ApiStats:
    """Request counts, error counts and request latencies, across all accounts."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self._buckets = tuple(sorted(buckets))
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._histograms: dict[str, DurationHistogram] = {}
        self._version = 0

    def record_request(self, account: str, method: str, code: str, seconds: float) -> None:
        """Count one HTTP attempt; ``code`` is the HTTP status or ``"none"``."""
        self._version += 1
        self._requests[(account, method, str(code))] += 1
        histogram = self._histograms.get(method)
        if histogram is None:
            histogram = self._histograms[method] = DurationHistogram(self._buckets)
        histogram.observe(seconds)

    def record_error(self, account: str, reason: str) -> None:
        """Count one failed request (or undecodable response) under its reason."""
        self._version += 1
        self._errors[(account, str(reason))] += 1

    @property
    def version(self) -> int:
        """Grow on every change, so a cached rendering of these counters can tell it is stale."""
        return self._version

    @property
    def requests(self) -> Mapping[tuple[str, str, str], int]:
        """``(account, method, code) -> count``, a copy."""
        return MappingProxyType(dict(self._requests))

    @property
    def errors(self) -> Mapping[tuple[str, str], int]:
        """``(account, reason) -> count``, a copy."""
        return MappingProxyType(dict(self._errors))

    @property
    def methods(self) -> Iterable[str]:
        """The method names seen so far, sorted."""
        return sorted(self._histograms)

    def duration_histogram(self, method: str) -> tuple[list[tuple[float, int]], float, int]:
        """``(buckets, sum, count)`` of one method; empty buckets for an unseen method."""
        histogram = self._histograms.get(method) or DurationHistogram(self._buckets)
        return histogram.cumulative(), histogram.total, histogram.count

    def total_requests(self, account: str) -> int:
        """All attempts made for one account so far (the poll log reports per-cycle deltas)."""
        return sum(n for (name, _, _), n in self._requests.items() if name == account)
