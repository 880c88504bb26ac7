"""Soak: many poll cycles against a changing simulated account, resources stay flat.

In process, so the measurements are of the code under test: a Poller polls the simulator
cycle after cycle while the scenario changes between cycles (items added and cancelled, an
invoice opened and paid every 100 cycles) and the exporter's HTTP server is scraped after
every cycle. After a warm-up, the open file descriptors and asyncio tasks must come back to
the baseline exactly and RSS growth stay under a bound a real leak would break. The figures
are printed and recorded in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import resource
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import structlog

from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.exposition import Exposition
from exporter.logs import configure_logging
from exporter.poller import Poller
from exporter.server import create_app, start_server
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState

from .conftest import parse_samples, value

WARMUP_CYCLES = 50


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Warnings only: thousands of captured poll lines would be memory the test itself holds."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(level="warning", fmt="json")
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def rss_bytes() -> int:
    """Resident set size now (not the peak), from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tasks() -> int:
    return len(asyncio.all_tasks())


async def soak(cycles: int, rss_bound_bytes: int) -> dict[str, int]:
    scenario = Scenario.generate(
        seed=21,
        accounts=[
            AccountSpec(items=30, pending_invoice=False, invoice_months=6),
            AccountSpec(items=10, pending_invoice=True, invoice_months=3),
        ],
    )
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, latency_seconds=0.0, rate_limit_per_second=None
    ) as sim:
        names = ("changing", "steady")
        config = Config(
            accounts=tuple(
                AccountConfig(
                    name,
                    sim.endpoint,
                    AuthConfig(AuthMethod.CLASSIC, Secret(acct.api_key), username=acct.username),
                )
                for name, acct in zip(names, scenario.accounts, strict=True)
            ),
            max_requests_per_second=10_000.0,
            retry=RetryConfig(attempts=1),
        )
        state = ExporterState(names)
        poller = Poller(config, state)
        exposition = Exposition(state, poller.api_stats, config)
        runner, urls = await start_server(create_app(state, exposition), "127.0.0.1", 0)
        metrics_url = urls[0].rstrip("/") + "/metrics"
        changing = scenario.accounts[0].id
        added: list[int] = []
        figures: dict[str, int] = {}
        try:
            async with aiohttp.ClientSession() as session:
                for cycle in range(WARMUP_CYCLES + cycles):
                    if cycle == WARMUP_CYCLES:
                        gc.collect()
                        figures |= {"rss_start": rss_bytes(), "fds_start": open_fds()}
                        figures["tasks_start"] = tasks()
                    # Items churn every cycle; an invoice is opened and paid once per 100
                    # cycles, so the account keeps changing but its data does not grow
                    # without bound (growth of the data itself is not a leak).
                    if cycle % 100 == 2:
                        scenario.open_pending_invoice(changing, amount=Decimal(cycle))
                    elif cycle % 100 == 3:
                        scenario.pay_pending_invoice(changing)
                    elif added:
                        scenario.cancel_billing_item(changing, added.pop())
                    else:
                        added.append(
                            scenario.add_billing_item(
                                changing,
                                category_code="guest_core",
                                recurring_fee=Decimal("12.5"),
                                hourly=True,
                            )
                        )
                    assert await poller.poll_once(), f"cycle {cycle} failed"
                    await exposition.refreshed()
                    async with session.get(metrics_url) as resp:
                        assert resp.status == 200
                        samples = parse_samples(await resp.text())
                    # The exporter follows the changes: the served pre-tax total is the truth.
                    truth = scenario.truth(changing)
                    assert value(
                        samples, "softlayer_next_invoice_pre_tax_usd", account="changing"
                    ) == float(truth.next_invoice_pre_tax)
                    assert value(
                        samples, "softlayer_pending_invoice_present", account="changing"
                    ) == float(truth.pending_invoice is not None)
                gc.collect()
                figures |= {"rss_end": rss_bytes(), "fds_end": open_fds(), "tasks_end": tasks()}
        finally:
            await runner.cleanup()
            await poller.aclose()
    figures["cycles"] = cycles
    figures["rss_growth"] = figures["rss_end"] - figures["rss_start"]
    print(f"\nsoak report: {json.dumps(figures)}")
    assert figures["fds_end"] == figures["fds_start"], figures
    assert figures["tasks_end"] == figures["tasks_start"], figures
    assert figures["rss_growth"] < rss_bound_bytes, figures
    return figures


async def test_soak_short() -> None:
    """300 cycles with changes between them: fds and tasks back to baseline, RSS bounded."""
    await soak(300, rss_bound_bytes=16 * 1024 * 1024)


@pytest.mark.slow
async def test_soak_thousands_of_cycles() -> None:
    """5000 cycles with changes between them: fds and tasks flat, RSS growth bounded."""
    await soak(5000, rss_bound_bytes=32 * 1024 * 1024)
