"""The chart's rules and dashboards are byte-identical copies of grafana/'s: one source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.deploy.chart import CHART, ROOT

SYNC = ROOT / "scripts" / "sync-chart-files"
RULES = Path("grafana/alerts/softlayer-billing.rules.yml")
FILES = Path("helm/softlayer-billing-exporter/files")


def _sync(*args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SYNC), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_chart_copies_equal_grafana_files() -> None:
    """Rules file and every dashboard in files/ equal grafana/'s byte for byte, none extra."""
    assert (CHART / "files" / RULES.name).read_bytes() == (ROOT / RULES).read_bytes()
    sources = {p.name: p.read_bytes() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    copies = {p.name: p.read_bytes() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert copies == sources
    result = _sync("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def _tree(root: Path) -> None:
    (root / RULES.parent).mkdir(parents=True)
    (root / RULES).write_text("groups: []\n", encoding="utf-8")
    dashboards = root / "grafana" / "dashboards"
    dashboards.mkdir()
    (dashboards / "overview.json").write_text('{"uid": "a"}\n', encoding="utf-8")
    (dashboards / "categories.json").write_text('{"uid": "b"}\n', encoding="utf-8")
    (root / FILES / "dashboards").mkdir(parents=True)
    (root / FILES / RULES.name).write_text("groups: [old]\n", encoding="utf-8")
    (root / FILES / "dashboards" / "overview.json").write_text('{"uid": "a"}\n', encoding="utf-8")
    (root / FILES / "dashboards" / "removed.json").write_text("{}\n", encoding="utf-8")


def test_sync_script_reports_then_fixes_drift(tmp_path: Path) -> None:
    """--check lists changed, missing and stale copies and exits 1; a sync makes them equal."""
    _tree(tmp_path)
    check = _sync("--check", str(tmp_path))
    assert check.returncode == 1
    assert f"differs: {FILES}/{RULES.name}" in check.stdout
    assert f"differs: {FILES}/dashboards/categories.json" in check.stdout
    assert f"stale: {FILES}/dashboards/removed.json" in check.stdout
    assert "overview.json" not in check.stdout
    assert (tmp_path / FILES / RULES.name).read_text(encoding="utf-8") == "groups: [old]\n"

    assert _sync(str(tmp_path)).returncode == 0
    assert (tmp_path / FILES / RULES.name).read_bytes() == (tmp_path / RULES).read_bytes()
    copies = sorted(p.name for p in (tmp_path / FILES / "dashboards").iterdir())
    assert copies == ["categories.json", "overview.json"]
    again = _sync("--check", str(tmp_path))
    assert again.returncode == 0, again.stdout


def test_sync_script_refuses_without_grafana(tmp_path: Path) -> None:
    """Without grafana/ the script exits 2 with a message instead of deleting the chart's copies."""
    result = _sync(str(tmp_path))
    assert result.returncode == 2
    assert "not a repository root?" in result.stderr
