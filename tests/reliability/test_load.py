"""Load: 200 concurrent scrapers against the real exporter process while it keeps polling.

The load comes from tests/reliability/loadgen.py in its own process; the exporter polls the
simulator every second throughout, and the load lasts until every account completed two
more polls under it. Asserted: no failed request, every account up afterwards. The p99 and
throughput are printed (and recorded in docs/reliability.md), never asserted: speed goals
belong to benchmarks/.
"""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.exposition import Exposition
from exporter.poller import Poller
from exporter.server import create_app, start_server
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState

from .conftest import (
    DEADLINE_SECONDS,
    ExporterProcess,
    account_yaml,
    classic_auth,
    fast_header,
    parse_samples,
    value,
    write_config,
)

pytestmark = pytest.mark.e2e

CONCURRENCY = 200


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(
        seed=5,
        accounts=[
            AccountSpec(items=60, pending_invoice=True, invoice_months=12),
            AccountSpec(items=20, pending_invoice=False, invoice_months=12),
        ],
    )


@pytest.fixture(name="sim_rate_limit")
def _sim_rate_limit() -> int:
    """The simulated API's rate limit: low, as a real account's can be."""
    return 50


async def load(tmp_path: Path, sim: SimulatorServer, scenario: Scenario, seconds: float) -> None:
    env = {}
    accounts = []
    for index, acct in enumerate(scenario.accounts):
        env[f"SL_KEY_{index}"] = acct.api_key
        accounts.append(
            account_yaml(
                f"acct{index}", sim.endpoint, classic_auth(acct.username, f"SL_KEY_{index}")
            )
        )
    config = write_config(tmp_path / "config.yaml", accounts, fast_header(10))
    names = ["acct0", "acct1"]
    # Above the default bound of 40 requests at once, which would answer the excess 503.
    proc = ExporterProcess(config, env, "--web.max-requests", str(CONCURRENCY))
    async with proc, aiohttp.ClientSession() as session:
        await proc.more_polls(names, 1)
        polls_before = {name: len(proc.polls(name)) for name in names}
        gen = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.loadgen",
            proc.url + "/metrics",
            "--concurrency",
            str(CONCURRENCY),
            "--duration",
            str(seconds + DEADLINE_SECONDS),
            "--until-eof",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        try:
            # The load lasts ``seconds`` (its length, not a synchronisation) and, on top, until
            # every account finished two more polls under it: polls keep running under load.
            await asyncio.sleep(seconds)
            await proc.wait_for(
                lambda: all(len(proc.polls(n)) >= polls_before[n] + 2 for n in names)
            )
        finally:
            assert gen.stdin is not None
            gen.stdin.close()
        out, _ = await asyncio.wait_for(gen.communicate(), DEADLINE_SECONDS)
        assert gen.returncode == 0
        report = json.loads(out)
        polls_during = len(proc.polls("acct0")) - polls_before["acct0"]
        print(f"\nload report: {json.dumps({**report, 'polls_during_load': polls_during})}")
        assert report["failures"] == 0, report["failure_samples"]
        assert report["requests"] >= CONCURRENCY
        samples = await proc.scrape(session)
        for name in names:
            assert value(samples, "softlayer_up", account=name) == 1
        assert await proc.terminate() == 0


async def test_200_scrapers_short(tmp_path: Path, sim: SimulatorServer, scenario: Scenario) -> None:
    """3 s of 200 concurrent scrapers while polls run: not one failed request."""
    await load(tmp_path, sim, scenario, 3.0)


@pytest.mark.slow
async def test_200_scrapers_for_20_seconds(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """The load target: 20 s of 200 concurrent scrapers while polls run, no failure."""
    await load(tmp_path, sim, scenario, 20.0)


async def test_rendering_ahead_never_serves_an_older_poll(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """Concurrent scrapes get the same, complete exposition, and once the exposition has
    caught up with a poll (what /readyz waits for) every scrape sees that poll's data."""
    acct = scenario.accounts[1]
    config = Config(
        accounts=(
            AccountConfig(
                "acct1",
                sim.endpoint,
                AuthConfig(AuthMethod.CLASSIC, Secret(acct.api_key), username=acct.username),
            ),
        ),
        retry=RetryConfig(attempts=1),
    )
    state = ExporterState(("acct1",))
    poller = Poller(config, state)
    exposition = Exposition(state, poller.api_stats, config)
    runner, urls = await start_server(create_app(state, exposition), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:

            async def pending() -> float:
                async with session.get(urls[0].rstrip("/") + "/metrics") as resp:
                    samples = parse_samples(await resp.text())
                return value(samples, "softlayer_pending_invoice_present", account="acct1")

            assert await poller.poll_once()
            await exposition.refreshed()
            bodies = await asyncio.gather(*(pending() for _ in range(50)))
            assert set(bodies) == {0.0}
            scenario.open_pending_invoice(acct.id, amount=Decimal("5000"))
            assert await poller.poll_once()
            await exposition.refreshed()
            assert await pending() == 1.0
    finally:
        await runner.cleanup()
        await poller.aclose()
