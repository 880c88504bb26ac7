"""Dashboard conventions: uid, tags, refresh, variables, datasource, units, descriptions."""

from __future__ import annotations

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
    "dateTimeFromNow",
}
#: Panel types that show the current value: they must query "now", not a range.
NOW_TYPES = {"stat", "bargauge", "piechart", "table"}
#: Panels that show each exporter on purpose (targets, builds, per-process timings).
PER_INSTANCE = {"Exporter targets", "Exporter build", "Poll duration"}
#: Metrics that exist per exporter process rather than per account.
PROCESS_METRICS = ("up", "softlayer_exporter_build_info")
EXPECTED_UIDS = {
    "softlayer-billing-overview.json": "softlayer-billing-overview",
    "softlayer-exporter-health.json": "softlayer-exporter-health",
    "softlayer-billing-changes.json": "softlayer-billing-changes",
}
DASHBOARDS = {path.name: artifacts.load_dashboard(path) for path in artifacts.DASHBOARDS}
PANELS = [
    (name, panel) for name, board in DASHBOARDS.items() for panel in artifacts.query_panels(board)
]
PANEL_IDS = [f"{name}:{panel['title']}" for name, panel in PANELS]
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _generator() -> ModuleType:
    return artifacts.grafana_module("generate_dashboards")


def test_every_dashboard_exists_with_a_stable_unique_uid() -> None:
    """Every dashboard exists, each with its fixed uid (<= 40 chars, unique)."""
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
            if metric not in PROCESS_METRICS:
                assert 'account=~"$account"' in matchers, (metric, target["expr"])


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_rates_use_grafana_intervals(name: str, panel: dict[str, Any]) -> None:
    """rate/increase windows are $__rate_interval or $__range; only a data age looks back 1d."""
    for target in panel["targets"]:
        expr = target["expr"]
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in {"$__rate_interval", "$__range"} or (
                window == "1d" and "last_over_time(" in expr
            ), expr


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
    """The overview shows balance, open invoice and age, projections, categories, invoices."""
    exprs = " ".join(
        target["expr"]
        for name, panel in PANELS
        if name == "softlayer-billing-overview.json"
        for target in panel["targets"]
    )
    for metric in (
        "softlayer_account_balance_usd",
        "softlayer_invoice_open_balance_usd",
        "softlayer_invoice_created_timestamp_seconds",
        "softlayer_invoice_status",
        "softlayer_invoice_last_payment_failure_timestamp_seconds",
        "softlayer_next_invoice_projected_pre_tax_usd",
        "softlayer_next_invoice_category_projected_usd",
        "softlayer_next_invoice_category_usd",
        "softlayer_billing_cycle_end_timestamp_seconds",
        "softlayer_recent_invoices",
    ):
        assert metric in exprs, metric
    assert "offset 7d" in exprs
    assert "offset 30d" in exprs
    assert 'billing="hourly"' in exprs
    assert 'billing="monthly"' in exprs
    assert any(p["type"] == "table" and "topk" in p["targets"][0]["expr"] for _, p in PANELS)


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


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_now_panels_run_instant_queries(name: str, panel: dict[str, Any]) -> None:
    """Stat, bar gauge, pie and table panels query the end of the range, not the whole range.

    With a range query they show the range's last non-null value: a paid invoice's balance
    would linger and a dead exporter would stay green.
    """
    for target in panel["targets"]:
        instant = panel["type"] in NOW_TYPES
        assert target["instant"] is instant, target["expr"]
        assert target["range"] is not instant, target["expr"]


