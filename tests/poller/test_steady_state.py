"""Steady state: an unchanged account costs a few requests a poll, and a change still shows.

Every test runs the poller on the simulator's billing clock (``Poller(clock=...)``) over
loopback, counts the simulator's requests, and compares the snapshot with the simulator's
ground truth after each poll. The log's ``walks`` field names each list a poll walked and why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog

from exporter.config import Config
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import AccountSnapshot, ExporterState
from tests.helpers.simapi import assert_matches_truth, make_config, pages

GET_OBJECT = "SoftLayer_Account::getObject"
GET_INVOICES = "SoftLayer_Account::getInvoices"
GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
#: Mid-cycle and mid-hour for seed 31: no anniversary or payment in the hours these tests run.
NOW = datetime(2026, 11, 23, 6, 20, tzinfo=UTC)
SEED = 31


class Run:
    """A poller on the scenario's clock, polling one account, with the log of each poll."""

    def __init__(self, sim: SimulatorServer, scenario: Scenario, config: Config) -> None:
        self.sim = sim
        self.scenario = scenario
        self.acct = scenario.accounts[0]
        self.poller = Poller(config, ExporterState(("acct0",)), clock=scenario.clock.time)
        self.event: MutableMapping[str, Any] = {}

    @property
    def snapshot(self) -> AccountSnapshot:
        return self.poller.state.accounts["acct0"]

    async def poll(self) -> int:
        """Poll once; return the requests it made and check every figure against the truth."""
        self.sim.reset_stats()
        with structlog.testing.capture_logs() as events:
            assert await self.poller.poll_once()
        (self.event,) = [e for e in events if e["event"] == "poll"]
        assert self.event["requests"] == self.sim.stats.total
        assert_matches_truth(self.snapshot, self.scenario, self.acct.id)
        return self.sim.stats.total

    @property
    def walks(self) -> dict[str, str]:
        """The lists the last poll walked, each with its reason."""
        return dict(self.event.get("walks", {}))


@asynccontextmanager
async def running(items: int = 120, **settings: Any) -> AsyncIterator[Run]:
    scenario = Scenario.generate(
        seed=SEED,
        accounts=[AccountSpec(items=items, pending_invoice=True, invoice_months=6)],
        now=NOW,
    )
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        run = Run(sim, scenario, make_config(sim, scenario, **settings))
        try:
            yield run
        finally:
            await run.poller.aclose()


def hourly_items(scenario: Scenario) -> int:
    truth = scenario.truth(scenario.accounts[0].id)
    return sum(c.hourly_items for c in truth.categories.values())


@pytest.mark.parametrize("items", [60, 2500])
async def test_an_unchanged_account_costs_four_requests_a_poll_at_any_size(items: int) -> None:
    """After the first walk, polls of an unchanged account make 4 requests (account object,
    end of the item list, new invoices, open invoices) whether it has 60 or 2,500 items."""
    async with running(items=items, page_size=100) as run:
        first = await run.poll()
        assert run.walks == {"invoices": "first walk", "next_invoice_items": "first walk"}
        assert first >= 3 + pages(items, 100)  # object, window, item pages, total again
        for _ in range(3):
            run.scenario.advance(timedelta(minutes=10))  # still the same hour
            assert await run.poll() == 4
            assert run.walks == {}
            assert run.sim.stats.requests == {GET_OBJECT: 1, GET_ITEMS: 1, GET_INVOICES: 2}


async def test_hourly_accrual_is_projected_exactly_without_a_walk() -> None:
    """Hour after hour the hourly items' month-to-date amounts move; the poll serves them
    exactly (projected from the last walk's rates) and still walks nothing."""
    async with running() as run:
        assert hourly_items(run.scenario) > 0
        await run.poll()
        served = []
        for hours in (1, 1, 3):
            run.scenario.advance(timedelta(hours=hours))
            assert await run.poll() == 4
            assert run.walks == {}
            breakdown = run.snapshot.next_invoice
            assert breakdown is not None
            served.append(sum(c.hourly_usd for c in breakdown.categories))
        assert served[0] < served[1] < served[2]  # the accrual is served, hour by hour


