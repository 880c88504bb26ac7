"""Prometheus rules and Alertmanager routing: promtool, amtool, severity model, HA-safety."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.grafana import artifacts

GENERATOR = artifacts.grafana_module("generate_alerts")
MIXIN = artifacts.grafana_module("mixin")
ALERTS = artifacts.alerts()
ALERT_NAMES = [alert["alert"] for alert in ALERTS]
#: Alerts that compare a billing value with a per-account threshold from the config.
THRESHOLD_ALERTS = {
    "SoftLayerInvoiceOverdue": "softlayer_alert_threshold_usd",
    "SoftLayerAccountBalanceHigh": "softlayer_alert_threshold_usd",
    "SoftLayerForecastOverBudget": "softlayer_alert_threshold_usd",
    "SoftLayerPendingInvoiceTooOld": "softlayer_alert_threshold_seconds",
    "SoftLayerForecastSurge": "softlayer_alert_threshold_ratio",
    "SoftLayerCategoryCostSurge": "softlayer_alert_threshold_ratio",
}
FINANCE = {*THRESHOLD_ALERTS, "SoftLayerInvoicePaymentFailed"}
OPERATIONS = {
    "SoftLayerExporterDown",
    "SoftLayerExporterAbsent",
    "SoftLayerAccountPollFailing",
    "SoftLayerBillingDataStale",
    "SoftLayerApiAuthFailing",
    "SoftLayerApiRateLimited",
}
#: Money at risk now: the only pages.
CRITICAL = {"SoftLayerInvoiceOverdue", "SoftLayerInvoicePaymentFailed"}
ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard_url"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510  the caller asserts on returncode with the output
        args, capture_output=True, text=True, timeout=300, cwd=artifacts.ROOT
    )


def test_promtool_check_rules_lint_fatal() -> None:
    """`promtool check rules --lint=all --lint-fatal` accepts the rules file."""
    promtool = require_tool("promtool")
    result = _run(
        promtool, "check", "rules", "--lint=all", "--lint-fatal", str(artifacts.RULES_FILE)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Every promtool unit test file under grafana/alerts/tests passes (the month story too)."""
    promtool = require_tool("promtool")
    assert artifacts.MONTH_TEST in artifacts.RULE_TESTS
    result = _run(promtool, "test", "rules", *map(str, artifacts.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(artifacts.RULE_TESTS), result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The lint step is not vacuous: promtool fails a rules file with a syntax error."""
    promtool = require_tool("promtool")
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: SoftLayerBroken\n    expr: softlayer_up ==\n"
    )
    result = _run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(broken))
    assert result.returncode != 0
    assert "SoftLayerBroken" in result.stdout + result.stderr or "parse" in result.stderr


def test_committed_files_match_the_generator() -> None:
    """The rules, the Alertmanager config and the chart defaults are generate_alerts.py's."""
    stale = "is out of date: run python grafana/generate_alerts.py"
    assert artifacts.RULES_FILE.read_text(encoding="utf-8") == GENERATOR.render_rules(), stale
    alertmanager = artifacts.ALERTMANAGER_FILE.read_text(encoding="utf-8")
    assert alertmanager == GENERATOR.render_alertmanager(), stale
    assert MIXIN.DEFAULTS_FILE.read_text(encoding="utf-8") == MIXIN.render_defaults(), stale


def test_every_alert_is_defined_once_and_routed_to_a_team() -> None:
    """The alert list is the finance and operations sets, each alert defined exactly once."""
    assert sorted(ALERT_NAMES) == sorted(set(ALERT_NAMES))
    assert set(ALERT_NAMES) == FINANCE | OPERATIONS


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_severity_model_and_routing_label(alert: dict[str, Any]) -> None:
    """critical only where money is at risk now; team finance for invoices, operations else."""
    name = alert["alert"]
    assert alert["labels"]["severity"] == ("critical" if name in CRITICAL else "warning")
    assert alert["labels"]["team"] == ("finance" if name in FINANCE else "operations")


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_billing_alerts_keep_firing_through_gaps(alert: dict[str, Any]) -> None:
    """Finance alerts have `keep_firing_for`: a gap or restart does not resolve them."""
    assert alert.get("for"), "every alert waits at least one evaluation"
    if alert["alert"] in FINANCE:
        assert alert["keep_firing_for"] == GENERATOR.BILLING_KEEP_FIRING


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_alert_naming_and_annotations(alert: dict[str, Any]) -> None:
    """SoftLayer-CamelCase names; summary, description, runbook and dashboard links."""
    name = alert["alert"]
    assert re.fullmatch(r"SoftLayer(?:[A-Z][a-z]+)+", name), name
    annotations = alert["annotations"]
    assert set(annotations) == ANNOTATIONS
    assert annotations["summary"].endswith("."), "summary is a sentence"
    assert "{{" not in annotations["summary"], "summary stays stable across a group"
    assert annotations["description"] != annotations["summary"]
    assert annotations["runbook_url"] == MIXIN.DEFAULTS.runbook(name)
    dashboard = MIXIN.HEALTH_UID if name in OPERATIONS else MIXIN.OVERVIEW_UID
    assert annotations["dashboard_url"].startswith(MIXIN.DEFAULTS.dashboard(dashboard))


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_alert_has_a_runbook_section(alert: dict[str, Any]) -> None:
    """The runbook_url anchor exists as a section heading in docs/runbooks.md."""
    anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
    assert anchor in artifacts.runbook_anchors()


def test_runbooks_have_no_orphan_sections() -> None:
    """Every alert section of docs/runbooks.md belongs to an alert that exists."""
    alert_anchors = {name.lower() for name in ALERT_NAMES}
    runbook_alerts = {a for a in artifacts.runbook_anchors() if a.startswith("softlayer")}
    assert runbook_alerts == alert_anchors


def _groupings(expr: str) -> list[list[str]]:
    return [
        [label.strip() for label in labels.split(",")]
        for labels in re.findall(r"\b(?:by|on)\s*\(([^()]*)\)", expr)
    ]


@pytest.mark.parametrize(
    "rule", artifacts.load_rules(), ids=lambda r: r.get("alert") or r["record"]
)
def test_rules_are_ha_safe_and_job_scoped(rule: dict[str, Any]) -> None:
    """Every selector carries the job selector; nothing groups by instance but ExporterDown's up.

    Two exporters polling the same account (series identical but for ``instance``) must give
    one alert per problem, so aggregation and matching are by account (and job), never instance
    in what reaches the Alertmanager.
    """
    expr = rule["expr"]
    for metric, matchers in artifacts.selectors(expr):
        if ":" in metric:  # recording rules are already scoped
            continue
        assert MIXIN.DEFAULTS.job_selector in matchers, (metric, expr)
    for labels in _groupings(expr):
        assert "instance" not in labels or labels == ["job", "instance", "account"], expr
    if "instance" in expr.replace('instance="', ""):
        # Only the poll-interval estimate pairs an exporter's own series before aggregating.
        assert rule.get("record") == "account:softlayer_poll_interval_seconds:estimate", expr
        assert expr.startswith("max by (job, account) (")


def test_ha_check_catches_grouping_by_instance() -> None:
    """The grouping scanner sees an instance label where a rule would keep it."""
    assert _groupings("max by (job, instance, account) (x) > on (account) y") == [
        ["job", "instance", "account"],
        ["account"],
    ]


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_thresholds_come_from_the_exporter_not_the_rule(alert: dict[str, Any]) -> None:
    """Threshold alerts compare with the threshold gauge; the only literals are fixed policy.

    Allowed: 0 ("> 0" on counters, balances), 3 (three poll intervals), the surge floor and
    the payment-failure window, both documented constants of the generator.
    """
    expr = alert["expr"]
    if alert["alert"] in THRESHOLD_ALERTS:
        assert THRESHOLD_ALERTS[alert["alert"]] in artifacts.metric_names(expr)
        assert "on (account)" in expr
    allowed = {0.0, 3.0, float(GENERATOR.SURGE_FLOOR_USD)}
    allowed.add(float(GENERATOR._seconds(GENERATOR.PAYMENT_FAILURE_WINDOW)))
    assert set(artifacts.numbers(expr)) <= allowed, expr


def test_recording_rules_follow_level_metric_operation() -> None:
    """Recording rule names are level:metric:operation and are recorded once."""
    records = [rule["record"] for rule in artifacts.load_rules() if "record" in rule]
    assert records, "the rules file has recording rules"
    assert len(records) == len(set(records))
    for name in records:
        assert re.fullmatch(r"[a-z_]+:softlayer_[a-z_]+:[a-z0-9_]+", name), name


def _unit_test_checks() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, check)
        for path in artifacts.RULE_TESTS
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for check in case.get("alert_rule_test", [])
    ]


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_silent_unit_test(name: str) -> None:
    """promtool tests hold, per alert, a case where it fires and one where it must not."""
    kinds = [
        bool(check.get("exp_alerts"))
        for _, check in _unit_test_checks()
        if check["alertname"] == name
    ]
    assert True in kinds, f"{name}: no case where it fires"
    assert False in kinds, f"{name}: no case where it must stay silent"


def test_firing_cases_assert_exact_labels_and_annotations() -> None:
    """Every expected alert states its severity, team and every annotation."""
    for file, check in _unit_test_checks():
        for expected in check.get("exp_alerts") or []:
            assert {"severity", "team"} <= set(expected["exp_labels"]), (file, check)
            assert set(expected["exp_annotations"]) == ANNOTATIONS, (file, check)


def test_month_story_asserts_every_alert_at_every_checkpoint() -> None:
    """The month story spans 35+ days and, at each checkpoint, states every alert (silent or not).

    promtool only compares the alerts a test names, so naming all of them is what makes the
    story assert that nothing else fires.
    """
    document = yaml.safe_load(artifacts.MONTH_TEST.read_text(encoding="utf-8"))
    (story,) = document["tests"]
    checkpoints: dict[str, set[str]] = {}
    for check in story["alert_rule_test"]:
        checkpoints.setdefault(str(check["eval_time"]), set()).add(check["alertname"])
    assert len(checkpoints) >= 20
    for eval_time, names in checkpoints.items():
        assert names == set(ALERT_NAMES), eval_time
    last = max(int(t.split("d")[0]) for t in checkpoints if "d" in t)
    assert last >= 35
    # The HA pair: every prod series exists for both exporters with the same values.
    series = {s["series"]: s["values"] for s in story["input_series"]}
    prod_a = {k: v for k, v in series.items() if 'instance="a:29610",account="prod"' in k}
    assert len(prod_a) >= 10
    for name in prod_a:
        twin = name.replace('instance="a:29610"', 'instance="b:29610"')
        assert twin in series, name


