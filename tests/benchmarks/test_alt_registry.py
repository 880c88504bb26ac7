"""The scrape benchmark's plain prometheus-client contender serves exactly our collector's series.

``benchmarks.alt_registry`` builds its Gauges, Counters, Histograms and Infos from the
families our collector yields, so a metric added to the collector reaches both servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import alt_registry
from benchmarks.snapshots import build_api_stats, build_config, build_state
from exporter import metrics


def series(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
        if not sample.name.startswith(("process_", "python_"))
    }


@pytest.fixture(name="no_created_series")
def _no_created_series() -> Iterator[None]:
    # Our collector emits no ``_created`` series; the scrape server turns them off likewise.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    yield
    prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]


@pytest.mark.usefixtures("no_created_series")
def test_mirror_exposes_every_series_of_the_collector_with_its_value() -> None:
    """Same series names and labels as our exposition; same values except histogram sums."""
    ours = metrics.build_registry(
        build_state(2, 30), build_api_stats(2), build_config(2, 30), process_metrics=False
    )
    expected = series(generate_latest(ours))
    mirrored = series(generate_latest(alt_registry.mirror(ours.collect())))
    assert mirrored.keys() == expected.keys()
    families = {name for name, _ in expected}
    assert {"softlayer_account_info", "softlayer_api_requests_total"} <= families
    assert any(name.endswith("_bucket") for name in families)
    differing = {key for key in expected if mirrored[key] != expected[key]}
    # The histogram is replayed at its bucket bounds: counts match, the sum cannot.
    assert {name for name, _ in differing} <= {"softlayer_api_request_duration_seconds_sum"}


def test_a_family_type_without_a_mirror_is_an_error() -> None:
    """A family type the mirror cannot reproduce stops the benchmark instead of vanishing."""
    family = Metric("softlayer_example", "An example.", "stateset")
    family.add_sample("softlayer_example", {"softlayer_example": "a"}, 1)
    with pytest.raises(ValueError, match="no prometheus-client mirror for stateset"):
        alt_registry.mirror([family])


def test_families_without_samples_are_left_out() -> None:
    """An empty family has no series on either side and adds nothing to the registry."""
    registry = alt_registry.mirror([GaugeMetricFamily("softlayer_empty", "Nothing.", labels=["a"])])
    assert b"softlayer_empty" not in generate_latest(registry)