def add_monthly(scenario: Scenario) -> None:
    scenario.add_billing_item(scenario.accounts[0].id, "server", Decimal("123.45"))


def add_hourly(scenario: Scenario) -> None:
    scenario.add_billing_item(scenario.accounts[0].id, "guest_core", Decimal("0.07"), hourly=True)


def item_of(scenario: Scenario, *, hourly: bool) -> int:
    acct = scenario.accounts[0]
    row = next(
        r
        for r in range(acct.item_count)
        if bool(acct.hourly[r]) == hourly and r not in acct.cancelled
    )
    return acct.item_id(row)


def cancel(scenario: Scenario) -> None:
    scenario.cancel_billing_item(scenario.accounts[0].id, item_of(scenario, hourly=False))


def reprice_monthly(scenario: Scenario) -> None:
    acct = scenario.accounts[0]
    scenario.reprice_billing_item(acct.id, item_of(scenario, hourly=False), Decimal("77.7"))


def reprice_hourly(scenario: Scenario) -> None:
    acct = scenario.accounts[0]
    scenario.reprice_billing_item(acct.id, item_of(scenario, hourly=True), Decimal("0.999"))


def swap_equal_totals(scenario: Scenario) -> None:
    """Cancel a monthly item and order another, in another category, for the same amount:
    the item count and every account total stay exactly as they were."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    item = item_of(scenario, hourly=False)
    row = acct.locate_item(item)
    assert row is not None
    amount = Decimal(acct.rec[row[0]]) / 1000
    code = acct.category_of(row[0]).code
    other = next(c for c in ("server", "storage_as_a_service", "bandwidth") if c != code)
    scenario.cancel_billing_item(acct.id, item)
    scenario.add_billing_item(acct.id, other, amount)
    after = scenario.truth(acct.id)
    assert after.next_invoice_item_count == truth.next_invoice_item_count
    assert after.next_invoice_pre_tax == truth.next_invoice_pre_tax
    assert after.next_invoice_recurring == truth.next_invoice_recurring


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (add_monthly, "items added or removed"),
        (add_hourly, "items added or removed"),
        (cancel, "items added or removed"),
        (reprice_monthly, "recurring total changed"),
        (reprice_hourly, "recurring total changed"),
        (swap_equal_totals, "items added or removed"),
    ],
)
async def test_a_change_shows_in_the_next_poll(change: Any, reason: str) -> None:
    """An item added, cancelled, re-priced, or swapped for one of equal price: the next poll
    walks the items (and says why), serves the truth, and the poll after is cheap again."""
    async with running() as run:
        await run.poll()
        run.scenario.advance(timedelta(minutes=5))
        assert await run.poll() == 4
        change(run.scenario)
        await run.poll()
        assert run.walks == {"next_invoice_items": reason}
        run.scenario.advance(timedelta(minutes=5))
        assert await run.poll() == 4
        assert run.walks == {}


async def test_a_change_no_check_can_see_waits_for_the_full_walk() -> None:
    """Two monthly items re-priced by opposite amounts keep the item set and every total: no
    cheap check sees it (documented), so the categories are stale until the full walk, which
    comes full_walk_interval after the last one and serves the truth."""
    async with running(full_walk_interval_seconds=2 * 3600.0) as run:
        await run.poll()
        acct = run.scenario.accounts[0]
        first, second = _two_monthly_rows_in_different_categories(run.scenario)
        delta = Decimal("10")
        run.scenario.reprice_billing_item(
            acct.id, acct.item_id(first), Decimal(acct.own[first]) / 1000 + delta
        )
        run.scenario.reprice_billing_item(
            acct.id, acct.item_id(second), Decimal(acct.own[second]) / 1000 - delta
        )
        run.sim.reset_stats()
        assert await run.poller.poll_once()
        truth = run.scenario.truth(acct.id)
        breakdown = run.snapshot.next_invoice
        assert breakdown is not None
        served = {c.code: c.amount_usd for c in breakdown.categories}
        assert served != {code: c.amount for code, c in truth.categories.items()}
        assert run.sim.stats.total == 4
        run.scenario.advance(timedelta(hours=2))
        await run.poll()
        assert run.walks == {"next_invoice_items": "full walk due"}


def _two_monthly_rows_in_different_categories(scenario: Scenario) -> tuple[int, int]:
    acct = scenario.accounts[0]
    rows = [r for r in range(acct.item_count) if not acct.hourly[r] and r not in acct.cancelled]
    first = rows[0]
    second = next(r for r in rows if acct.category_of(r).code != acct.category_of(first).code)
    return first, second


async def test_a_walk_that_straddles_the_top_of_the_hour_is_walked_again() -> None:
    """The hour turns while the items are walked (some read before, some after): the total
    read again after the walk differs, so the next poll walks again instead of projecting
    from a mix, and serves the truth."""
    async with running(page_size=20) as run:
        assert hourly_items(run.scenario) > 0
        hook = run.sim.mutate_after_pages(
            1, lambda sc: sc.advance(timedelta(hours=1)), method=GET_ITEMS
        )
        run.sim.reset_stats()
        with structlog.testing.capture_logs():
            assert await run.poller.poll_once()
        assert hook.fired.is_set()
        await run.poll()
        assert run.walks == {"next_invoice_items": "the totals moved during the last walk"}
        await run.poll()
        assert run.walks == {}


async def test_the_anniversary_is_walked() -> None:
    """Crossing the anniversary (hourly items restart at 0 hours, a new invoice is cut): the
    next poll walks the items and serves the new cycle's truth."""
    async with running(full_walk_interval_seconds=7 * 86_400.0) as run:
        cycle_end = run.scenario.truth(run.acct.id).cycle_end
        run.scenario.advance_to(cycle_end - timedelta(minutes=30))
        await run.poll()
        run.scenario.advance(timedelta(hours=1))
        await run.poll()
        assert run.walks["next_invoice_items"] == "billing cycle changed"
        assert run.scenario.truth(run.acct.id).cycle_start == cycle_end


