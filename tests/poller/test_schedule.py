"""Each account on its own schedule: a hanging or huge account never delays another.

The proofs count poll events (snapshots published per account), never wall time: while one
account's poll is held by the simulator's hang fault, the others must complete poll after
poll, which lock-step cycles could not do at all.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import structlog

from exporter.config import Config
from exporter.poller import Poller
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import AccountSnapshot, ExporterState, Source
from tests.helpers.simapi import make_config

GET_OBJECT = "SoftLayer_Account::getObject"
GET_INVOICES = "SoftLayer_Account::getInvoices"
GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
#: Anything waited on here that takes this long is a failure, not a timing claim.
DEADLINE = 60.0
SPEC = AccountSpec(items=30, pending_invoice=True, invoice_months=3)


class Published:
    """Counts the snapshots the poller publishes per account and wakes waiters on each."""

    def __init__(self, poller: Poller) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        publish = poller.state.publish

        def counting(snapshot: AccountSnapshot) -> None:
            publish(snapshot)
            self.counts[snapshot.name] += 1
            asyncio.get_running_loop().create_task(self._notify())

        poller.state.publish = counting  # type: ignore[method-assign]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, account: str, count: int) -> None:
        """Wait until ``account`` has published ``count`` snapshots in all."""

        async def waiting() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.counts[account] >= count)

        await asyncio.wait_for(waiting(), DEADLINE)


def with_intervals(config: Config, **intervals: float) -> Config:
    """The config with some accounts' own poll intervals set."""
    accounts = tuple(
        replace(a, poll_interval_seconds=intervals[a.name]) if a.name in intervals else a
        for a in config.accounts
    )
    return replace(config, accounts=accounts)


async def running(poller: Poller) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(poller.run(stop))


async def stopped(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, DEADLINE)


async def test_a_hanging_and_a_huge_account_never_delay_a_healthy_one() -> None:
    """acct0 hangs in getObject (held by the simulator), acct2 answers a total of 1e9 items:
    acct1 completes five polls meanwhile, acct0 none, acct2 several (each down, incomplete)."""
    scenario = Scenario.generate(seed=41, accounts=[SPEC] * 3)
    hanging, _, huge = scenario.accounts
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        sim.add_fault(FaultRule(kind=FaultKind.HANG, method=GET_OBJECT, account_id=hanging.id))
        sim.add_fault(
            FaultRule(kind=FaultKind.ABSURD_TOTAL_ITEMS, method=GET_ITEMS, account_id=huge.id)
        )
        config = make_config(
            sim,
            scenario,
            poll_interval_seconds=0.05,
            poll_jitter=0.0,
            request_timeout_seconds=DEADLINE,
            poll_timeout_seconds=DEADLINE,
        )
        poller = Poller(config, ExporterState(("acct0", "acct1", "acct2")))
        published = Published(poller)
        with structlog.testing.capture_logs():
            stop, task = await running(poller)
            try:
                await asyncio.wait_for(sim.state.hang_started.wait(), DEADLINE)
                start = published.counts["acct1"]
                await published.until("acct1", start + 5)
                await published.until("acct2", 2)
                assert published.counts["acct0"] == 0  # still in its first, hanging poll
            finally:
                await stopped(stop, task)
        assert poller.state.accounts["acct1"].up
        items = poller.state.accounts["acct2"].sources[Source.NEXT_INVOICE_ITEMS]
        assert (items.up, items.last_error_reason) == (False, "incomplete")
        assert not poller.state.first_cycle_done  # acct0 never finished a poll
        await poller.aclose()


async def test_the_deadline_cuts_a_hanging_poll_and_keeps_the_last_good_data() -> None:
    """A poll past poll_timeout is cancelled: what finished is fresh, the hanging source is
    down with reason timeout and its last good data, one timeout counted, one poll event."""
    scenario = Scenario.generate(seed=42, accounts=[SPEC])
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(
            sim, scenario, request_timeout_seconds=DEADLINE, poll_timeout_seconds=0.5
        )
        poller = Poller(config, ExporterState(("acct0",)))
        try:
            assert await poller.poll_once()
            good = poller.state.accounts["acct0"]
            sim.add_fault(FaultRule(kind=FaultKind.HANG, method=GET_INVOICES))
            with structlog.testing.capture_logs() as events:
                assert not await poller.poll_once()
        finally:
            await poller.aclose()
    snapshot = poller.state.accounts["acct0"]
    invoices = snapshot.sources[Source.INVOICES]
    assert (invoices.up, invoices.last_error_reason) == (False, "timeout")
    assert invoices.last_error == "poll deadline of 0.5s passed"
    assert invoices.last_success == good.sources[Source.INVOICES].last_success
    assert snapshot.invoices == good.invoices
    for source in set(Source) - {Source.INVOICES}:
        assert snapshot.sources[source].up, source
        assert snapshot.sources[source].last_success == snapshot.sources[source].last_attempt
    assert poller.api_stats.errors[("acct0", "timeout")] == 1
    (event,) = [e for e in events if e["event"] == "poll"]
    assert (event["outcome"], event["deadline_seconds"]) == ("partial", 0.5)
    assert event["errors"] == [
        {"error": "poll deadline of 0.5s passed", "reason": "timeout", "sources": ["invoices"]}
    ]


async def test_each_account_polls_at_its_own_interval() -> None:
    """acct0 every 50 ms, acct1 every hour: acct0 polls again and again, acct1 once."""
    scenario = Scenario.generate(seed=43, accounts=[SPEC, SPEC])
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = with_intervals(
            make_config(sim, scenario, poll_jitter=0.0), acct0=0.05, acct1=3600.0
        )
        poller = Poller(config, ExporterState(("acct0", "acct1")))
        published = Published(poller)
        stop, task = await running(poller)
        try:
            await published.until("acct1", 1)
            await published.until("acct0", published.counts["acct0"] + 4)
            assert published.counts["acct1"] == 1
        finally:
            await stopped(stop, task)
            await poller.aclose()
    assert poller.state.first_cycle_done
    first = poller.state.accounts["acct1"]
    assert first.next_poll is not None
    # Due an interval after the poll started (the poll's "now" is read just after).
    assert 3599.0 < first.next_poll - first.sources[Source.ACCOUNT].last_attempt <= 3600.0


async def test_poll_once_polls_every_account_once() -> None:
    """poll_once (--once, tests) publishes exactly one snapshot per account."""
    scenario = Scenario.generate(seed=44, accounts=[SPEC, SPEC, SPEC])
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        poller = Poller(make_config(sim, scenario), ExporterState(("acct0", "acct1", "acct2")))
        published = Published(poller)
        try:
            assert await poller.poll_once()
        finally:
            await poller.aclose()
    assert published.counts == {"acct0": 1, "acct1": 1, "acct2": 1}
    assert poller.state.first_cycle_done


async def test_errors_of_one_cause_are_listed_once_in_the_poll_event() -> None:
    """An unreachable endpoint fails every source for one cause: the poll event lists that
    error once, with all five sources (not the same message five times)."""
    scenario = Scenario.generate(seed=45, accounts=[SPEC])
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(sim, scenario)
    # The simulator has stopped: connection refused.
    poller = Poller(config, ExporterState(("acct0",)))
    try:
        with structlog.testing.capture_logs() as events:
            assert not await poller.poll_once()
    finally:
        await poller.aclose()
    (event,) = [e for e in events if e["event"] == "poll"]
    assert event["outcome"] == "failed"
    (group,) = event["errors"]
    assert group["reason"] == "network"
    assert group["sources"] == sorted(s.value for s in Source)
    assert "Connection refused" in group["error"]
