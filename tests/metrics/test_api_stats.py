"""The API request statistics (exporter.api_stats): counts, durations, error series."""

from __future__ import annotations

import pytest

from exporter.api_stats import ApiStats


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
