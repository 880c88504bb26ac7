"""The poller against the simulated SoftLayer API over loopback: values, calls, paging."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta, timezone
from decimal import Decimal

import aiohttp
import pytest
import structlog

from exporter.api_stats import ApiStats
from exporter.poller import Poller
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import AccountSnapshot, ExporterState, PendingInvoice, Source
from exporter.softlayer import SoftLayerClient
from tests.helpers.simapi import (
    PollerFactory,
    assert_matches_truth,
    make_config,
    pages,
    with_accounts,
)

CENTRAL = timezone(timedelta(hours=-6))
GET_OBJECT = "SoftLayer_Account::getObject"
GET_INVOICES = "SoftLayer_Account::getInvoices"
GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
GET_LINES = "SoftLayer_Billing_Invoice::getInvoiceTopLevelItems"


def walk_calls(
    poller: Poller, scenario: Scenario, page_size: int, *, first: bool = True
) -> Counter[str]:
    """Exact API calls of a poll that walks every list, from the truth and the window used.

    On the ``first`` poll only (then cached while the latest recurring invoice stays the
    same): one getInvoices more for the invoice history and the latest invoice's lines.
    """
    calls: Counter[str] = Counter()
    for account, acct in zip(poller.config.accounts, scenario.accounts, strict=True):
        truth = scenario.truth(acct.id)
        window = poller.state.accounts[account.name].invoices
        assert window is not None
        calls[GET_OBJECT] += 1
        # The date filter is sent one day early as a UTC wall time (see
        # exporter.sources._FILTER_MARGIN); the simulator reads such dates as Central time.
        start = (window.since - timedelta(days=1)).replace(microsecond=0, tzinfo=CENTRAL)
        server_side = [inv for inv in truth.invoices if inv.created > start]
        calls[GET_INVOICES] += pages(len(server_side), page_size)
        calls[GET_ITEMS] += pages(truth.next_invoice_item_count, page_size)
        if any(c.hourly_items for c in truth.categories.values()):
            calls[GET_OBJECT] += 1  # the recurring total again: did the walk straddle a change?
        latest = truth.latest_recurring_invoice
        if first:
            calls[GET_INVOICES] += 1
        if first and latest is not None:
            calls[GET_LINES] += pages(latest.top_level_item_count, page_size)
    return calls


def steady_calls(poller: Poller, scenario: Scenario) -> Counter[str]:
    """Exact API calls of a poll that finds nothing changed: the account object, the end of
    the item list, new invoices, and the window's open invoices (if any is open)."""
    calls: Counter[str] = Counter()
    for account, acct in zip(poller.config.accounts, scenario.accounts, strict=True):
        window = poller.state.accounts[account.name].invoices
        assert window is not None
        calls[GET_OBJECT] += 1
        calls[GET_ITEMS] += 1
        calls[GET_INVOICES] += 1
        truth = scenario.truth(acct.id)
        if any(i.status_code == "OPEN" and i.created >= window.since for i in truth.invoices):
            calls[GET_INVOICES] += 1
    return calls


