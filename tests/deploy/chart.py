"""Render the Helm chart with the real helm CLI and pick objects out of the result.

Kept out of conftest.py so test modules import it by name; every test that renders goes
through :func:`helm_env` so helm never writes to the user's home directory.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "softlayer-billing-exporter"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "sbe"
NAMESPACE = "monitoring"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.25.0", "1.37.0")


def helm_env(home: Path) -> dict[str, str]:
    """Environment for helm: caches and config under ``home``, nothing from the user's."""
    env = dict(os.environ)
    for var, sub in (
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ):
        env[var] = str(home / sub)
    env["HOME"] = str(home)
    return env


@dataclass(frozen=True)
class Helm:
    """The helm CLI with an isolated environment."""

    path: str
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run helm; never raises on a non-zero exit (tests assert on it)."""
        return subprocess.run(
            [self.path, *args],
            env=helm_env(self.home),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def template(
        self,
        values: Iterable[Path] = (),
        sets: Iterable[str] = (),
        set_json: Iterable[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``helm template`` of the chart with values files and ``--set`` / ``--set-json``."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for path in values:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        for item in set_json:
            args += ["--set-json", item]
        return self.run(*args)

    def render(
        self,
        values: Iterable[Path] = (),
        sets: Iterable[str] = (),
        set_json: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Render and parse; a render error fails with helm's message."""
        result = self.template(values, sets, set_json)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """All rendered objects of one kind."""
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single rendered object of a kind."""
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def exporter_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The exporter's config.yaml from the chart's (non-dashboard) ConfigMap."""
    (configmap,) = [
        doc for doc in by_kind(docs, "ConfigMap") if "config.yaml" in doc.get("data", {})
    ]
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert isinstance(config, dict)
    return config
