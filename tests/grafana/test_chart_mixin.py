"""The Helm chart renders the rules, dashboards and routing with its own monitoring settings.

The chart cannot run the Python generators, so it replaces the defaults they were run with
(``mixin-defaults.json``) by its values. These tests hold that to the generators: rendered
with the defaults, the chart ships grafana/'s files unchanged; rendered with other settings,
it ships exactly what the generator writes with those settings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.deploy.chart import Helm, by_kind, one
from tests.grafana import artifacts

MIXIN = artifacts.grafana_module("mixin")
GENERATOR = artifacts.grafana_module("generate_alerts")
ENABLE = [
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "dashboards.enabled=true",
    "alertmanagerConfig.enabled=true",
    "existingSecret=keys",
]
ACCOUNTS = 'accounts=[{"name": "production", "auth": {"method": "classic", "username": "u"}}]'
CUSTOM = MIXIN.MixinConfig(
    job_selector='job="billing", namespace="finance"',
    runbook_url="https://wiki.example.com/softlayer/runbooks",
    grafana_url="https://grafana.example.com",
)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm CLI with a throw-away home."""
    return Helm(require_tool("helm"), tmp_path_factory.mktemp("helm-home"))


def _render(helm: Helm, config: Any = None) -> list[dict[str, Any]]:
    sets = list(ENABLE)
    if config is not None:
        sets += [
            f"mixin.runbookUrl={config.runbook_url}",
            f"mixin.grafanaUrl={config.grafana_url}",
        ]
        set_json = [ACCOUNTS, f"mixin.jobSelector={json.dumps(config.job_selector)}"]
    else:
        set_json = [ACCOUNTS]
    return helm.render(sets=sets, set_json=set_json)


def _dashboards(docs: list[dict[str, Any]]) -> dict[str, str]:
    (configmap,) = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboards")
    ]
    data: dict[str, str] = configmap["data"]
    return data


def test_with_the_defaults_the_chart_ships_grafanas_files(helm: Helm) -> None:
    """Values equal to the generator's defaults render the rules and dashboards unchanged."""
    docs = _render(helm, MIXIN.DEFAULTS)
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(artifacts.RULES_FILE.read_text(encoding="utf-8"))
    assert _dashboards(docs) == {
        path.name: path.read_text(encoding="utf-8") for path in artifacts.DASHBOARDS
    }


def test_other_settings_render_what_the_generator_writes_with_them(helm: Helm) -> None:
    """Helm's replacement equals the Python generator run with the same settings."""
    rule = one(_render(helm, CUSTOM), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(GENERATOR.render_rules(CUSTOM))
    text = yaml.safe_dump(rule["spec"])
    for default in dataclasses.astuple(MIXIN.DEFAULTS):
        assert default not in text


def test_generated_files_use_each_default_only_for_its_setting() -> None:
    """No default string stands for anything else: rendering with others leaves none behind."""
    rules = GENERATOR.render_rules(CUSTOM)
    for default in dataclasses.astuple(MIXIN.DEFAULTS):
        assert default not in rules
    selectors = artifacts.RULES_FILE.read_text(encoding="utf-8").count(MIXIN.DEFAULTS.job_selector)
    assert rules.count(CUSTOM.job_selector) == selectors > 20


def test_default_job_selector_is_the_service_monitors_job(helm: Helm) -> None:
    """Without mixin.jobSelector the rules select the job prometheus-operator assigns."""
    docs = _render(helm)
    service = one(docs, "Service")["metadata"]["name"]
    spec = yaml.safe_dump(one(docs, "PrometheusRule")["spec"])
    assert f'job="{service}"' in spec
    assert MIXIN.DEFAULTS.job_selector not in spec
    assert one(docs, "ServiceMonitor")["spec"].get("jobLabel") is None


def test_dashboards_link_to_the_configured_runbooks(helm: Helm) -> None:
    """Every rendered dashboard runbook link points at mixin.runbookUrl; JSON stays valid."""
    links = []
    for text in _dashboards(_render(helm, CUSTOM)).values():
        board = json.loads(text)
        links += [link["url"] for p in board["panels"] for link in p.get("links", [])]
    assert len(links) >= 10
    assert all(url.startswith(f"{CUSTOM.runbook_url}#softlayer") for url in links)


def test_alertmanager_config_carries_the_routes_inhibitions_and_receivers(helm: Helm) -> None:
    """The AlertmanagerConfig has the generated route and inhibitions, the values' receivers."""
    webhook = {"webhookConfigs": [{"url": "http://finance.example.com/hook"}]}
    docs = helm.render(
        sets=ENABLE,
        set_json=[
            ACCOUNTS,
            f"alertmanagerConfig.receivers.softlayer-finance-page={json.dumps(webhook)}",
        ],
    )
    config = one(docs, "AlertmanagerConfig")
    assert config["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert config["spec"]["route"] == GENERATOR.operator_spec()["route"]
    assert config["spec"]["inhibitRules"] == GENERATOR.operator_spec()["inhibitRules"]
    receivers = {r["name"]: r for r in config["spec"]["receivers"]}
    assert set(receivers) == set(GENERATOR.RECEIVERS)
    assert receivers["softlayer-finance-page"]["webhookConfigs"] == webhook["webhookConfigs"]
    assert set(receivers["softlayer-finance"]) == {"name"}


def test_operator_spec_matches_the_alertmanager_file() -> None:
    """The AlertmanagerConfig spec says what alertmanager.yml says, in the operator's format."""
    plain = yaml.safe_load(artifacts.ALERTMANAGER_FILE.read_text(encoding="utf-8"))
    spec = GENERATOR.operator_spec()
    route = plain["route"]["routes"][0]
    assert spec["route"]["groupBy"] == route["group_by"]
    assert [r["receiver"] for r in spec["route"]["routes"]] == [
        r["receiver"] for r in route["routes"]
    ]
    assert len(spec["inhibitRules"]) == len(plain["inhibit_rules"])
    for operator, rule in zip(spec["inhibitRules"], plain["inhibit_rules"], strict=True):
        (source,) = operator["sourceMatch"]
        assert (
            f'{source["name"]}{source["matchType"]}"{source["value"]}"'
            == rule["source_matchers"][0]
        )
        assert operator.get("equal", []) == rule.get("equal", [])


def test_bad_mixin_values_are_rejected(helm: Helm, tmp_path: Path) -> None:
    """A job selector that is not PromQL matchers, or a URL with spaces, fails naming the key."""
    for key, value in (("mixin.jobSelector", "softlayer"), ("mixin.runbookUrl", "not a url")):
        result = helm.template(sets=[*ENABLE], set_json=[ACCOUNTS, f"{key}={json.dumps(value)}"])
        assert result.returncode != 0
        assert key.split(".")[1] in result.stderr