def _enclosing(expr: str, position: int) -> list[str]:
    """Return the calls around ``position``, innermost first (``max by (account)``, ``rate``)."""
    found, depth = [], 0
    for index in range(position - 1, -1, -1):
        char = expr[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth:
                depth -= 1
                continue
            head = expr[:index].rstrip()
            call = re.search(r"(\w+(?:\s+by\s*\([^()]*\))?)$", head)
            if call is None:  # a by (...) list right before the argument
                call = re.search(r"(\w+\s+by\s*\([^()]*\))\s*$", head)
            found.append(call.group(1) if call else "")
    return found


def _counted_once(expr: str, position: int) -> bool:
    """Tell whether the series at ``position`` is aggregated without ``instance`` correctly.

    Going outwards, the first aggregation that drops ``instance`` must be ``max``/``min``
    (identical replicas collapse to one) or, around a rate/increase, ``sum`` (each exporter
    really made its own API calls).
    """
    counter = False
    for call in _enclosing(expr, position):
        name = call.split()[0] if call else ""
        counter = counter or name in {"rate", "increase"}
        grouping = re.search(r"by\s*\(([^()]*)\)", call)
        if grouping is None or "instance" in grouping.group(1):
            continue
        return name in {"max", "min"} or (name == "sum" and counter)
    return False


def test_ha_check_tells_max_from_sum() -> None:
    """The HA check passes max by account, rates summed, and fails a plain sum or nothing."""
    metric = 'softlayer_x{job=~"$job"}'
    good = [
        f"max by (account) ({metric})",
        f"sum(max by (account) ({metric}))",
        f"sum by (account) (rate({metric}[5m]))",
        f"max by (account) ({metric} - on (job, instance, account)"
        f" max by (job, instance, account) ({metric}))",
    ]
    for expr in good:
        assert all(_counted_once(expr, m.start()) for m in re.finditer("softlayer_x", expr)), expr
    for expr in (metric, f"sum by (account) ({metric})", f"max by (instance) ({metric})"):
        assert not _counted_once(expr, expr.index("softlayer_x")), expr


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_series_count_once_under_an_ha_pair(name: str, panel: dict[str, Any]) -> None:
    """Every exporter series is collapsed by account, so two identical exporters count once."""
    if panel["title"] in PER_INSTANCE:
        return
    for target in panel["targets"]:
        expr = target["expr"]
        for match in re.finditer(r"(?<![\w:])(softlayer_\w+|up)\{", expr):
            assert _counted_once(expr, match.start()), (match.group(1), expr)


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_money_has_two_decimals(name: str, panel: dict[str, Any]) -> None:
    """USD values show cents: $48,371.52, not $48.4K."""
    defaults = panel["fieldConfig"]["defaults"]
    if defaults["unit"] == "currencyUSD":
        assert defaults["decimals"] == 2
    for override in panel["fieldConfig"]["overrides"]:
        values = {prop["id"]: prop["value"] for prop in override["properties"]}
        if values.get("unit") == "currencyUSD":
            assert values["decimals"] == 2


def test_threshold_panels_read_the_exported_thresholds() -> None:
    """Panels compared with an alert threshold divide by the account's exported threshold."""
    compared = [
        panel
        for _, panel in PANELS
        if panel["fieldConfig"]["defaults"]["unit"] == "percentunit" and panel["type"] != "table"
    ]
    assert len(compared) >= 3
    for panel in compared:
        expr = panel["targets"][0]["expr"]
        assert re.search(r"/ on \(account\) max by \(account\) \(softlayer_alert_threshold_", expr)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1] == {"color": "red", "value": 1}, panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_default_range_is_a_billing_month(name: str) -> None:
    """The default time range shows at least a month (an invoice issued and paid)."""
    span = _DURATION.fullmatch(DASHBOARDS[name]["time"]["from"].removeprefix("now-"))
    assert span, DASHBOARDS[name]["time"]
    assert int(span.group(1)) * _SECONDS[span.group(2)] >= 30 * 86400


def test_health_panels_query_no_finer_than_a_poll() -> None:
    """Health trends have a 15m minimum interval; the data age keeps growing through an outage."""
    health = [p for name, p in PANELS if name == "softlayer-exporter-health.json"]
    trends = [p for p in health if p["type"] == "timeseries"]
    assert trends
    assert all(p.get("interval") == "15m" for p in trends)
    ages = [p for p in health if p["title"] in {"Data age", "Data age by source"}]
    assert len(ages) == 2
    for panel in ages:
        assert "last_over_time(" in panel["targets"][0]["expr"]


def test_runbook_links_point_at_existing_sections() -> None:
    """Panel links go to runbook sections that exist; every finance alert has one."""
    mixin = artifacts.grafana_module("mixin")
    anchors = artifacts.runbook_anchors()
    linked = set()
    for _, panel in PANELS:
        for link in panel.get("links", []):
            base, anchor = link["url"].split("#")
            assert base == mixin.DEFAULTS.runbook_url
            assert anchor in anchors, link["url"]
            linked.add(anchor)
    finance = {
        alert["alert"].lower()
        for alert in artifacts.alerts()
        if alert["labels"]["team"] == "finance"
    }
    assert finance <= linked
    assert len(linked) >= 11


def test_runbooks_name_panels_that_exist() -> None:
    """Every panel a runbook tells the reader to look at (*Title*) exists on a dashboard."""
    titles = {panel["title"] for _, panel in PANELS}
    text = artifacts.RUNBOOKS.read_text(encoding="utf-8")
    named = set()
    pointers = r"^- (?:Overview|Exporter health) dashboard,[^\n]*(?:\n  [^\n]*)*"
    for item in re.findall(pointers, text, re.MULTILINE):
        sentence = " ".join(item.split()).split(". ")[0]  # the dashboard part of the item
        named |= set(re.findall(r"\*([^*]+)\*", sentence))
    assert len(named) >= 15
    assert named <= titles, sorted(named - titles)