async def test_values_equal_truth_with_and_without_pending_invoice(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Every snapshot field equals scenario.truth(): pending and no-pending accounts."""
    poller = make_poller(make_config(sim, scenario))
    sim.reset_stats()
    assert await poller.poll_once() is True
    assert poller.state.first_cycle_done
    # Two accounts at the default page size: one call per data set, and the recurring total
    # read again after each item walk (both accounts have hourly items); the first poll also
    # reads the recurring-invoice history and the latest invoice's lines.
    assert sim.stats.requests == {GET_OBJECT: 4, GET_INVOICES: 4, GET_ITEMS: 2, GET_LINES: 2}
    stats = poller.api_stats
    assert {method for _, method, _ in stats.requests} == {
        "getObject",
        "getInvoices",
        "getNextInvoiceTopLevelBillingItems",
        "getInvoiceTopLevelItems",
    }
    assert stats.requests[("acct1", "getInvoices", "200")] == 2
    assert stats.errors == {}
    for account in ("acct0", "acct1"):
        buckets, _ = stats.duration(account, "getObject")
        assert buckets[-1] == ("+Inf", 2)
    for index, acct in enumerate(scenario.accounts):
        snapshot = poller.state.accounts[f"acct{index}"]
        assert snapshot.up
        assert set(snapshot.sources) == set(Source)
        assert_matches_truth(snapshot, scenario, acct.id)
    with_pending = poller.state.accounts["acct0"].pending_invoice
    without = poller.state.accounts["acct1"].pending_invoice
    assert with_pending is not None
    assert with_pending.invoice is not None
    assert without is not None
    assert without.invoice is None


async def test_hourly_monthly_and_parent_child_items(
    make_poller: PollerFactory,
) -> None:
    """Category amounts include children (nextInvoiceTotalRecurringAmount), hourly split kept."""
    scenario = Scenario.generate(seed=11, accounts=[AccountSpec(items=60, pending_invoice=True)])
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, rate_limit_per_second=10_000
    ) as sim:
        poller = make_poller(make_config(sim, scenario))
        assert await poller.poll_once()
        snapshot = poller.state.accounts["acct0"]
        assert_matches_truth(snapshot, scenario, scenario.accounts[0].id)
        breakdown = snapshot.next_invoice
        assert breakdown is not None
        assert sum(c.hourly_items for c in breakdown.categories) > 0
        assert sum(c.monthly_items for c in breakdown.categories) > 0
        # The parents' bare recurringFee would under-report: children carry real money here.
        bare: dict[str, Decimal] = {}
        async with aiohttp.ClientSession() as session:
            client = SoftLayerClient(poller.config.accounts[0], poller.config, session, ApiStats())
            page = await client.call(
                "SoftLayer_Account",
                "getNextInvoiceTopLevelBillingItems",
                mask="mask[id,categoryCode,recurringFee]",
                result_limit=(0, 1000),
            )
        for row in page.body:
            fee = Decimal(row["recurringFee"])
            bare[row["categoryCode"]] = bare.get(row["categoryCode"], Decimal(0)) + fee
        amounts = {c.code: c.amount_usd for c in breakdown.categories}
        assert any(amounts[code] > fee for code, fee in bare.items())


async def test_calls_per_poll_are_exact(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """The first poll walks (1 getObject + W(I) + W(N) per account, plus the recurring total
    again, the history and the latest invoice's lines); an unchanged poll then costs at most 4
    requests per account, whatever N."""
    poller = make_poller(make_config(sim, scenario, page_size=10))
    sim.reset_stats()
    assert await poller.poll_once()
    assert Counter(sim.stats.requests) == walk_calls(poller, scenario, page_size=10)
    for _ in range(2):
        sim.reset_stats()
        assert await poller.poll_once()
        assert Counter(sim.stats.requests) == steady_calls(poller, scenario)
        assert sim.stats.total <= 4 * len(scenario.accounts)
    for index, acct in enumerate(scenario.accounts):
        assert_matches_truth(poller.state.accounts[f"acct{index}"], scenario, acct.id)


async def test_without_steady_state_every_poll_walks(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """full_walk_interval 0: every poll makes exactly 1 getObject + W(I) + W(N) per account;
    only the first adds the history and the latest invoice's lines (cached per invoice)."""
    poller = make_poller(make_config(sim, scenario, page_size=10, full_walk_interval_seconds=0))
    for poll in range(2):
        sim.reset_stats()
        assert await poller.poll_once()
        expected = walk_calls(poller, scenario, page_size=10, first=poll == 0)
        expected[GET_OBJECT] = len(scenario.accounts)  # no re-read: no baseline to anchor
        assert Counter(sim.stats.requests) == expected


async def test_many_pages_fetched_concurrently_match_truth(make_poller: PollerFactory) -> None:
    """250 items in pages of 7 (36 pages, concurrent after the first) sum exactly to truth."""
    scenario = Scenario.generate(seed=3, accounts=[AccountSpec(items=250, pending_invoice=True)])
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, rate_limit_per_second=10_000
    ) as sim:
        poller = make_poller(make_config(sim, scenario, page_size=7, max_concurrent_requests=6))
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)
        truth = scenario.truth(scenario.accounts[0].id)
        assert sim.stats.requests[GET_ITEMS] == pages(truth.next_invoice_item_count, 7)


