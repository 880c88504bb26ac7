"""The straightforward alternative for serving: prometheus-client metrics in a registry.

This is what most exporters do: after each poll, ``Gauge.labels(...).set(value)`` for every
series, and on every scrape ``generate_latest(registry)`` (here through
``prometheus_client.aiohttp.make_aiohttp_handler``) renders the whole registry again.

The series are not declared here a second time: :func:`mirror` reads the families our own
collector yields once (the "poll") and sets a Gauge, Counter, Histogram or Info child per
sample, so both servers expose the same series however the collector changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.metrics_core import Metric

__all__ = ["mirror"]


def mirror(families: Iterable[Metric]) -> CollectorRegistry:
    """A registry of prometheus-client metrics holding the samples of ``families``.

    Families without samples are left out (no series either way); process metrics are
    added live, as prometheus-client's default registry has them.
    """
    registry = CollectorRegistry(auto_describe=False)
    for family in families:
        if family.samples:
            _MIRRORS.get(family.type, _unsupported)(registry, family)
    ProcessCollector(registry=registry)
    return registry


def _labelnames(family: Metric, drop: str = "") -> tuple[str, ...]:
    return tuple(name for name in family.samples[0].labels if name != drop)


def _gauge(registry: CollectorRegistry, family: Metric) -> None:
    gauge = Gauge(family.name, family.documentation, _labelnames(family), registry=registry)
    for sample in family.samples:
        (gauge.labels(**sample.labels) if sample.labels else gauge).set(sample.value)


def _counter(registry: CollectorRegistry, family: Metric) -> None:
    totals = [s for s in family.samples if s.name.endswith("_total")]
    counter = Counter(family.name, family.documentation, _labelnames(family), registry=registry)
    for sample in totals:
        (counter.labels(**sample.labels) if sample.labels else counter).inc(sample.value)


def _info(registry: CollectorRegistry, family: Metric) -> None:
    info = Info(family.name, family.documentation, _labelnames(family), registry=registry)
    for sample in family.samples:
        info.labels(**sample.labels).info({})


def _histogram(registry: CollectorRegistry, family: Metric) -> None:
    buckets = [s for s in family.samples if s.name.endswith("_bucket")]
    bounds = sorted({float(s.labels["le"]) for s in buckets})
    histogram = Histogram(
        family.name,
        family.documentation,
        _labelnames(family, drop="le"),
        buckets=bounds,
        registry=registry,
    )
    finite = [bound for bound in bounds if not math.isinf(bound)]
    previous: dict[tuple[str, ...], float] = {}
    for sample in buckets:
        labels = {name: value for name, value in sample.labels.items() if name != "le"}
        key = tuple(labels.values())
        child = histogram.labels(**labels) if labels else histogram
        bound = float(sample.labels["le"])
        # Replay one observation per count at each bucket's bound: same buckets and counts.
        value = bound if not math.isinf(bound) else 2 * finite[-1]
        for _ in range(int(sample.value - previous.get(key, 0))):
            child.observe(value)
        previous[key] = sample.value


def _unsupported(registry: CollectorRegistry, family: Metric) -> None:
    raise ValueError(f"no prometheus-client mirror for {family.type} family {family.name}")


_MIRRORS = {"gauge": _gauge, "counter": _counter, "info": _info, "histogram": _histogram}
