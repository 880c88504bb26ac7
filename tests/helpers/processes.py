"""Run the exporter or the simulator as real processes (the end-to-end tests' one way to)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

#: How long a process may take to start, or a one-shot run to finish, before the test fails.
PROCESS_LIMIT_SECONDS = 30.0
#: How often :func:`poll_until` asks again: a polling period, not a synchronisation point.
POLL_PERIOD_SECONDS = 0.2

T = TypeVar("T")


async def poll_until(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    alive: Callable[[], None],
    report: Callable[[], str],
    deadline: float,
) -> T:
    """Ask ``probe`` until it returns a value (not None); fail the test after ``deadline`` s.

    For what only an HTTP API or a log can tell (a server ready, a query answered). ``alive``
    fails the test as soon as a watched process exited; ``report`` adds its logs to a timeout.
    Connection errors and half-written answers count as "not yet".
    """
    give_up = time.monotonic() + deadline
    last_error: BaseException | None = None
    while time.monotonic() < give_up:
        alive()
        try:
            result = await probe()
        except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            last_error, result = exc, None
        if result is not None:
            return result
        await asyncio.sleep(POLL_PERIOD_SECONDS)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r})\n{report()}")


def _installed(script: str, module: str) -> list[str]:
    """The console script of the venv running the tests, else on PATH, else ``python -m``."""
    here = Path(sys.executable).parent / script
    found = str(here) if here.exists() else shutil.which(script)
    return [found] if found else [sys.executable, "-m", module]


def exporter_command() -> list[str]:
    """The installed ``softlayer-billing-exporter``, else ``python -m exporter``."""
    return _installed("softlayer-billing-exporter", "exporter")


def simulator_command() -> list[str]:
    """The installed ``softlayer-api-simulator``, else its module entry point."""
    return _installed("softlayer-api-simulator", "exporter.simulator.cli")


async def spawn_exporter(
    *args: str, env: dict[str, str], stdout: int = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """Start the exporter with JSON logs on a piped stderr, ``env`` added to ours."""
    return await asyncio.create_subprocess_exec(
        *exporter_command(),
        "--log.format",
        "json",
        *args,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )


async def run_exporter(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the exporter to its end without blocking the loop: exit code, stdout, stderr."""
    proc = await spawn_exporter(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), PROCESS_LIMIT_SECONDS)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.contextmanager
def simulator_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """The simulator's console script on an ephemeral port, with its first JSON line.

    The process is stopped with SIGTERM at the end of the block unless it already exited.
    """
    with subprocess.Popen(
        [*simulator_command(), "--web.listen-address", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            yield process, json.loads(process.stdout.readline())
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=PROCESS_LIMIT_SECONDS)
