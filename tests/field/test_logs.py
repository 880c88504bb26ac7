"""Logs an operator can work with: the JSON lines the client writes, captured and parsed.

Each test configures logging exactly as the CLI does (``configure_logging``), polls the
simulator over loopback with the real poller, and reads back the JSON lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.logs import configure_logging
from exporter.poller import Poller
from exporter.simulator import FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import ExporterState
from tests.conftest import refused_port
from tests.field.conftest import Certs, Relay, write_config

#: Bearer tokens the simulator issues look like this.
_TOKEN = re.compile(r"sim\.[A-Za-z0-9_-]{20,}")
_FAST = RetryConfig(attempts=2, initial_backoff_seconds=0.001, max_backoff_seconds=0.002)


class Captured:
    """JSON log lines written to a buffer by the CLI's own logging setup."""

    def __init__(self, level: str) -> None:
        self.buffer = io.StringIO()
        configure_logging(level, "json", stream=self.buffer)

    @property
    def text(self) -> str:
        """Everything logged so far."""
        return self.buffer.getvalue()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Parsed lines, optionally only those of one event."""
        parsed = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [e for e in parsed if name is None or e["event"] == name]


def _account(
    sim: SimulatorServer,
    scenario: Scenario,
    method: AuthMethod = AuthMethod.CLASSIC,
    *,
    endpoint: str | None = None,
    key: str | None = None,
) -> AccountConfig:
    acct = scenario.accounts[0]
    if method is AuthMethod.CLASSIC:
        auth = AuthConfig(method, Secret(key or acct.api_key), username=acct.username)
    else:
        auth = AuthConfig(method, Secret(key or acct.iam_api_key), iam_token_url=sim.iam_token_url)
    return AccountConfig("prod", endpoint or sim.endpoint, auth)


def _config(account: AccountConfig, **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "request_timeout_seconds": 5.0,
        "max_requests_per_second": 500.0,
        "page_size": 10,
        "retry": _FAST,
    }
    settings.update(overrides)
    return Config(accounts=(account,), **settings)


@pytest.fixture
async def poll() -> AsyncIterator[Any]:
    """Poll a config once (or ``cycles`` times) with a fresh poller, closed at teardown."""
    pollers: list[Poller] = []

    async def run(config: Config, cycles: int = 1) -> Poller:
        poller = Poller(config, ExporterState(tuple(a.name for a in config.accounts)))
        pollers.append(poller)
        for _ in range(cycles):
            await poller.poll_once()
        return poller

    yield run
    for poller in pollers:
        await poller.aclose()


def _assert_no_secret(text: str, scenario: Scenario) -> None:
    acct = scenario.accounts[0]
    for secret in (acct.api_key, acct.iam_api_key):
        assert secret not in text
    assert not _TOKEN.search(text), "an IAM bearer token was logged"
    assert "Bearer " not in text
    assert "Basic " not in text


async def test_debug_logs_one_event_per_request_with_its_page(
    sim: SimulatorServer, scenario: Scenario, poll: Any
) -> None:
    """--log.level debug: api_request per HTTP attempt (service, method, page, status, time)."""
    logs = Captured("debug")
    sim.reset_stats()
    sim.add_fault(FaultRule(FaultKind.RATE_LIMIT, method="SoftLayer_Account::getInvoices", times=1))
    await poll(_config(_account(sim, scenario, AuthMethod.IAM), page_size=100))
    requests = logs.events("api_request")
    assert len(requests) == sim.stats.total
    for event in requests:
        assert event["account"] == "prod"
        # The latest invoice's lines are a SoftLayer_Billing_Invoice method.
        assert event["service"] in {"SoftLayer_Account", "SoftLayer_Billing_Invoice"}
        assert event["level"] == "debug"
        assert event["duration_seconds"] >= 0
        assert event["attempt"] >= 1
    invoices = [(e["status"], e["attempt"]) for e in requests if e["method"] == "getInvoices"]
    # The look-back window and the recurring-invoice history: one of them met the fault.
    assert sorted(invoices) == [(200, 1), (200, 2), (500, 1)]
    # The account object, then its recurring total again after the item walk.
    objects = [e for e in requests if e["method"] == "getObject"]
    assert [(e["status"], "offset" in e) for e in objects] == [(200, False), (200, False)]
    retries = logs.events("api_retry")
    assert [(e["method"], e["reason"], e["attempt"]) for e in retries] == [
        ("SoftLayer_Account::getInvoices", "rate_limited", 1)
    ]
    assert len(logs.events("iam_token_exchange")) == 1
    _assert_no_secret(logs.text, scenario)


async def test_paged_requests_name_offset_and_limit(
    sim: SimulatorServer, scenario: Scenario, poll: Any
) -> None:
    """Each page of a paged list is its own debug event with offset and limit.

    Pages start ``page_size`` apart and each asks for a few rows more, so that consecutive
    pages overlap by id (the proof that no row was skipped; see docs/reliability.md).
    """
    logs = Captured("debug")
    await poll(_config(_account(sim, scenario), page_size=10))
    items = scenario.truth(scenario.accounts[0].id).next_invoice_item_count
    pages = [
        (e["offset"], e["limit"])
        for e in logs.events("api_request")
        if e["method"] == "getNextInvoiceTopLevelBillingItems"
    ]
    limit = 12  # 10 apart, 2 rows of overlap (the minimum overlap)
    assert sorted(pages) == [(offset, limit) for offset in range(0, items, 10)]
    assert len(pages) > 1


async def test_info_level_has_no_per_request_lines(
    sim: SimulatorServer, scenario: Scenario, poll: Any
) -> None:
    """At info the per-request events are dropped: debug and info differ."""
    logs = Captured("info")
    await poll(_config(_account(sim, scenario)))
    assert logs.events("api_request") == []
    assert [e["event"] for e in logs.events()] == ["poll"]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (AuthMethod.CLASSIC, ["auth method classic", "auth.username", "api_key_env"]),
        (AuthMethod.APIKEY, ["auth method apikey", "IBM Cloud API key", "api_key_file"]),
        (AuthMethod.IAM, ["auth method iam", "IBM Cloud API key", "iam_token_url"]),
    ],
)
async def test_rejected_credentials_say_what_to_check(
    sim: SimulatorServer, scenario: Scenario, poll: Any, method: AuthMethod, expected: list[str]
) -> None:
    """A 401 (or IAM refusal) warns once per streak, naming the auth method and what to check."""
    logs = Captured("info")
    wrong = "0" * 64
    poller = await poll(_config(_account(sim, scenario, method, key=wrong)), cycles=2)
    (warning,) = logs.events("api_failing")  # three calls and two cycles fail: one warning
    assert warning["level"] == "warning"
    assert warning["reason"] == "auth"
    for words in expected:
        assert words in warning["hint"]
    if method is AuthMethod.CLASSIC:
        assert scenario.accounts[0].username in warning["hint"]
    assert poller.api_stats.errors[("prod", "auth")] >= 2
    assert wrong not in logs.text
    _assert_no_secret(logs.text, scenario)


async def test_warning_again_after_recovery(
    sim: SimulatorServer, scenario: Scenario, poll: Any
) -> None:
    """A success ends the streak (api_recovered); the next failure warns again."""
    logs = Captured("info")
    poller = Poller(_config(_account(sim, scenario)), ExporterState(("prod",)))
    try:
        sim.add_fault(FaultRule(FaultKind.UNAUTHORIZED))
        await poller.poll_once()
        sim.clear_faults()
        await poller.poll_once()
        sim.add_fault(FaultRule(FaultKind.UNAUTHORIZED))
        await poller.poll_once()
    finally:
        await poller.aclose()
    sequence = [e["event"] for e in logs.events() if e["event"] != "poll"]
    assert sequence == ["api_failing", "api_recovered", "api_failing"]
    assert logs.events("api_recovered")[0]["reasons"] == ["auth"]


async def test_unreachable_endpoint_is_one_plain_warning(
    scenario: Scenario, sim: SimulatorServer, poll: Any
) -> None:
    """Connection refused on plain http: one warning per streak, no ssl:default, a hint."""
    logs = Captured("info")
    with refused_port() as port:
        endpoint = f"http://127.0.0.1:{port}/rest/v3.1/"
        await poll(_config(_account(sim, scenario, endpoint=endpoint)), cycles=2)
    (warning,) = logs.events("api_failing")
    assert warning["reason"] == "network"
    assert warning["error"].endswith(f"cannot connect to 127.0.0.1:{port}: Connection refused")
    assert warning["endpoint"] == endpoint
    assert "HTTPS_PROXY" in warning["hint"]
    assert "ssl:default" not in logs.text
    assert "ClientConnectorError" not in logs.text
    polls = logs.events("poll")
    assert len(polls) == 2
    assert all(e["outcome"] == "failed" for e in polls)


async def test_untrusted_certificate_names_the_ca_bundle(
    sim: SimulatorServer, scenario: Scenario, certs: Certs, poll: Any
) -> None:
    """A certificate this host does not trust: the TLS reason and SSL_CERT_FILE in the hint."""
    logs = Captured("info")
    async with Relay(sim.port, admit="127.0.0.1", tls=certs.server_context()) as relay:
        endpoint = f"{relay.url}/rest/v3.1/"
        await poll(_config(_account(sim, scenario, endpoint=endpoint)))
    (warning,) = logs.events("api_failing")
    assert warning["reason"] == "network"
    assert f"TLS certificate of 127.0.0.1:{relay.port} is not trusted" in warning["error"]
    assert warning["error"].endswith("unable to get local issuer certificate")
    assert "SSL_CERT_FILE" in warning["hint"]
    assert relay.admitted == 0  # the handshake failed: nothing reached the simulator


async def test_https_to_a_plain_http_port_is_a_handshake_error(
    sim: SimulatorServer, scenario: Scenario, poll: Any
) -> None:
    """https:// against a plain HTTP port: a TLS handshake error, with scheme/port to check."""
    logs = Captured("info")
    endpoint = sim.endpoint.replace("http://", "https://")
    await poll(_config(_account(sim, scenario, endpoint=endpoint)))
    (warning,) = logs.events("api_failing")
    assert f"TLS handshake with 127.0.0.1:{sim.port} failed" in warning["error"]
    assert "scheme and port" in warning["hint"]


