"""The command against the simulated SoftLayer API over loopback: --once, --demo, secrets."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load_config
from exporter.demo import DEMO_POLL_INTERVAL_ENV, DEMO_SEED
from exporter.exposition import Exposition
from exporter.poller import Poller
from exporter.server import create_app, start_server
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import ExporterState
from tests.conftest import require_tool
from tests.helpers.builders import PLANTED_KEY
from tests.helpers.processes import run_exporter, spawn_exporter

pytestmark = pytest.mark.e2e

LIMIT_SECONDS = 30.0
SHUTDOWN_LIMIT_SECONDS = 5.0


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(
        seed=3,
        accounts=[
            AccountSpec(items=12, pending_invoice=True, invoice_months=6),
            AccountSpec(items=4, pending_invoice=False, invoice_months=3),
        ],
    )


def write_config(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> tuple[Path, dict[str, str]]:
    """A config for every scenario account, keys passed by environment variable."""
    env: dict[str, str] = {}
    accounts = []
    for index, acct in enumerate(scenario.accounts):
        env[f"SL_KEY_{index}"] = acct.api_key
        accounts.append(
            f"  - name: acct{index}\n    endpoint: {sim.endpoint}\n"
            f"    auth: {{method: classic, username: {json.dumps(acct.username)}, "
            f"api_key_env: SL_KEY_{index}}}\n"
            "    thresholds: {monthly_budget_usd: 1000}\n"
        )
    path = tmp_path / "config.yaml"
    path.write_text(
        "retry: {attempts: 1, initial_backoff: 10ms, max_backoff: 10ms}\n"
        "accounts:\n" + "".join(accounts)
    )
    return path, env


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def promtool_accepts(text: str) -> None:
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class TestOnce:
    async def test_once_succeeds(self, tmp_path, sim, scenario):
        """--once prints an exposition with the scenario's numbers and exits 0."""
        path, env = write_config(tmp_path, sim, scenario)
        code, out, err = await run_exporter("--config.file", str(path), "--once", env=env)
        assert code == 0, err
        values = samples(out)
        truth0 = scenario.truth(scenario.accounts[0].id)
        assert values[("softlayer_up", frozenset({("account", "acct0")}))] == 1
        assert values[("softlayer_up", frozenset({("account", "acct1")}))] == 1
        assert values[
            ("softlayer_account_balance_usd", frozenset({("account", "acct0")}))
        ] == float(truth0.balance)
        assert values[("softlayer_pending_invoice_present", frozenset({("account", "acct0")}))] == 1
        assert values[("softlayer_pending_invoice_present", frozenset({("account", "acct1")}))] == 0
        assert values[
            ("softlayer_next_invoice_pre_tax_usd", frozenset({("account", "acct0")}))
        ] == (float(truth0.next_invoice_pre_tax))
        polls = [json.loads(line) for line in err.splitlines() if '"poll"' in line]
        assert sorted(p["outcome"] for p in polls) == ["ok", "ok"]
        for acct in scenario.accounts:
            assert acct.api_key not in out + err
        promtool_accepts(out)

    async def test_once_fails_when_a_source_fails(self, tmp_path, sim, scenario):
        """--once exits 1 when a source failed, and still prints what it has."""
        sim.add_fault(
            FaultRule(
                kind=FaultKind.INTERNAL_ERROR,
                method="SoftLayer_Account::getInvoices",
                account_id=None,
                times=None,
            )
        )
        path, env = write_config(tmp_path, sim, scenario)
        code, out, _ = await run_exporter("--config.file", str(path), "--once", env=env)
        assert code == 1
        values = samples(out)
        assert (
            values[
                ("softlayer_source_up", frozenset({("account", "acct0"), ("source", "invoices")}))
            ]
            == 0
        )
        assert (
            values[
                ("softlayer_source_up", frozenset({("account", "acct0"), ("source", "account")}))
            ]
            == 1
        )
        promtool_accepts(out)

    async def test_demo_once(self):
        """--demo --once polls the embedded simulator and exits 0 with a valid exposition."""
        code, out, err = await run_exporter("--demo", "--once", env={})
        assert code == 0, err
        values = samples(out)
        assert values[("softlayer_pending_invoice_present", frozenset({("account", "demo")}))] == 1
        promtool_accepts(out)


