"""Bad values are rejected with a clear message; the CRD objects match their schemas and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.chart import CHART, ROOT, Helm, by_kind, one
from tests.deploy.conftest import ci_path

SCHEMAS = Path(__file__).parent / "schemas"
CLASSIC = {"method": "classic", "username": "123456_ops@example.com"}


def _account(**fields: Any) -> str:
    account = {"name": "production", "auth": CLASSIC, **fields}
    return "accounts=" + json.dumps([account])


# (id, --set values, --set-json values, words the error must contain)
BAD_VALUES = [
    ("replicas-not-int", ["replicaCount=one"], [], ["replicaCount", "integer"]),
    ("account-name", [], [_account(name="prod uction")], ["accounts.0.name", "pattern"]),
    (
        "inline-api-key",
        [],
        [_account(auth={**CLASSIC, "api_key": "pasted-secret-value"})],
        ["accounts.0.auth", "api_key", "not allowed"],
    ),
    (
        "api-key-env",
        [],
        [_account(auth={**CLASSIC, "api_key_env": "SOFTLAYER_API_KEY"})],
        ["api_key_env", "not allowed"],
    ),
    ("auth-method", [], [_account(auth={"method": "password"})], ["accounts.0.auth.method"]),
    (
        "classic-needs-username",
        [],
        [_account(auth={"method": "classic"})],
        ["accounts.0.auth", "username is required"],
    ),
    ("endpoint", [], [_account(endpoint="api.softlayer.com")], ["accounts.0.endpoint"]),
    (
        "threshold-type",
        [],
        [_account(thresholds={"monthly_budget_usd": "lots"})],
        ["monthly_budget_usd", "number"],
    ),
    ("duration", ["config.poll_interval=15 minutes"], [], ["config.poll_interval", "pattern"]),
    ("unknown-config-key", ["config.pol_interval=15m"], [], ["pol_interval", "not allowed"]),
    ("unknown-top-key", ["replicas=2"], [], ["replicas", "not allowed"]),
    ("rate-over-limit", ["config.max_requests_per_second=80"], [], ["max_requests_per_second"]),
    ("root", ["securityContext.runAsNonRoot=false"], [], ["securityContext.runAsNonRoot"]),
    (
        "escalation",
        ["securityContext.allowPrivilegeEscalation=true"],
        [],
        ["allowPrivilegeEscalation"],
    ),
    ("digest", ["image.digest=latest"], [], ["image.digest", "pattern"]),
    ("log-format", ["logFormat=xml"], [], ["logFormat"]),
    ("cidr", [], ['networkPolicy.egressCidrs=["anywhere"]'], ["networkPolicy.egressCidrs.0"]),
    # Checks a JSON schema cannot express, made by the templates with `fail`:
    ("no-accounts", [], ["accounts=[]"], ["accounts: list at least one SoftLayer account"]),
    (
        "duplicate-names",
        ["existingSecret=keys"],
        [
            "accounts="
            + json.dumps([{"name": "a", "auth": CLASSIC}, {"name": "a", "auth": CLASSIC}])
        ],
        ['accounts[1].name: "a" is used twice'],
    ),
    (
        "missing-key",
        [],
        [_account(name="staging")],
        ["accounts[0] (staging): no API key", "secret.apiKeys.staging", "existingSecret"],
    ),
    (
        "tls-without-secret",
        ["webConfig.tls.enabled=true"],
        [],
        ["webConfig.tls.secretName: required"],
    ),
    (
        "tls-and-existing-web-config",
        ["webConfig.tls.enabled=true", "webConfig.tls.secretName=t", "webConfig.existingSecret=w"],
        [],
        ["webConfig: set either tls.enabled or existingSecret"],
    ),
]


@pytest.mark.parametrize(
    ("sets", "set_json", "words"),
    [pytest.param(s, j, w, id=name) for name, s, j, w in BAD_VALUES],
)
def test_bad_values_are_rejected_clearly(
    helm: Helm, sets: list[str], set_json: list[str], words: list[str]
) -> None:
    """helm refuses the values and names the offending key and the rule, never a secret value."""
    result = helm.template([ci_path("default-values.yaml")], sets, set_json)
    assert result.returncode != 0, result.stdout
    for word in words:
        assert word in result.stderr, result.stderr
    assert "pasted-secret-value" not in result.stderr


def test_values_yaml_and_ci_values_satisfy_the_schema() -> None:
    """values.yaml and every ci variant validate against values.schema.json (draft 7) as well."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(defaults)) == []
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        values = {**defaults, **yaml.safe_load(path.read_text(encoding="utf-8"))}
        errors = [e.message for e in validator.iter_errors(values)]
        assert errors == [], path.name


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it: unknown fields are errors, not pruned."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _crd_validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / f"{name}-v1.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(_strict(schema))


def _crd_errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize(
    ("kind", "schema"),
    [("ServiceMonitor", "servicemonitor"), ("PrometheusRule", "prometheusrule")],
)
def test_crd_objects_match_prometheus_operator_schemas(
    rendered: dict[str, list[dict[str, Any]]], kind: str, schema: str
) -> None:
    """Each rendered ServiceMonitor / PrometheusRule validates against the vendored CRD schema."""
    validator = _crd_validator(schema)
    found = [doc for docs in rendered.values() for doc in by_kind(docs, kind)]
    assert found, f"no ci variant renders a {kind}"
    for doc in found:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert _crd_errors(validator, doc) == []


def test_crd_schema_check_rejects_bad_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The CRD validation has teeth: a bad interval and an unknown field are reported."""
    monitor = one(rendered["monitoring-values.yaml"], "ServiceMonitor")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "5minutes"
    broken["spec"]["endpoints"][0]["scrapeEvery"] = "1m"
    errors = " ".join(_crd_errors(_crd_validator("servicemonitor"), broken))
    assert "5minutes" in errors
    assert "scrapeEvery" in errors


def test_service_monitor_scrapes_the_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The ServiceMonitor selects the Service by label, on its named port, with the values given."""
    docs = rendered["monitoring-values.yaml"]
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("2m", "30s")
    assert endpoint["metricRelabelings"][0]["action"] == "drop"


def test_prometheus_rule_is_the_rules_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The PrometheusRule's spec is exactly the chart's copy of the alert rules file."""
    rule = one(rendered["monitoring-values.yaml"], "PrometheusRule")
    text = (CHART / "files" / "softlayer-billing.rules.yml").read_text(encoding="utf-8")
    # The chart's default job selector is its Service's job (tests/grafana/test_chart_mixin.py
    # covers the other settings): in place of the generator's default, nothing else changes.
    job = 'job="{}"'.format(one(rendered["monitoring-values.yaml"], "Service")["metadata"]["name"])
    text = text.replace('job="softlayer"', job)
    assert rule["spec"] == yaml.safe_load(text)
    assert rule["spec"]["groups"], "the rules file has no groups"
    source = ROOT / "grafana" / "alerts" / "softlayer-billing.rules.yml"
    source_text = source.read_text(encoding="utf-8").replace('job="softlayer"', job)
    assert rule["spec"] == yaml.safe_load(source_text)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_configmap_carries_every_dashboard(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The dashboards ConfigMap has the sidecar label and every files/dashboards/*.json verbatim."""
    (configmap,) = [
        doc
        for doc in by_kind(rendered["monitoring-values.yaml"], "ConfigMap")
        if doc["metadata"]["name"].endswith("-dashboards")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "SoftLayer"}
    files = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert files
    assert configmap["data"] == {path.name: path.read_text(encoding="utf-8") for path in files}
    for text in configmap["data"].values():
        assert isinstance(json.loads(text), dict)