@pytest.mark.e2e
async def test_startup_line(tmp_path: Path, sim: SimulatorServer, scenario: Scenario) -> None:
    """The listening line: version, Python, address, accounts, interval, proxies sans password."""
    from exporter import __version__  # noqa: PLC0415

    config = write_config(
        tmp_path / "config.yaml",
        endpoint=sim.endpoint,
        auth={"method": "classic", "username": scenario.accounts[0].username},
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(
        SOFTLAYER_API_KEY=scenario.accounts[0].api_key,
        HTTPS_PROXY="http://alice:pa55word@proxy.example:3128",
        NO_PROXY="127.0.0.1,localhost",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exporter", "--config.file", str(config),
        "--web.listen-address=127.0.0.1:0", "--log.format=json",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    try:
        listening = None
        while listening is None:
            raw = await asyncio.wait_for(process.stderr.readline(), 60)
            assert raw, f"exporter exited before listening: {lines}"
            lines.append(raw.decode())
            record = json.loads(raw)
            if record.get("event") == "listening":
                listening = record
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
    assert listening["version"] == __version__
    assert listening["python"] == ".".join(map(str, sys.version_info[:3]))
    assert listening["listen_address"] == "127.0.0.1:0"
    assert listening["urls"][0].startswith("http://127.0.0.1:")
    assert listening["accounts"] == ["prod"]
    assert listening["poll_interval_seconds"] == 900
    assert listening["https_proxy"] == "http://proxy.example:3128"
    assert listening["no_proxy"] == "127.0.0.1,localhost"
    everything = "".join(lines) + (rest or b"").decode()
    assert "pa55word" not in everything
    assert scenario.accounts[0].api_key not in everything
    assert process.returncode == 0
