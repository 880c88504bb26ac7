"""The chart renders, lints and validates for every ci/*-values.yaml, and is hardened."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from exporter.config import load_config
from tests.deploy.chart import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    Helm,
    by_kind,
    exporter_config,
    one,
)
from tests.deploy.conftest import ci_path

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SECRET_MOUNT = "/etc/softlayer-billing-exporter/secrets"


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]  # rendered YAML
    (container,) = containers
    return container


def _ci_values(name: str) -> dict[str, Any]:
    values = yaml.safe_load(ci_path(name).read_text(encoding="utf-8"))
    assert isinstance(values, dict)
    return values


def test_every_variant_is_covered() -> None:
    """ci/ holds the documented variants, so a renamed file is not silently dropped."""
    names = {path.name for path in (CHART / "ci").glob("*-values.yaml")}
    assert names == {
        "default-values.yaml",
        "multi-account-values.yaml",
        "monitoring-values.yaml",
        "networkpolicy-values.yaml",
        "web-config-tls-values.yaml",
    }


def test_helm_lint_strict(helm: Helm, variant: str) -> None:
    """`helm lint --strict` passes for the variant (warnings count as failures)."""
    result = helm.run("lint", "--strict", str(CHART), "--values", str(ci_path(variant)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_core_objects_pass_kubernetes_validate_strict(
    rendered: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    """Every non-CRD object passes `kubernetes-validate --strict` (oldest and current k8s)."""
    core = [doc for doc in rendered[variant] if doc["kind"] not in CRD_KINDS]
    manifest = tmp_path / "core.yaml"
    manifest.write_text(yaml.safe_dump_all(core), encoding="utf-8")
    for version in KUBE_VERSIONS:
        result = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, str(manifest)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" passed for resource ") == len(core), result.stdout


def test_kubernetes_validate_catches_a_broken_object(tmp_path: Path) -> None:
    """The validator run above does reject a malformed Deployment (the check has teeth)."""
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "x"},
                "spec": {"replicas": "one", "selector": {}, "template": {}},
            }
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


def test_objects_are_namespaced_and_labelled(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """Every object lands in the release namespace with the standard app.kubernetes.io labels."""
    for doc in rendered[variant]:
        meta = doc["metadata"]
        assert meta["namespace"] == NAMESPACE, doc["kind"]
        assert meta["labels"]["app.kubernetes.io/name"] == "softlayer-billing-exporter"
        assert meta["labels"]["app.kubernetes.io/instance"] == "sbe"


def test_pod_is_hardened(rendered: dict[str, list[dict[str, Any]]], variant: str) -> None:
    """Numeric non-root user, read-only root, no escalation, no capabilities, seccomp, no token."""
    docs = rendered[variant]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = _container(docs)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int)
    assert context["runAsUser"] > 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    (account,) = by_kind(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_resources_are_set(rendered: dict[str, list[dict[str, Any]]], variant: str) -> None:
    """The container requests CPU and memory and has a memory limit."""
    resources = _container(rendered[variant])["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_probes(rendered: dict[str, list[dict[str, Any]]], variant: str) -> None:
    """Liveness on /healthz and readiness on /readyz, on the metrics port, in the served scheme."""
    docs = rendered[variant]
    container = _container(docs)
    tls = bool(_ci_values(variant).get("webConfig", {}).get("tls", {}).get("enabled"))
    scheme = "HTTPS" if tls else "HTTP"
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live == {"path": "/healthz", "port": "metrics", "scheme": scheme}
    assert ready == {"path": "/readyz", "port": "metrics", "scheme": scheme}
    assert container["ports"] == [{"name": "metrics", "containerPort": 29610, "protocol": "TCP"}]
    if tls:
        assert any(arg.startswith("--web.config.file=") for arg in container["args"])


def test_no_secret_value_outside_the_secret(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """API keys appear only (base64) in the chart's Secret, never in a ConfigMap or elsewhere."""
    docs = rendered[variant]
    keys = _ci_values(variant).get("secret", {}).get("apiKeys", {})
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in keys.values():
            assert value not in text, f"API key leaked into {doc['kind']}"
            assert base64.b64encode(value.encode()).decode() not in text
    for configmap in by_kind(docs, "ConfigMap"):
        assert "api_key:" not in str(configmap["data"])
        assert "api_key_env" not in str(configmap["data"])
    if keys:
        secret = one(docs, "Secret")
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == keys


