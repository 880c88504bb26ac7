"""Fixtures of the server tests: a running exporter app over loopback and TLS material."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.exposition import Exposition
from exporter.server import EXPOSITION, HEADER_TIMEOUT_SECONDS, create_app, start_server
from exporter.snapshot import AccountSnapshot, ExporterState
from exporter.webconfig import WebConfig
from tests.conftest import require_tool
from tests.helpers import builders as b


class FakePoller:
    """Stands in for exporter.poller.Poller where the server, not polling, is under test.

    ``run`` publishes the prepared snapshots when ``release`` is set, then marks the first
    cycle done; ``crash`` makes it die instead.
    """

    def __init__(self, state: ExporterState, *snapshots: AccountSnapshot) -> None:
        self.state = state
        self.snapshots = snapshots
        self.api_stats = b.api_stats()
        self.release = asyncio.Event()
        self.cycle_done = asyncio.Event()
        self.crash = False
        self.stopped = asyncio.Event()
        self.closed = False

    async def run(self, stop: asyncio.Event) -> None:
        try:
            waiters = {asyncio.create_task(self.release.wait()), asyncio.create_task(stop.wait())}
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if stop.is_set():
                return
            if self.crash:
                raise RuntimeError("poller bug")
            for snap in self.snapshots:
                self.state.publish(snap)
            self.state.first_cycle_done = True
            self.cycle_done.set()
            await stop.wait()
        finally:
            self.stopped.set()

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class Running:
    url: str
    poller: FakePoller
    state: ExporterState
    session: aiohttp.ClientSession
    runner: aiohttp.web.AppRunner


async def run_app(
    state: ExporterState,
    poller: FakePoller | None,
    web_config: WebConfig | None = None,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    **options: Any,
) -> tuple[aiohttp.web.AppRunner, str]:
    api_stats = b.api_stats() if poller is None else poller.api_stats
    exposition = Exposition(state, api_stats, b.config())
    app = create_app(state, exposition, poller=poller, web_config=web_config, **options)
    runner, urls = await start_server(
        app, "127.0.0.1", 0, web_config, header_timeout=header_timeout
    )
    return runner, urls[0]


async def refreshed(runner: aiohttp.web.AppRunner) -> None:
    """Wait until what is published now is what /metrics serves."""
    await runner.app[EXPOSITION].refreshed()


@pytest.fixture(name="running")
async def _running() -> AsyncIterator[Running]:
    state = ExporterState(("prod",))
    poller = FakePoller(state, b.full_snapshot())
    runner, url = await run_app(state, poller)
    async with aiohttp.ClientSession() as session:
        yield Running(url, poller, state, session, runner)
    await runner.cleanup()


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        [require_tool("openssl"), *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(name="certs", scope="session")
def _certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=d,
        )
    return Certs(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )
