"""Steady-state requests of one account size, in a fresh process: ``python -m benchmarks.steady``.

The exporter (shipped defaults) polls one simulated account on the simulator's billing clock,
in this process, and the simulator counts every request: the first walk, an unchanged poll
in the same hour, one after the hour turned (hourly accrual, projected), one after an item
was added (a walk), and a whole day at a 15-minute interval. For comparison, one poll with
the steady state switched off (``full_walk_interval: 0s``), which is what every poll cost
before. Prints one ``@bench`` JSON line; the figures are exact counts, not timings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from benchmarks.harness import emit, self_usage
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState

#: A mid-cycle moment: for the default seed no anniversary falls in the day measured.
START = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
DAY = timedelta(days=1)


class _Account:
    """The simulated account, its poller and a request-counting poll."""

    def __init__(self, scenario: Scenario, sim: SimulatorServer, config: Config) -> None:
        self.scenario = scenario
        self.sim = sim
        self.poller = Poller(config, ExporterState(("bench",)), clock=scenario.clock.time)
        self.walks: list[dict[str, str]] = []

    async def poll(self) -> int:
        """One poll; returns its requests (the simulator's count) and notes what it walked."""
        self.sim.reset_stats()
        with structlog.testing.capture_logs() as events:
            ok = await self.poller.poll_once()
        if not ok:
            raise RuntimeError(f"a poll failed: {events}")
        (event,) = [e for e in events if e["event"] == "poll"]
        self.walks.append(dict(event.get("walks", {})))
        return self.sim.stats.total

    def check(self) -> str:
        """Compare the served categories and invoice window with the simulator's truth."""
        snapshot = self.poller.state.accounts["bench"]
        truth = self.scenario.truth(self.scenario.accounts[0].id)
        breakdown = snapshot.next_invoice
        problems = []
        if breakdown is None or snapshot.invoices is None:
            return "nothing served"
        served = sum((c.amount_usd for c in breakdown.categories), Decimal(0))
        wanted = sum((c.amount for c in truth.categories.values()), Decimal(0))
        if served != wanted:
            problems.append(f"categories {served} != {wanted}")
        if breakdown.item_count != truth.next_invoice_item_count:
            problems.append(f"items {breakdown.item_count} != {truth.next_invoice_item_count}")
        since = snapshot.invoices.since
        window = sum(1 for inv in truth.invoices if inv.created >= since)
        if sum(snapshot.invoices.counts.values()) != window:
            problems.append("invoice window")
        return "ok" if not problems else "; ".join(problems)


def _config(sim: SimulatorServer, scenario: Scenario, **settings: Any) -> Config:
    acct = scenario.accounts[0]
    auth = AuthConfig(
        method=AuthMethod.CLASSIC, api_key=Secret(acct.api_key), username=acct.username
    )
    account = AccountConfig(name="bench", endpoint=sim.endpoint, auth=auth)
    return Config(accounts=(account,), **settings)


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = AccountSpec(items=args.items, pending_invoice=True, invoice_months=args.invoice_months)
    scenario = Scenario.generate(seed=args.seed, accounts=[spec], now=START)
    account_id = scenario.accounts[0].id
    if scenario.truth(account_id).cycle_end - START < DAY + timedelta(hours=2):
        scenario.advance_to(scenario.truth(account_id).cycle_end + timedelta(minutes=5))
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        # Before: every poll walked every list (the steady state switched off).
        before = _Account(scenario, sim, _config(sim, scenario, full_walk_interval_seconds=0))
        walk_every_poll = await before.poll()
        await before.poller.aclose()

        ours = _Account(scenario, sim, _config(sim, scenario))
        result: dict[str, Any] = {"items": args.items, "walk_every_poll": walk_every_poll}
        try:
            result["first_walk"] = await ours.poll()
            scenario.advance(timedelta(minutes=10))
            result["unchanged_same_hour"] = await ours.poll()
            scenario.advance(timedelta(hours=1))
            result["unchanged_next_hour"] = await ours.poll()
            scenario.add_billing_item(account_id, "server", Decimal("99.5"))
            result["after_a_change"] = await ours.poll()
            result["check_after_change"] = ours.check()
            interval = timedelta(minutes=args.interval_minutes)
            polls = int(DAY / interval)
            ours.walks.clear()
            cpu_before = self_usage().cpu_seconds
            started = time.monotonic()
            day = 0
            for _ in range(polls):
                scenario.advance(interval)
                day += await ours.poll()
            result.update(
                day_polls=polls,
                day_requests=day,
                day_item_walks=sum(1 for w in ours.walks if "next_invoice_items" in w),
                day_invoice_walks=sum(1 for w in ours.walks if "invoices" in w),
                day_wall_seconds=time.monotonic() - started,
                day_cpu_seconds=self_usage().cpu_seconds - cpu_before,
                check=ours.check(),
            )
        finally:
            await ours.poller.aclose()
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure one size and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steady")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--invoice-months", type=int, default=60)
    parser.add_argument("--interval-minutes", type=float, default=15.0)
    args = parser.parse_args(argv)
    result = asyncio.run(_measure(args))
    usage = self_usage()
    result.update(peak_rss_mb=usage.peak_rss_mb, cpu_seconds=usage.cpu_seconds)
    emit(result)
    return 0 if result["check"] == "ok" and result["check_after_change"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
