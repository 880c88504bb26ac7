"""Counters and latency histograms of the SoftLayer API requests the exporter makes.

The client records every HTTP attempt here; /metrics renders the three families straight
from :meth:`ApiStats.collect`. The counters and the histogram are prometheus-client's own
primitives, so they are safe to read from the thread that renders /metrics while the event
loop records, and a renderer can tell from :attr:`ApiStats.version` whether anything moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.errors import reasons_help

__all__ = ["DEFAULT_BUCKETS", "ApiStats"]

#: Upper bounds (seconds) of the request-duration histogram. SoftLayer billing calls take
#: from tens of milliseconds to the two-minute timeouts seen on large accounts.
DEFAULT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

_REQUESTS_HELP: Final = (
    'SoftLayer API requests by method and HTTP status (code="none" when no response arrived).'
)
_ERRORS_HELP: Final = reasons_help()
_DURATION_HELP: Final = "Latency of SoftLayer API requests by account and method."


class ApiStats(Collector):
    """Request counts, error counts and request latencies, by account."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        # A private registry only groups the three families; nothing renders it directly.
        registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter(
            "softlayer_api_requests",
            _REQUESTS_HELP,
            ["account", "method", "code"],
            registry=registry,
        )
        self._errors = Counter(
            "softlayer_api_errors", _ERRORS_HELP, ["account", "reason"], registry=registry
        )
        self._durations = Histogram(
            "softlayer_api_request_duration_seconds",
            _DURATION_HELP,
            ["account", "method"],
            buckets=tuple(sorted(buckets)),
            registry=registry,
        )
        self._registry = registry
        self._version = 0

    def record_request(self, account: str, method: str, code: str, seconds: float) -> None:
        """Count one HTTP attempt; ``code`` is the HTTP status or ``"none"``."""
        self._version += 1
        self._requests.labels(account, method, str(code)).inc()
        self._durations.labels(account, method).observe(seconds)

    def record_error(self, account: str, reason: str) -> None:
        """Count one failed request (or undecodable response) under its reason."""
        self._version += 1
        self._errors.labels(account, str(reason)).inc()

    def set_accounts(self, accounts: Iterable[str], reasons: Iterable[str]) -> None:
        """Export every account x reason error series from now on, at 0 until counted.

        A counter series born at 1 on the first error is invisible to ``increase()``, so
        alerts on auth or rate-limit errors would wait for a second one. Accounts no longer
        listed lose all their series (they are no longer configured).
        """
        keep = set(accounts)
        reason_names = [str(reason) for reason in reasons]
        self._version += 1
        for account in sorted(keep):
            for reason in reason_names:
                self._errors.labels(account, reason)
        for metric, labels in (
            (self._requests, ("account", "method", "code")),
            (self._errors, ("account", "reason")),
            (self._durations, ("account", "method")),
        ):
            for values in _label_sets(metric, labels):
                if values[0] not in keep:
                    metric.remove(*values)

    @property
    def version(self) -> int:
        """Grow on every change, so a cached rendering of these counters can tell it is stale."""
        return self._version

    @property
    def requests(self) -> Mapping[tuple[str, str, str], int]:
        """``(account, method, code) -> count`` of the requests counted so far, a copy."""
        return MappingProxyType(
            {(s["account"], s["method"], s["code"]): n for s, n in _counts(self._requests)}
        )

    @property
    def errors(self) -> Mapping[tuple[str, str], int]:
        """``(account, reason) -> count`` of the errors counted so far (no zeros), a copy."""
        return MappingProxyType({(s["account"], s["reason"]): n for s, n in _counts(self._errors)})

    def duration(self, account: str, method: str) -> tuple[list[tuple[str, int]], float]:
        """``([(le, cumulative count), ...], sum)`` of one account's method; empty if unseen."""
        buckets: list[tuple[str, int]] = []
        total = 0.0
        for metric in self._durations.collect():
            for sample in metric.samples:
                if sample.labels.get("account") != account or sample.labels["method"] != method:
                    continue
                if sample.name.endswith("_bucket"):
                    buckets.append((sample.labels["le"], int(sample.value)))
                elif sample.name.endswith("_sum"):
                    total = sample.value
        return buckets, total

    def collect(self) -> Iterator[Metric]:
        """Yield the three families, without prometheus-client's ``_created`` series."""
        for metric in self._registry.collect():
            # The exposition never had them and they would double the series count.
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


def _counts(metric: Counter) -> Iterator[tuple[dict[str, str], int]]:
    """``(labels, count)`` of every series counted at least once."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                yield sample.labels, int(sample.value)


def _label_sets(metric: Counter | Histogram, labels: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels[name] for name in labels)
        for family in metric.collect()
        for sample in family.samples
    }
