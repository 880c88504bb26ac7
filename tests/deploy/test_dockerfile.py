"""The Dockerfile lints clean and keeps the properties the image promises."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import require_tool
from tests.deploy.dockerfile import DOCKERFILE, ROOT, exec_form, stages

PORT = "29610"


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("hadolint"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_passes() -> None:
    """hadolint reports nothing for the Dockerfile."""
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint has teeth: a latest tag, ADD, shell-form ENTRYPOINT and cached pip are flagged."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nADD . /src\nRUN pip install /src\nENTRYPOINT exporter\n",
        encoding="utf-8",
    )
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3020", "DL3042", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_every_ignored_rule_is_justified() -> None:
    """A `hadolint ignore=` comment only ever comes with a reason on the same line."""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if "hadolint ignore=" in line:
            assert re.search(r"ignore=\S+\s+\S+", line), f"unjustified: {line}"


def test_multi_stage_on_one_pinned_base() -> None:
    """A build stage and a runtime stage, both on the same exact Python 3.11 slim tag."""
    build, runtime = stages()
    assert build.alias is not None
    assert build.image == runtime.image
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", runtime.image)


def test_runtime_stage_copies_only_the_venv() -> None:
    """The runtime image gets the venv from the build stage and nothing from the context."""
    build, runtime = stages()
    assert runtime.args("COPY") == [f"--from={build.alias} /opt/venv /opt/venv"]
    assert runtime.args("ADD") == []
    assert runtime.args("RUN") == []


def test_runs_as_numeric_non_root_user() -> None:
    """USER is a numeric uid:gid other than 0, and it is set before the entrypoint runs."""
    _, runtime = stages()
    (user,) = runtime.args("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0


def test_read_only_root_ready_environment() -> None:
    """No bytecode writes at run time, unbuffered logs, the venv first on PATH."""
    _, runtime = stages()
    env = " ".join(runtime.args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert runtime.args("VOLUME") == []


def test_entrypoint_is_the_console_script() -> None:
    """Exec-form ENTRYPOINT is the project's console script; CMD only adds default flags."""
    _, runtime = stages()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (entrypoint,) = runtime.args("ENTRYPOINT")
    assert exec_form(entrypoint) == ["softlayer-billing-exporter"]
    assert "softlayer-billing-exporter" in project["project"]["scripts"]
    (cmd,) = runtime.args("CMD")
    assert all(flag.startswith("--") for flag in exec_form(cmd))


def test_healthcheck_follows_the_configured_port() -> None:
    """HEALTHCHECK is exec form, runs exporter.healthcheck (no port baked in), not curl."""
    _, runtime = stages()
    (health,) = runtime.args("HEALTHCHECK")
    options, _, command = health.partition("CMD ")
    assert "--timeout=" in options
    assert exec_form(command) == ["python", "-m", "exporter.healthcheck"]
    assert PORT not in health
    assert "curl" not in health
    assert runtime.args("EXPOSE") == [PORT]


def test_oci_labels() -> None:
    """The image carries the standard OCI labels, version included."""
    _, runtime = stages()
    labels = " ".join(runtime.args("LABEL"))
    for key in ("title", "description", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_admits_only_the_build_inputs() -> None:
    """.dockerignore excludes everything but what the build stage copies."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    build, _ = stages()
    copied = {
        source
        for args in build.args("COPY")
        for source in args.split()[:-1]
        if not source.startswith("--")
    }
    assert admitted == copied
    for source in copied:
        assert (ROOT / source).exists(), source