def test_amtool_accepts_the_alertmanager_config() -> None:
    """`amtool check-config` accepts the shipped grafana/alertmanager/alertmanager.yml."""
    amtool = require_tool("amtool")
    result = _run(amtool, "check-config", str(artifacts.ALERTMANAGER_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """amtool is not vacuous: a route to an undefined receiver fails the check."""
    amtool = require_tool("amtool")
    broken = tmp_path / "am.yml"
    broken.write_text("route:\n  receiver: nowhere\nreceivers:\n  - name: somewhere\n")
    result = _run(amtool, "check-config", str(broken))
    assert result.returncode != 0
    assert "nowhere" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["alertname=SoftLayerInvoiceOverdue", "severity=critical", "team=finance"],
            "softlayer-finance-page",
        ),
        (
            ["alertname=SoftLayerForecastSurge", "severity=warning", "team=finance"],
            "softlayer-finance",
        ),
        (
            ["alertname=SoftLayerExporterDown", "severity=warning", "team=operations"],
            "softlayer-operations",
        ),
    ],
)
def test_amtool_routes_by_team_and_severity(labels: list[str], receiver: str) -> None:
    """`amtool config routes test` sends pages, finance tickets and operations tickets apart."""
    amtool = require_tool("amtool")
    config = f"--config.file={artifacts.ALERTMANAGER_FILE}"
    result = _run(amtool, "config", "routes", "test", config, *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_alert_routes_to_its_teams_receiver() -> None:
    """Each alert's labels select a receiver of its team (none falls through to the root)."""
    amtool = require_tool("amtool")
    config = f"--config.file={artifacts.ALERTMANAGER_FILE}"
    for alert in ALERTS:
        labels = [f"alertname={alert['alert']}", *(f"{k}={v}" for k, v in alert["labels"].items())]
        result = _run(amtool, "config", "routes", "test", config, *labels)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[0].startswith(f"softlayer-{alert['labels']['team']}")


def test_inhibit_rules_name_real_alerts_and_shared_labels() -> None:
    """Inhibitions name real alerts, never themselves, and match on labels both carry."""
    config = yaml.safe_load(artifacts.ALERTMANAGER_FILE.read_text(encoding="utf-8"))
    labels_of = {alert["alert"]: _output_labels(alert) for alert in ALERTS}
    assert len(config["inhibit_rules"]) >= 7
    for rule in config["inhibit_rules"]:
        (source,) = re.findall(r'alertname="(\w+)"', rule["source_matchers"][0])
        (targets,) = re.findall(r'alertname=~?"([\w|]+)"', rule["target_matchers"][0])
        for target in targets.split("|"):
            assert {source, target} <= set(ALERT_NAMES)
            assert source != target
            for label in rule.get("equal", []):
                assert label in labels_of[source], (source, label)
                assert label in labels_of[target], (target, label)
    route = config["route"]["routes"][0]
    assert route["group_by"] == ["alertname", "account"]


def _output_labels(alert: dict[str, Any]) -> set[str]:
    """The labels an alert's result carries: its outermost grouping, plus job/instance for up."""
    expr = alert["expr"]
    if expr.startswith("absent("):
        return {"job"}
    if expr.startswith("up{"):
        return {"job", "instance"}
    first = re.match(
        r"(?:time\(\) - )?max by \(([^()]*)\)|min by \(([^()]*)\)|sum by \(([^()]*)\)", expr
    )
    if first:
        return {label.strip() for group in first.groups() if group for label in group.split(",")}
    return {"account", "category"} if "account_category:" in expr else {"account"}