async def test_large_page_internal_error_halves_and_remembers(make_poller: PollerFactory) -> None:
    """Pages above the server's limit answer Internal Error: halve, succeed, keep the size."""
    scenario = Scenario.generate(seed=5, accounts=[AccountSpec(items=120, pending_invoice=True)])
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, rate_limit_per_second=10_000
    ) as sim:
        sim.add_fault(
            FaultRule(kind=FaultKind.LARGE_PAGE_ERROR, method=GET_ITEMS, max_page_size=30)
        )
        # Every poll walks: the second walk is what this test is about.
        poller = make_poller(
            make_config(sim, scenario, page_size=100, full_walk_interval_seconds=0)
        )
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)
        client = poller.client("acct0")
        assert client.page_size("SoftLayer_Account", "getNextInvoiceTopLevelBillingItems") == 25
        # Next cycle starts at the remembered size: no failing request, ceil(N/25) calls.
        sim.reset_stats()
        errors_before = dict(poller.api_stats.errors)
        assert await poller.poll_once()
        truth = scenario.truth(scenario.accounts[0].id)
        assert sim.stats.requests[GET_ITEMS] == pages(truth.next_invoice_item_count, 25)
        assert dict(poller.api_stats.errors) == errors_before
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)


async def test_scenario_changes_show_up_next_cycle(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Paying the pending invoice, opening one and adding an item are seen on the next poll."""
    poller = make_poller(make_config(sim, scenario))
    assert await poller.poll_once()
    first, second = scenario.accounts
    scenario.pay_pending_invoice(first.id)
    scenario.open_pending_invoice(second.id, amount=Decimal("5000"))
    scenario.add_billing_item(
        second.id, category_code="guest_core", recurring_fee=Decimal("12.5"), hourly=True
    )
    assert await poller.poll_once()
    assert_matches_truth(poller.state.accounts["acct0"], scenario, first.id)
    assert_matches_truth(poller.state.accounts["acct1"], scenario, second.id)
    pending = poller.state.accounts["acct1"].pending_invoice
    assert pending is not None
    assert pending.invoice is not None


async def test_one_canonical_poll_event_per_account(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Each poll logs exactly one `poll` event per account with outcome, duration, requests."""
    poller = make_poller(make_config(sim, scenario))
    sim.reset_stats()
    with structlog.testing.capture_logs() as events:
        assert await poller.poll_once()
    polls = [e for e in events if e["event"] == "poll"]
    assert sorted(e["account"] for e in polls) == ["acct0", "acct1"]
    for event in polls:
        assert event["outcome"] == "ok"
        assert event["sources_failed"] == []
        assert event["duration_seconds"] >= 0
    assert sum(e["requests"] for e in polls) == sim.stats.total
    # Per-request events are debug lines; above debug, the poll event is all there is.
    assert len([e for e in events if e["log_level"] != "debug"]) == len(polls)


async def test_run_loops_and_stops_on_event(
    sim: SimulatorServer,
    scenario: Scenario,
    make_poller: PollerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run() polls repeatedly at the interval and returns promptly once stop is set."""
    poller = make_poller(make_config(sim, scenario, poll_interval_seconds=0.01, poll_jitter=0.5))
    stop = asyncio.Event()
    cycles = 0
    third_cycle = asyncio.Event()
    publish = poller.state.publish

    def counting_publish(snapshot: AccountSnapshot) -> None:
        nonlocal cycles
        publish(snapshot)
        if snapshot.name == "acct1":
            cycles += 1
            if cycles == 3:
                third_cycle.set()

    monkeypatch.setattr(poller.state, "publish", counting_publish)
    runner = asyncio.create_task(poller.run(stop))
    await asyncio.wait_for(third_cycle.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(runner, timeout=5)
    assert cycles >= 3
    snapshot = poller.state.accounts["acct0"]
    assert snapshot.next_poll is not None
    assert snapshot.up


async def test_stop_cancels_a_hanging_cycle_cleanly(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Setting stop during a hung poll ends run() without publishing a half snapshot."""
    poller = make_poller(make_config(sim, scenario, request_timeout_seconds=30))
    assert await poller.poll_once()
    before = dict(poller.state.accounts)
    sim.add_fault(FaultRule(kind=FaultKind.HANG, method=GET_INVOICES))
    stop = asyncio.Event()
    runner = asyncio.create_task(poller.run(stop))
    # Stop once a hanging request has reached the simulator.
    await asyncio.wait_for(sim.state.hang_started.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(runner, timeout=5)
    # Both accounts were waiting on the hung call: their previous snapshots stand, whole.
    assert dict(poller.state.accounts) == before


async def test_forecast_is_published_whole_or_not_at_all(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """A getObject failure next to an items success serves neither new categories nor an old
    forecast beside them; an items failure publishes the new balance but holds the forecast."""
    poller = make_poller(make_config(sim, scenario))
    assert await poller.poll_once()
    acct = scenario.accounts[0]
    first = poller.state.accounts["acct0"]
    scenario.add_billing_item(acct.id, "guest_core", Decimal("40"))
    scenario.pay_pending_invoice(acct.id)  # the balance changes too

    # Faults on acct0 only: the other account's requests must not take them.
    denied = FaultRule(kind=FaultKind.PERMISSION_DENIED, account_id=acct.id, times=1)
    sim.add_fault(replace(denied, method=GET_OBJECT))
    assert not await poller.poll_once()
    held = poller.state.accounts["acct0"]
    assert held.next_invoice == first.next_invoice
    assert held.summary == first.summary
    items = held.sources[Source.NEXT_INVOICE_ITEMS]
    assert (items.up, items.last_error_reason) == (False, "permission")
    assert items.last_error is not None
    assert "not published" in items.last_error
    assert items.last_success == first.sources[Source.NEXT_INVOICE_ITEMS].last_success

    sim.add_fault(replace(denied, method=GET_ITEMS))
    assert not await poller.poll_once()
    partial = poller.state.accounts["acct0"]
    truth = scenario.truth(acct.id)
    assert partial.summary is not None
    assert first.summary is not None
    assert partial.sources[Source.ACCOUNT].up
    assert partial.summary.balance_usd == truth.balance  # fresh
    assert partial.summary.next_invoice_pre_tax_usd == first.summary.next_invoice_pre_tax_usd
    assert partial.summary.next_invoice_pre_tax_usd != truth.next_invoice_pre_tax
    assert partial.next_invoice == first.next_invoice
    assert not partial.sources[Source.NEXT_INVOICE_ITEMS].up

    assert await poller.poll_once()
    assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)


async def test_injected_clock_stamps_every_now(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Timestamps, the look-back window, next_poll and the hours left in the cycle all come
    from the injected wall clock, not from time.time()."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    moment = truth.cycle_end.timestamp() - 10 * 3600  # ten hours before the anniversary
    config = make_config(sim, scenario)
    poller = Poller(config, ExporterState(("acct0", "acct1")), clock=lambda: moment)
    try:
        assert await poller.poll_once()
    finally:
        await poller.aclose()
    snapshot = poller.state.accounts["acct0"]
    assert {s.last_attempt for s in snapshot.sources.values()} == {moment}
    assert {s.last_success for s in snapshot.sources.values()} == {moment}
    assert snapshot.next_poll == moment + config.poll_interval_seconds
    assert snapshot.invoices is not None
    assert snapshot.invoices.since.timestamp() == moment - config.invoice_lookback_seconds
    assert snapshot.next_invoice is not None
    for category in snapshot.next_invoice.categories:
        expected = truth.categories[category.code]
        assert category.projected_usd == expected.amount + expected.hourly_rate * 10


async def test_undocumented_codes_are_served_under_their_own_code_and_logged_once(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """A status and a type SoftLayer does not document: counted under their own code, kept on
    the latest recurring invoice, and only the first poll's event names them."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    assert truth.pending_invoice is not None
    scenario.recode_invoice(acct.id, truth.pending_invoice.id, status_code="DISPUTED")
    older = next(inv for inv in reversed(truth.invoices) if inv.type_code == "NEW")
    scenario.recode_invoice(acct.id, older.id, type_code="SURPRISE")
    poller = make_poller(make_config(sim, scenario))
    with structlog.testing.capture_logs() as first:
        assert await poller.poll_once()
    with structlog.testing.capture_logs() as second:
        assert await poller.poll_once()
    mine = [e for e in first if e.get("account") == "acct0" and e["log_level"] != "debug"]
    assert [e["event"] for e in mine] == ["poll"]
    assert sorted(mine[0]["undocumented_codes"]) == ["status:DISPUTED", "type:SURPRISE"]
    assert all("undocumented_codes" not in e for e in second)
    snapshot = poller.state.accounts["acct0"]
    assert snapshot.latest_recurring_invoice is not None
    assert snapshot.latest_recurring_invoice.status_code == "DISPUTED"
    assert snapshot.pending_invoice == PendingInvoice(None)  # no longer OPEN
    window = snapshot.invoices
    assert window is not None
    if older.created >= window.since:
        assert window.counts[("SURPRISE", older.status_code)] == 1


_HISTORY = Source.INVOICE_HISTORY


@pytest.mark.parametrize(
    ("off", "first", "later"),
    [
        ({Source.INVOICES, _HISTORY}, {GET_OBJECT, GET_ITEMS}, {GET_OBJECT, GET_ITEMS}),
        (
            {Source.NEXT_INVOICE_ITEMS, _HISTORY},
            {GET_OBJECT, GET_INVOICES},
            {GET_OBJECT, GET_INVOICES},
        ),
        (
            {Source.LATEST_RECURRING_INVOICE, Source.PENDING_INVOICE, _HISTORY},
            {GET_OBJECT, GET_INVOICES, GET_ITEMS},
            {GET_OBJECT, GET_INVOICES, GET_ITEMS},
        ),
        # Only the invoice window: no account object at all.
        (set(Source) - {Source.INVOICES}, {GET_INVOICES}, {GET_INVOICES}),
        # The items' forecast and change checks still need the account's next-invoice totals:
        # getObject is asked for them, the account source itself is not published.
        (
            set(Source) - {Source.NEXT_INVOICE_ITEMS},
            {GET_OBJECT, GET_ITEMS},
            {GET_OBJECT, GET_ITEMS},
        ),
        # The history needs the latest recurring invoice to see it change (getObject), walks
        # the latest invoice's lines once, then asks nothing while that invoice stays.
        (set(Source) - {_HISTORY}, {GET_OBJECT, GET_INVOICES, GET_LINES}, {GET_OBJECT}),
        (set(Source) - {Source.BILLING_INFO}, {GET_OBJECT}, {GET_OBJECT}),
    ],
)
async def test_switched_off_sources_are_never_requested(
    sim: SimulatorServer,
    scenario: Scenario,
    make_poller: PollerFactory,
    off: set[Source],
    first: set[str],
    later: set[str],
) -> None:
    """sources: {x: false}: x's calls are never made, its series are absent (no data, no
    source status), and the sources left on are served exactly as usual."""
    config = with_accounts(make_config(sim, scenario), "acct0")
    account = replace(config.accounts[0], sources=frozenset(Source) - off)
    poller = make_poller(replace(config, accounts=(account,)))
    acct = scenario.accounts[0]
    for methods in (first, later):  # the first poll walks, the second checks: neither asks for x
        sim.reset_stats()
        assert await poller.poll_once()
        assert set(sim.stats.requests) == methods
    snapshot = poller.state.accounts["acct0"]
    assert set(snapshot.sources) == set(Source) - off
    fields = {
        Source.ACCOUNT: snapshot.summary,
        Source.LATEST_RECURRING_INVOICE: snapshot.latest_recurring_invoice,
        Source.PENDING_INVOICE: snapshot.pending_invoice,
        Source.INVOICES: snapshot.invoices,
        Source.NEXT_INVOICE_ITEMS: snapshot.next_invoice,
        Source.BILLING_INFO: snapshot.billing,
        Source.INVOICE_HISTORY: snapshot.history,
    }
    assert {source for source, data in fields.items() if data is None} == off
    truth = scenario.truth(acct.id)
    if snapshot.next_invoice is not None:
        assert snapshot.next_invoice.item_count == truth.next_invoice_item_count
    if snapshot.summary is not None:
        assert snapshot.summary.next_invoice_pre_tax_usd == truth.next_invoice_pre_tax
