"""Every metric name in the dashboards and rules exists in docs/metrics.md and in real output.

Names are taken from PromQL conservatively (see ``artifacts.metric_names``): an identifier
that is not a function, keyword, label or duration. Recording-rule names (with colons) must
be recorded by the rules file instead; Prometheus' own ``up`` is the one outside name allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.grafana import artifacts

DOCUMENTED = artifacts.documented_metrics()
RECORDED = artifacts.recording_names()


def _used_names() -> dict[str, set[str]]:
    """Return ``{metric name: {places it is used}}`` over dashboards, variables and rules."""
    used: dict[str, set[str]] = {}
    for dashboard, title, target in artifacts.panel_exprs():
        for name in artifacts.metric_names(target["expr"]):
            used.setdefault(name, set()).add(f"{dashboard}: {title}")
    for path in artifacts.DASHBOARDS:
        for query in artifacts.variable_queries(artifacts.load_dashboard(path)):
            for name in artifacts.variable_metric_names(query):
                used.setdefault(name, set()).add(f"{path.name}: variable {query}")
    for rule in artifacts.load_rules():
        for name in artifacts.metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule.get('alert') or rule.get('record')}")
    return used


USED = _used_names()


def test_scanner_finds_names_and_skips_functions_labels_and_durations() -> None:
    """The PromQL scanner returns selected metrics only."""
    expr = (
        'sum by (account, le) (rate(foo_seconds_bucket{job=~"$job", x="a{b}"}[$__rate_interval]))'
        " / on (job) group_left (category_name) bar_info offset 1w > 0"
        " and absent(baz) or time() - lvl:qux:ratio"
    )
    assert artifacts.metric_names(expr) == {
        "foo_seconds_bucket",
        "bar_info",
        "baz",
        "lvl:qux:ratio",
    }
    assert artifacts.variable_metric_names('label_values(softlayer_up{job=~"$job"}, account)') == {
        "softlayer_up"
    }


def test_documented_contract_is_parsed() -> None:
    """docs/metrics.md yields the contract's families with their types."""
    assert DOCUMENTED["softlayer_api_request_duration_seconds"] == "histogram"
    assert DOCUMENTED["softlayer_api_errors_total"] == "counter"
    assert len(DOCUMENTED) >= 30


def test_dashboards_and_rules_use_something() -> None:
    """The scan is not vacuous: dashboards and rules reference many metrics."""
    assert len(USED) >= 30


@pytest.mark.parametrize("name", sorted(USED))
def test_metric_name_exists(name: str) -> None:
    """Each used name is documented (histogram series map to their family) or recorded."""
    places = sorted(USED[name])
    if ":" in name:
        assert name in RECORDED, f"{name} is not recorded by the rules file; used in {places}"
        return
    if name in artifacts.PROMETHEUS_METRICS:
        return
    assert artifacts.family_of(name, DOCUMENTED), (
        f"{name} is not in docs/metrics.md; used in {places}"
    )


def test_unknown_metric_is_reported() -> None:
    """A misspelt metric would fail: it maps to no documented family."""
    assert artifacts.family_of("softlayer_account_balance_dollars", DOCUMENTED) is None
    assert artifacts.family_of("softlayer_up_bucket", DOCUMENTED) is None
    assert artifacts.family_of("softlayer_api_request_duration_seconds_count", DOCUMENTED)


DEMO_CONFIG = """\
poll_interval: 15m
accounts:
  - name: names-check
    endpoint: public
    auth:
      method: classic
      username: demo
      api_key_env: SOFTLAYER_NAMES_CHECK_KEY_UNUSED
    thresholds:
      open_invoice_balance_usd: 1
      account_balance_usd: 1
      monthly_budget_usd: 1
      pending_invoice_max_age: 35d
      forecast_surge_ratio: 1.25
      category_surge_ratio: 1.5
"""


@pytest.mark.e2e
def test_metric_names_exist_in_real_exporter_output(tmp_path: Path) -> None:
    """Every contract name used is a family the real exporter serves (demo, one poll)."""
    config = tmp_path / "config.yaml"
    config.write_text(DEMO_CONFIG, encoding="utf-8")
    result = subprocess.run(  # noqa: PLW1510  returncode asserted below with the output
        [sys.executable, "-m", "exporter", "--demo", "--once", "--config.file", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PROMETHEUS_DISABLE_CREATED_SERIES": "True"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = {
        parts[2]: parts[3]
        for line in result.stdout.splitlines()
        if line.startswith("# TYPE ") and len(parts := line.split()) == 4
    }
    missing = {
        name: sorted(places)
        for name, places in USED.items()
        if ":" not in name
        and name not in artifacts.PROMETHEUS_METRICS
        and artifacts.family_of(name, served) is None
    }
    assert not missing, f"not served by the exporter: {missing}"
