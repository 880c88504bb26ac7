"""Subprocess plumbing: spawn one benchmark process, talk JSON lines, collect its rusage.

Each contender runs in a fresh interpreter so that ``ru_maxrss`` is its own peak and its CPU
time is not mixed with the simulator's or the driver's. The child reports its own figures on
its last stdout line; :func:`os.wait4` gives the kernel's view of the same process as a
cross-check that does not depend on the child's cooperation.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "ChildProcess",
    "ProcessUsage",
    "emit",
    "peak_rss_mb",
    "proc_cpu_seconds",
    "run_json_child",
    "self_usage",
]

#: The worktree root: children run with it on sys.path so ``-m benchmarks.x`` resolves here.
ROOT = Path(__file__).resolve().parent.parent
#: Prefix of protocol lines on a child's stdout; anything else there (log lines) is ignored.
MARKER = "@bench "


def peak_rss_mb(usage: resource.struct_rusage) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return usage.ru_maxrss / divisor


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds and peak RSS of one finished process, as the kernel accounted them."""

    cpu_seconds: float
    peak_rss_mb: float


def self_usage() -> ProcessUsage:
    """This process's CPU time so far and its peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessUsage(usage.ru_utime + usage.ru_stime, peak_rss_mb(usage))


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) another live process has used, read from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        # The command name may contain spaces; the numeric fields start after its ')'.
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def emit(payload: dict[str, Any]) -> None:
    """Write one protocol line to stdout (used by the children)."""
    sys.stdout.write(MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def child_env() -> dict[str, str]:
    """The environment for children: this interpreter's venv first, the worktree importable."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Children print JSON lines that the driver reads as they come.
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ChildProcess:
    """A long-lived helper process (simulator host, scrape server) driven over JSON lines."""

    def __init__(self, module: str, args: list[str], *, startup_timeout: float = 600.0) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=child_env(),
            cwd=ROOT,
        )
        self.hello = self._read_line(startup_timeout)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def _read_line(self, timeout: float) -> dict[str, Any]:
        del timeout  # readline blocks; a child that dies closes stdout and ends it
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                raise RuntimeError(f"{self.argv[2]} exited with {code} before answering")
            if line.startswith(MARKER):
                break
        result: dict[str, Any] = json.loads(line.removeprefix(MARKER))
        if "error" in result:
            raise RuntimeError(f"{self.argv[2]}: {result['error']}")
        return result

    def request(self, command: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its one-line JSON answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": command, **params}) + "\n")
        self.proc.stdin.flush()
        return self._read_line(600.0)

    def close(self) -> None:
        """Ask the child to quit, then make sure it is gone."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_json_child(
    module: str,
    args: list[str],
    *,
    timeout: float = 3600.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[dict[str, Any], ProcessUsage, float]:
    """Run a one-shot child to completion; return its last JSON line, rusage and wall time.

    ``env`` overrides variables of the children's environment (e.g. PYTHONPATH) and ``cwd``
    the working directory, which ``python -m`` puts first on ``sys.path``.

    ``os.wait4`` returns the rusage of exactly this child, unlike RUSAGE_CHILDREN which
    accumulates (and for ru_maxrss, maximises) over every child ever reaped.
    """
    argv = [sys.executable, "-m", module, *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env={**child_env(), **(env or {})},
        cwd=cwd or ROOT,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    del timeout  # a stuck child is bounded by its own request timeouts
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args[:1])} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(MARKER))
    return result, ProcessUsage(usage.ru_utime + usage.ru_stime, peak_rss_mb(usage)), wall