class TestDemo:
    async def test_demo_serves_and_stops_on_sigterm(self):
        """--demo prints the URLs, serves /metrics, reacts to the admin API, exits 0 on SIGTERM."""
        proc = await spawn_exporter(
            "--demo", "--web.listen-address", "127.0.0.1:0", env={DEMO_POLL_INTERVAL_ENV: "1s"}
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_lines: list[bytes] = []

        async def drain() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                stderr_lines.append(line)

        drainer = asyncio.create_task(drain())
        banner = ""
        try:
            while "simulator admin:" not in banner:
                line = await asyncio.wait_for(proc.stdout.readline(), LIMIT_SECONDS)
                assert line, b"".join(stderr_lines).decode()
                banner += line.decode()
            metrics_url = re.search(r"metrics:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
            assert metrics_url.startswith("http://127.0.0.1:")
            base = metrics_url.removesuffix("/metrics")
            async with aiohttp.ClientSession() as session:
                text = await _wait_for_metric(
                    session, metrics_url, 'softlayer_pending_invoice_present{account="demo"} 1.0'
                )
                assert 'softlayer_up{account="demo"} 1.0' in text
                async with session.get(base + "/") as resp:
                    page = await resp.text()
                assert "demo" in page
                demo_key = (
                    Scenario.generate(
                        seed=DEMO_SEED, accounts=[AccountSpec(items=40, pending_invoice=True)]
                    )
                    .accounts[0]
                    .api_key
                )
                assert demo_key not in text
                assert demo_key not in page
                # The printed admin URL drives the simulator: paying the pending invoice
                # shows up on a later poll.
                admin_url = re.search(r"simulator admin:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
                async with session.get(admin_url) as resp:
                    account_id = (await resp.json())["accounts"][0]["id"]
                pay = f"{admin_url}accounts/{account_id}/pay-pending-invoice"
                async with session.post(pay) as resp:
                    assert resp.status == 200
                await _wait_for_metric(
                    session, metrics_url, 'softlayer_pending_invoice_present{account="demo"} 0.0'
                )
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), SHUTDOWN_LIMIT_SECONDS)
            assert time.monotonic() - started < SHUTDOWN_LIMIT_SECONDS
            await drainer
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert code == 0
        logs = b"".join(stderr_lines).decode()
        assert demo_key not in logs
        assert demo_key not in banner


async def _wait_for_metric(session: aiohttp.ClientSession, url: str, needle: str) -> str:
    """Scrape until ``needle`` shows up (the demo polls every second)."""
    deadline = time.monotonic() + LIMIT_SECONDS
    text = ""
    while time.monotonic() < deadline:
        async with session.get(url) as resp:
            text = await resp.text()
        if needle in text:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{needle!r} not served within {LIMIT_SECONDS}s:\n{text}")


class TestSecrets:
    async def test_planted_key_never_leaks(self, tmp_path, sim, scenario, capsys):
        """A wrong, recognisable key: auth fails, and the key is in no output at all."""
        key_file = tmp_path / "key"
        key_file.write_text(PLANTED_KEY + "\n")
        acct = scenario.accounts[0]
        config_path = tmp_path / "c.yaml"
        config_path.write_text(
            f"retry: {{attempts: 1}}\naccounts:\n  - name: leaky\n    endpoint: {sim.endpoint}\n"
            f"    auth: {{method: classic, username: {json.dumps(acct.username)}, "
            f"api_key_file: {key_file}}}\n"
        )
        # 1. The real command, debug logs, --once: stdout and stderr.
        code, out, err = await run_exporter(
            "--config.file", str(config_path), "--once", "--log.level", "debug", env={}
        )
        assert code == 1
        assert 'reason="auth"' in out
        assert PLANTED_KEY not in out
        assert PLANTED_KEY not in err
        # 2. In process: the served /metrics and landing page, repr and error messages.
        config = load_config(config_path)
        assert PLANTED_KEY not in repr(config)
        state = ExporterState(("leaky",))
        poller = Poller(config, state)
        try:
            assert await poller.poll_once() is False
        finally:
            await poller.aclose()
        errors = [s.last_error or "" for s in state.accounts["leaky"].sources.values()]
        assert any(errors)
        assert not [e for e in errors if PLANTED_KEY in e]
        app = create_app(state, Exposition(state, poller.api_stats, config))
        runner, urls = await start_server(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                for path in ("/metrics", "/", "/healthz", "/readyz"):
                    async with session.get(urls[0] + path) as resp:
                        assert PLANTED_KEY not in await resp.text(), path
        finally:
            await runner.cleanup()
        assert PLANTED_KEY not in repr(state.accounts)
        captured = capsys.readouterr()
        assert PLANTED_KEY not in captured.out + captured.err
