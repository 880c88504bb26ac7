"""Fixtures of the field tests: a real forward proxy (Debian tinyproxy), a relay that only the
proxy can pass, a throwaway CA, and the exporter run as an operator runs it (``--once``).

The simulator listens on loopback like everywhere else, but the exporter is pointed at a
:class:`Relay` in front of it that admits connections from one source address only: the
address tinyproxy binds its outgoing connections to (``Bind``, a second loopback address).
A request that bypassed the proxy would come from 127.0.0.1 and be refused, so a successful
poll is itself proof that every connection went through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from tests.conftest import require_tool

#: tinyproxy's outgoing connections come from here; the relay admits nobody else.
PROXY_SOURCE = "127.0.0.3"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
STARTUP_SECONDS = 30.0
RUN_SECONDS = 120.0


@dataclass
class Relay:
    """A TCP relay (TLS-terminating with ``tls``) to ``target_port`` for one source address."""

    target_port: int
    admit: str
    tls: ssl.SSLContext | None = None
    admitted: int = 0
    refused: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        """Base URL of the relay (``https`` when it terminates TLS)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            peer = writer.get_extra_info("peername")[0]
            if peer != self.admit:
                self.refused.append(peer)
                return
            self.admitted += 1
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (ConnectionError, ssl.SSLError):
            pass  # a client that hung up mid-stream; the exporter reports its side
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


@dataclass
class Tinyproxy:
    """A running tinyproxy: its URL and its log (one ``Request`` line per proxied request)."""

    url: str
    log: Path

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged, e.g. ``GET http://host:port/path HTTP/1.1``."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        marker = "): "
        return [
            line.split(marker, 1)[1]
            for line in text.splitlines()
            if "Request (file descriptor" in line and marker in line
        ]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    """True once ``port`` accepts connections; False if the process exited first."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)  # readiness probe of an external process, not a test assertion
    raise AssertionError(f"tinyproxy did not listen on {port} within {STARTUP_SECONDS}s")


@contextlib.contextmanager
def tinyproxy(directory: Path, *extra: str) -> Iterator[Tinyproxy]:
    """Run tinyproxy on a free loopback port, outgoing from PROXY_SOURCE, logging requests."""
    binary = require_tool("tinyproxy")
    log = directory / "tinyproxy.log"
    for _ in range(5):  # another process may take the free port first
        port = free_port()
        conf = directory / "tinyproxy.conf"
        conf.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "Listen 127.0.0.1",
                    f"Bind {PROXY_SOURCE}",
                    "Timeout 60",
                    f'LogFile "{log}"',
                    "LogLevel Info",
                    "MaxClients 64",
                    "Allow 127.0.0.1",
                    "DisableViaHeader Yes",
                    *extra,
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [binary, "-d", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if _wait_listening(process, port):
                yield Tinyproxy(f"http://127.0.0.1:{port}", log)
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raise AssertionError(f"tinyproxy would not start; its log:\n{log.read_text()}")


@dataclass
class Certs:
    """A throwaway CA and a server certificate for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """TLS server context with the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a server certificate (SAN IP:127.0.0.1) made with the openssl CLI."""
    openssl = require_tool("openssl")
    d = tmp_path_factory.mktemp("field-tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=field-ca", "-keyout", "ca.key",
        "-out", "ca.crt")  # fmt: skip
    run("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    ca = ("-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial")
    run("x509", "-req", "-in", "server.csr", *ca, "-days", "2", "-extfile", "server.ext",
        "-out", "server.crt")  # fmt: skip
    return Certs(d / "ca.crt", d / "server.crt", d / "server.key")


@pytest.fixture
def scenario() -> Scenario:
    """One account with a pending invoice and enough items for several pages."""
    return Scenario.generate(seed=13, accounts=[AccountSpec(items=30, pending_invoice=True)])


@pytest.fixture
async def sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    """The simulator on an ephemeral loopback port."""
    async with SimulatorServer(scenario, port=0, rate_limit_per_second=None) as server:
        yield server


@dataclass
class Run:
    """What one ``softlayer-billing-exporter --once`` run left behind."""

    returncode: int
    exposition: str
    events: list[dict[str, Any]]
    stderr: str

    def named(self, event: str) -> list[dict[str, Any]]:
        """Log events with this name."""
        return [e for e in self.events if e.get("event") == event]

    def sample(self, name: str, **labels: str) -> float | None:
        """Value of the one sample of ``name`` whose labels include ``labels``, else None."""
        for line in self.exposition.splitlines():
            if not line.startswith(name + "{") and line.split(" ")[0] != name:
                continue
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None


def write_config(
    path: Path, *, endpoint: str, auth: dict[str, str], page_size: int = 10, attempts: int = 1
) -> Path:
    """A config file for one account ``prod`` (key from SOFTLAYER_API_KEY)."""
    lines = [
        "request_timeout: 10s",
        "max_requests_per_second: 50",
        f"page_size: {page_size}",
        "retry:",
        f"  attempts: {attempts}",
        "  initial_backoff: 1s",
        "  max_backoff: 1s",
        "accounts:",
        "  - name: prod",
        f"    endpoint: {endpoint}",
        "    auth:",
        *(f"      {key}: {json.dumps(value)}" for key, value in auth.items()),
        "      api_key_env: SOFTLAYER_API_KEY",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def run_once(config: Path, api_key: str, **env: str) -> Run:
    """Run the exporter's ``--once`` in a clean proxy environment plus ``env``; parse its output."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARIABLES and k != "SSL_CERT_FILE"
    }
    environment.update(env, SOFTLAYER_API_KEY=api_key)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "--config.file",
        str(config),
        "--once",
        "--log.level=debug",
        "--log.format=json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    text = stderr.decode("utf-8", errors="replace")
    events = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                events.append(record)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode("utf-8"), events, text)
