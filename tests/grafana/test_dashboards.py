"""Dashboard conventions: uid, tags, refresh, variables, datasource, units, descriptions."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.grafana import artifacts

PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "piechart"}
#: Grafana unit ids the dashboards may use (a typo renders as a raw number with no unit).
GRAFANA_UNITS = {
    "currencyUSD",
    "percentunit",
    "short",
    "none",
    "s",
    "dtdurations",
    "dateTimeAsIso",
    "reqps",
    "bool_yes_no",
}
EXPECTED_UIDS = {
    "softlayer-billing-overview.json": "softlayer-billing-overview",
    "softlayer-exporter-health.json": "softlayer-exporter-health",
}
DASHBOARDS = {path.name: artifacts.load_dashboard(path) for path in artifacts.DASHBOARDS}
PANELS = [
    (name, panel) for name, board in DASHBOARDS.items() for panel in artifacts.query_panels(board)
]
PANEL_IDS = [f"{name}:{panel['title']}" for name, panel in PANELS]
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _generator() -> ModuleType:
    path = artifacts.GRAFANA / "generate_dashboards.py"
    spec = importlib.util.spec_from_file_location("generate_dashboards", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_dashboards_exist_with_stable_unique_uids() -> None:
    """The two dashboards exist, each with its fixed uid (<= 40 chars, unique)."""
    assert {name: board["uid"] for name, board in DASHBOARDS.items()} == EXPECTED_UIDS
    assert all(len(uid) <= 40 for uid in EXPECTED_UIDS.values())


def test_committed_dashboards_match_the_generator() -> None:
    """The committed JSON is exactly what grafana/generate_dashboards.py writes."""
    generator = _generator()
    for name, build in generator.DASHBOARDS.items():
        committed = (artifacts.GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert committed == generator.render(build), (
            f"{name} is out of date: run python grafana/generate_dashboards.py"
        )


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_metadata(name: str) -> None:
    """Title, description, tags, UTC, schemaVersion ~39 and a billing-friendly refresh."""
    board = DASHBOARDS[name]
    assert board["title"].startswith("SoftLayer")
    assert board["description"]
    assert "softlayer-billing-exporter" in board["tags"]
    assert board["timezone"] == "utc"
    assert 36 <= board["schemaVersion"] <= 41
    refresh = _DURATION.fullmatch(board["refresh"])
    assert refresh, board["refresh"]
    # Billing values change once per poll (15m by default): refreshing faster than a minute
    # only loads Prometheus.
    assert int(refresh.group(1)) * _SECONDS[refresh.group(2)] >= 60


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_template_variables(name: str) -> None:
    """One `datasource` variable of type datasource; job, instance, account query it."""
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    datasources = [v for v in variables.values() if v["type"] == "datasource"]
    assert [v["name"] for v in datasources] == ["datasource"]
    assert variables["datasource"]["query"] == "prometheus"
    for label in ("job", "instance", "account"):
        variable = variables[label]
        assert variable["type"] == "query"
        assert variable["datasource"] == artifacts.DATASOURCE
        assert variable["multi"] is True
        assert variable["includeAll"] is True
    assert '"$job"' in variables["instance"]["definition"]
    assert '"$instance"' in variables["account"]["definition"]


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_conventions(name: str, panel: dict[str, Any]) -> None:
    """Allowed type, title, description, unit, and the datasource variable everywhere."""
    assert panel["type"] in PANEL_TYPES
    assert panel["title"]
    assert len(panel["description"]) > 20
    assert panel["fieldConfig"]["defaults"]["unit"] in GRAFANA_UNITS
    for override in panel["fieldConfig"]["overrides"]:
        for prop in override["properties"]:
            if prop["id"] == "unit":
                assert prop["value"] in GRAFANA_UNITS
    assert panel["datasource"] == artifacts.DATASOURCE
    assert panel["targets"], "a panel without queries"
    for target in panel["targets"]:
        assert target["datasource"] == artifacts.DATASOURCE
        assert target["expr"].strip()
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_every_selector_is_scoped_by_the_variables(name: str, panel: dict[str, Any]) -> None:
    """Every selector carries job and instance matchers, and account when it has one."""
    for target in panel["targets"]:
        found = artifacts.selectors(target["expr"])
        assert found, target["expr"]
        for metric, matchers in found:
            assert 'job=~"$job"' in matchers, (metric, target["expr"])
            assert 'instance=~"$instance"' in matchers, (metric, target["expr"])
            per_account = metric != "up" and not metric.startswith(
                ("softlayer_api_request_duration_seconds", "softlayer_exporter_build_info")
            )
            if per_account:
                assert 'account=~"$account"' in matchers, (metric, target["expr"])


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_rates_use_grafana_intervals(name: str, panel: dict[str, Any]) -> None:
    """rate/increase windows are $__rate_interval or $__range, never a hard-coded range."""
    for target in panel["targets"]:
        for window in re.findall(r"\[([^\]]*)\]", target["expr"]):
            assert window in {"$__rate_interval", "$__range"}, target["expr"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_layout_ids_and_grid(name: str) -> None:
    """Panel ids are unique and every panel fits the 24-column grid without overlap."""
    panels = DASHBOARDS[name]["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_overview_covers_the_issue_topics() -> None:
    """The overview shows balance, open invoice and age, forecasts, categories, invoices."""
    exprs = " ".join(
        target["expr"]
        for name, panel in PANELS
        if name == "softlayer-billing-overview.json"
        for target in panel["targets"]
    )
    for metric in (
        "softlayer_account_balance_usd",
        "softlayer_invoice_open_balance_usd",
        "account:softlayer_pending_invoice_age_seconds:max",
        "account:softlayer_next_invoice_vs_latest_recurring:ratio",
        "account:softlayer_next_invoice_vs_budget:ratio",
        "softlayer_next_invoice_category_usd",
        "softlayer_next_invoice_category_items",
        "softlayer_recent_invoices",
    ):
        assert metric in exprs, metric
    assert any(p["type"] == "table" and "topk" in p["targets"][0]["expr"] for _, p in PANELS)


def test_health_covers_the_issue_topics() -> None:
    """The health dashboard shows source up, data age, poll duration, API errors, latency."""
    exprs = " ".join(
        target["expr"]
        for name, panel in PANELS
        if name == "softlayer-exporter-health.json"
        for target in panel["targets"]
    )
    for metric in (
        "softlayer_source_up",
        "softlayer_source_last_success_timestamp_seconds",
        "softlayer_poll_duration_seconds",
        "softlayer_api_requests_total",
        "softlayer_api_errors_total",
        "softlayer_api_request_duration_seconds_bucket",
    ):
        assert metric in exprs, metric


def test_selector_check_catches_an_unscoped_query() -> None:
    """The selector scanner reports a bare metric so an unscoped panel cannot slip through."""
    assert artifacts.selectors("sum(rate(softlayer_api_requests_total[5m]))") == [
        ("softlayer_api_requests_total", "")
    ]


#: Values for Grafana's variables when a query is checked or run outside Grafana.
SAMPLE_VARIABLES = {
    "datasource": "prometheus",
    "job": "softlayer",
    "instance": ".+",
    "account": ".+",
    "topn": "10",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1d",
}


def test_every_panel_query_parses_as_promql(tmp_path: Path) -> None:
    """Each query, variables substituted, is valid PromQL to promtool (as a recording rule)."""
    promtool = require_tool("promtool")
    rules = [
        {
            "record": f"dashboard_query_{number}",
            "expr": artifacts.substitute(target["expr"], SAMPLE_VARIABLES),
        }
        for number, (_, _, target) in enumerate(artifacts.panel_exprs())
    ]
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(  # noqa: PLW1510  returncode asserted below with the output
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