async def test_closed_invoices_are_never_read_again() -> None:
    """After the first walk of the window, a poll reads only new invoices and the open ones:
    paying the open invoice and cutting a new one show at once, while a closed invoice
    changed behind the exporter's back (SoftLayer documents no such change) is not re-read."""
    async with running() as run:
        await run.poll()
        acct = run.acct
        window = run.snapshot.invoices
        assert window is not None
        truth = run.scenario.truth(acct.id)
        closed = next(inv for inv in truth.invoices if inv.created >= window.since and inv.closed)
        run.scenario.recode_invoice(acct.id, closed.id, type_code="REFUND")
        run.scenario.pay_pending_invoice(acct.id)
        run.scenario.open_pending_invoice(acct.id, Decimal("321"))
        run.sim.reset_stats()
        with structlog.testing.capture_logs() as events:
            assert await run.poller.poll_once()
        (event,) = [e for e in events if e["event"] == "poll"]
        assert "invoices" not in event.get("walks", {})
        # New ones, the open ones by id, and the recurring-invoice history (the latest
        # recurring invoice was paid: its status changed).
        assert run.sim.stats.requests[GET_INVOICES] == 3
        served = run.snapshot.invoices
        assert served is not None
        truth = run.scenario.truth(acct.id)
        expected: dict[tuple[str, str], int] = {}
        for inv in truth.invoices:
            if inv.created >= served.since:
                kind = closed.type_code if inv.id == closed.id else inv.type_code
                expected[(kind, inv.status_code)] = expected.get((kind, inv.status_code), 0) + 1
        assert {k: v for k, v in served.counts.items() if v} == expected


async def test_without_steady_state_every_list_is_walked_every_poll() -> None:
    """full_walk_interval 0 switches the steady state off: every poll walks both lists."""
    async with running(full_walk_interval_seconds=0) as run:
        await run.poll()
        for _ in range(2):
            run.scenario.advance(timedelta(minutes=10))
            await run.poll()
            assert run.walks == {
                "invoices": "full walk due",
                "next_invoice_items": "full walk due",
            }
