"""The Prometheus rules file: promtool lint and unit tests, naming, annotations, runbooks."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.grafana import artifacts

ALERTS = artifacts.alerts()
ALERT_NAMES = [alert["alert"] for alert in ALERTS]
#: Alerts that compare a billing value with a per-account threshold from the config.
THRESHOLD_ALERTS = {
    "SoftLayerOpenInvoiceBalanceHigh": "softlayer_alert_threshold_usd",
    "SoftLayerAccountBalanceHigh": "softlayer_alert_threshold_usd",
    "SoftLayerForecastOverBudget": "softlayer_alert_threshold_usd",
    "SoftLayerPendingInvoiceTooOld": "softlayer_alert_threshold_seconds",
    "SoftLayerForecastSurge": "softlayer_alert_threshold_ratio",
    "SoftLayerCategoryCostSurge": "softlayer_alert_threshold_ratio",
}
#: Every alert the project promises, by the name it has here.
REQUIRED_ALERTS = {
    *THRESHOLD_ALERTS,
    "SoftLayerInvoicePaymentFailed",
    "SoftLayerExporterDown",
    "SoftLayerExporterAbsent",
    "SoftLayerAccountPollFailing",
    "SoftLayerBillingDataStale",
    "SoftLayerApiAuthFailing",
    "SoftLayerApiRateLimited",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510  the caller asserts on returncode with the output
        args, capture_output=True, text=True, timeout=120, cwd=artifacts.ROOT
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
    """Every promtool unit test file under grafana/alerts/tests passes."""
    promtool = require_tool("promtool")
    assert artifacts.RULE_TESTS, "no promtool test files found"
    result = _run(promtool, "test", "rules", *map(str, artifacts.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(artifacts.RULE_TESTS), result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Any) -> None:
    """The lint step is not vacuous: promtool fails a rules file with a syntax error."""
    promtool = require_tool("promtool")
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: SoftLayerBroken\n    expr: softlayer_up ==\n"
    )
    result = _run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(broken))
    assert result.returncode != 0
    assert "SoftLayerBroken" in result.stdout + result.stderr or "parse" in result.stderr


def test_every_required_alert_is_defined_once() -> None:
    """The promised alert list is covered, each alert defined exactly once."""
    assert sorted(ALERT_NAMES) == sorted(set(ALERT_NAMES))
    assert set(ALERT_NAMES) == REQUIRED_ALERTS


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_alert_naming_labels_and_annotations(alert: dict[str, Any]) -> None:
    """Each alert is SoftLayer-CamelCase, has a severity and the three annotations."""
    name = alert["alert"]
    assert re.fullmatch(r"SoftLayer(?:[A-Z][a-z]+)+", name), name
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].endswith("."), "summary is a sentence"
    assert "{{" not in annotations["summary"], "summary stays stable across a group"
    assert annotations["description"], "description carries the details"
    assert annotations["description"] != annotations["summary"]
    assert annotations["runbook_url"] == f"{artifacts.RUNBOOK_BASE}#{name.lower()}"


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


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_thresholds_come_from_the_exporter_not_the_rule(alert: dict[str, Any]) -> None:
    """Threshold alerts compare with the threshold gauge; no alert bakes in a number.

    The only literals allowed are 0 (the "> 0" tests of counters and ratios) and the
    staleness multiplier 3 (three poll intervals), which is not a configured threshold.
    """
    expr = alert["expr"]
    if alert["alert"] in THRESHOLD_ALERTS:
        assert THRESHOLD_ALERTS[alert["alert"]] in artifacts.metric_names(expr)
        assert "on (job, instance, account)" in expr
    assert set(artifacts.numbers(expr)) <= {0.0, 3.0}, expr


def test_recording_rules_follow_level_metric_operation() -> None:
    """Recording rule names are level:metric:operation and are recorded once."""
    records = [rule["record"] for rule in artifacts.load_rules() if "record" in rule]
    assert records, "the rules file has recording rules"
    assert len(records) == len(set(records))
    for name in records:
        assert re.fullmatch(r"[a-z_]+:softlayer_[a-z_]+:[a-z0-9_]+", name), name


def _unit_test_cases() -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for path in artifacts.RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                kind = "fires" if check.get("exp_alerts") else "silent"
                entry = counts.setdefault(check["alertname"], {"fires": 0, "silent": 0})
                entry[kind] += 1
    return counts


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_silent_unit_test(name: str) -> None:
    """promtool tests hold, per alert, a case where it fires and one where it must not."""
    counts = _unit_test_cases().get(name, {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"{name}: no case where it fires"
    assert counts["silent"] >= 1, f"{name}: no case where it must stay silent"


def test_firing_cases_assert_exact_labels_and_annotations() -> None:
    """Every expected alert in the promtool tests states its labels and all annotations."""
    for path in artifacts.RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                for expected in check.get("exp_alerts") or []:
                    assert "severity" in expected["exp_labels"], (path.name, check)
                    assert set(expected["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                    }, (path.name, check)
