"""The image's install steps, replayed here: wheel -> fresh venv -> the console script runs.

`docker build` cannot run on this machine (no engine), so this test executes the Dockerfile's
own build-stage RUN command (paths moved under a temporary directory), then starts the
installed console script the way the image's ENTRYPOINT does: `--demo` (embedded simulator),
as the unprivileged user `nobody` when the test runs as root, in a read-only working
directory with a read-only venv, and scrapes it. Not root: the user switch is skipped (the
process runs as the current, already unprivileged user) and the skip is written to the log.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.dockerfile import ROOT, exec_form, stages

pytestmark = pytest.mark.e2e

NOBODY = 65534
STARTUP_SECONDS = 60.0


def _env_pairs(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in args.split())


def _without_write_bits(top: Path) -> None:
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


def _restore_write_bits(top: Path) -> None:
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A world-readable scratch directory (pytest's tmp dirs are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="sbe-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        _restore_write_bits(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(workdir: Path) -> Path:
    """The venv built by the Dockerfile's build stage, replayed outside Docker."""
    build, _ = stages()
    src = workdir / "src"
    src.mkdir()
    # The build context is exactly what the build stage COPYs (and .dockerignore admits).
    for args in build.args("COPY"):
        *sources, _ = args.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, src / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, src / source)
    (run,) = build.args("RUN")
    dist, target = workdir / "dist", workdir / "venv"
    command = run.replace("/opt/venv", str(target)).replace("/dist", str(dist))
    env = dict(os.environ)
    for args in build.args("ENV"):
        env.update(_env_pairs(args))
    # `python` in the image is the base image's 3.11; here, the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (target / "bin" / "softlayer-billing-exporter").is_file()
    _without_write_bits(target)
    return target


def _user_prefix() -> list[str]:
    if os.geteuid() != 0:
        print(f"not root: running as uid {os.geteuid()} (no user switch)")
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop root"
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def _lines(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)  # end of output: the process is exiting


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _metrics_url(process: subprocess.Popen[str]) -> tuple[str | None, list[str]]:
    """The metrics URL the demo prints, or None if it exits first; and the lines read."""
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            process.wait(timeout=30)
            break
        seen.append(line)
        match = re.search(r"metrics:\s+(http://127\.0\.0\.1:\d+)/metrics", line)
        if match:
            return match.group(1), seen
    return None, seen


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_installed_console_script_serves_demo_metrics_unprivileged(
    venv: Path, workdir: Path
) -> None:
    """The venv's entrypoint runs --demo as a non-root user, read-only, and serves metrics."""
    _, runtime = stages()
    readonly = workdir / "readonly-cwd"
    readonly.mkdir()
    readonly.chmod(0o555)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(readonly), "LANG": "C.UTF-8"}
    for args in runtime.args("ENV"):
        env.update({k: v for k, v in _env_pairs(args).items() if k != "PATH"})
    (entrypoint,) = runtime.args("ENTRYPOINT")
    installed = sorted(venv.rglob("*"))
    command = [*_user_prefix(), str(venv / "bin" / exec_form(entrypoint)[0]), "--demo"]
    # A fixed port, as in the image: the health check reads it from the command line. The
    # port is free when chosen but another process may bind it first: then start again.
    for _ in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [*command, "--web.listen-address", f"127.0.0.1:{port}", "--log.format", "json"],
            cwd=readonly,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base, seen = _metrics_url(process)
        if base is not None or '"listen_failed"' not in "".join(seen):
            break
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        assert base is not None, "no metrics URL printed:\n" + "".join(seen)
        if os.geteuid() == 0:
            status = Path(f"/proc/{process.pid}/status").read_text(encoding="utf-8")
            uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE)
            assert uids is not None
            assert {int(uid) for uid in uids.group(1).split()} == {NOBODY}

        # Ready once the first poll cycle against the embedded simulator has finished.
        while _get(f"{base}/readyz")[0] != 200:
            assert time.monotonic() < deadline, "never ready:\n" + "".join(seen)
            assert process.poll() is None, "exited:\n" + "".join(seen)
            time.sleep(0.2)
        assert _get(f"{base}/healthz")[0] == 200
        status_code, body = _get(f"{base}/metrics")
        assert status_code == 200
        assert re.search(r'^softlayer_up\{account="demo"\} 1(\.0)?$', body, re.MULTILINE), body
        assert "softlayer_exporter_build_info{" in body
        assert re.search(r'^softlayer_pending_invoice_present\{account="demo"\} 1', body, re.M)

        # The image's HEALTHCHECK command as the same user. It finds the port in the
        # exporter's own flags; in the image the exporter is PID 1, here --pid names it
        # (this machine may run other exporters).
        (health,) = runtime.args("HEALTHCHECK")
        check = exec_form(health.partition("CMD ")[2])
        probe = subprocess.run(
            [*_user_prefix(), str(venv / "bin" / check[0]), *check[1:], "--pid", str(process.pid)],
            cwd=readonly,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr

        # PID 1 in the image gets SIGTERM from `docker stop`: a clean exit 0.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert list(readonly.iterdir()) == []
        assert sorted(venv.rglob("*")) == installed, "files written into the venv at run time"
    finally:
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