def test_config_points_every_account_at_its_mounted_key(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """Each account reads its key from the mounted Secret (key: secretKey, default its name)."""
    docs = rendered[variant]
    config = exporter_config(docs)
    values = _ci_values(variant)
    assert [a["name"] for a in config["accounts"]] == [a["name"] for a in values["accounts"]]
    for account, given in zip(config["accounts"], values["accounts"], strict=True):
        key = given["auth"].get("secretKey", given["name"])
        assert account["auth"]["api_key_file"] == f"{SECRET_MOUNT}/{key}"
        assert account["auth"]["method"] == given["auth"]["method"]
        assert account.get("thresholds") == given.get("thresholds")
    container = _container(docs)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["credentials"]["mountPath"] == SECRET_MOUNT
    assert mounts["credentials"]["readOnly"] is True
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    expected = values.get("existingSecret") or "sbe-softlayer-billing-exporter-credentials"
    assert volumes["credentials"]["secret"]["secretName"] == expected
    config_file = f"--config.file={mounts['config']['mountPath']}/config.yaml"
    assert config_file in container["args"]


def test_rendered_config_is_accepted_by_the_exporter(
    rendered: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    """The exporter's own loader accepts the rendered config.yaml (secret files not read)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(exporter_config(rendered[variant])), encoding="utf-8")
    config = load_config(path, resolve_secrets=False)
    assert [a.name for a in config.accounts] == [a["name"] for a in _ci_values(variant)["accounts"]]


def test_per_account_options_reach_the_config(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """An account's poll_interval, sources and thresholds are passed through to config.yaml."""
    staging = exporter_config(rendered["multi-account-values.yaml"])["accounts"][1]
    assert staging["poll_interval"] == "1h"
    assert staging["sources"] == {"next_invoice_items": False}
    assert staging["thresholds"]["open_invoice_grace"] == "45d"


def test_existing_secret_creates_no_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """With existingSecret the chart renders no Secret and no secret checksum."""
    docs = rendered["multi-account-values.yaml"]
    assert by_kind(docs, "Secret") == []
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/config" in annotations
    assert "checksum/secret" not in annotations


def test_config_change_rolls_the_pods(helm: Helm) -> None:
    """A changed exporter setting or API key changes the pod template's checksum annotations."""
    default = ci_path("default-values.yaml")

    def annotations(*sets: str) -> dict[str, str]:
        docs = helm.render([default], sets)
        result = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        assert isinstance(result, dict)
        return result

    base = annotations()
    changed_config = annotations("config.poll_interval=30m")
    changed_key = annotations("secret.apiKeys.production=rotated-key")
    assert changed_config["checksum/config"] != base["checksum/config"]
    assert changed_config["checksum/secret"] == base["checksum/secret"]
    assert changed_key["checksum/secret"] != base["checksum/secret"]
    assert changed_key["checksum/config"] == base["checksum/config"]


def test_optional_objects_are_off_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The default install renders only the core objects."""
    kinds = sorted(doc["kind"] for doc in rendered["default-values.yaml"])
    assert kinds == ["ConfigMap", "Deployment", "Secret", "Service", "ServiceAccount"]


def test_service_selects_the_pods(rendered: dict[str, list[dict[str, Any]]], variant: str) -> None:
    """The Service's selector matches the pod labels and targets the metrics port."""
    docs = rendered[variant]
    service = one(docs, "Service")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    assert port["port"] == 29610


def test_network_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The NetworkPolicy admits scrapes on the metrics port from the peers, HTTPS/DNS out."""
    docs = rendered["networkpolicy-values.yaml"]
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    peers = _ci_values("networkpolicy-values.yaml")["networkPolicy"]["ingressFrom"]
    assert ingress["from"] == peers
    https, dns = policy["egress"]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert [peer["ipBlock"]["cidr"] for peer in https["to"]] == ["10.0.0.0/8", "161.26.0.0/16"]
    assert {p["port"] for p in dns["ports"]} == {53}


def test_tls_web_config_has_paths_only(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """With TLS the ConfigMap's web-config.yml names the mounted cert files, no key material."""
    docs = rendered["web-config-tls-values.yaml"]
    (configmap,) = [d for d in by_kind(docs, "ConfigMap") if "web-config.yml" in d["data"]]
    web = yaml.safe_load(configmap["data"]["web-config.yml"])
    assert web == {
        "tls_server_config": {
            "cert_file": "/etc/softlayer-billing-exporter/tls/tls.crt",
            "key_file": "/etc/softlayer-billing-exporter/tls/tls.key",
            "min_version": "TLS13",
        }
    }
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "softlayer-billing-exporter-tls"
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["port"] == "https-metrics"


def test_readme_documents_every_value() -> None:
    """The chart README's values table has a row for every key of values.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))

    def keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
        found = set()
        for key, value in tree.items():
            path = f"{prefix}{key}"
            nested = isinstance(value, dict) and value and path not in documented
            found |= keys(value, f"{path}.") if nested else {path}
        return found

    assert keys(values) <= documented, sorted(keys(values) - documented)


def test_existing_web_config_secret(helm: Helm) -> None:
    """webConfig.existingSecret mounts the user's web-config.yml and follows the given scheme."""
    docs = helm.render(
        [ci_path("default-values.yaml")],
        ["webConfig.existingSecret=exporter-web", "webConfig.scheme=https"],
    )
    container = _container(docs)
    assert (
        "--web.config.file=/etc/softlayer-billing-exporter/web/web-config.yml"
        in (container["args"])
    )
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["web-config"] == "/etc/softlayer-billing-exporter/web"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["web-config"]["secret"]["secretName"] == "exporter-web"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    for configmap in by_kind(docs, "ConfigMap"):
        assert "web-config.yml" not in configmap["data"]
