"""Source invoice_history: the recurring invoices each poll, the latest by category once
(inside the poll, or after it when serving)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog.testing

from exporter.config import Config
from exporter.finops.history import InvoiceCategoryAggregator, parse_recurring_invoices
from exporter.metrics import build_registry
from exporter.poller import Poller
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.simulator.breakdown import invoice_categories
from exporter.snapshot import ExporterState, Source
from exporter.wire import DecodeError
from tests.helpers.finops_truth import FINOPS_PREFIXES, expected_finops
from tests.helpers.simapi import make_config

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
LINES = "SoftLayer_Billing_Invoice::getInvoiceTopLevelItems"
INVOICES = "SoftLayer_Account::getInvoices"


def invoice(invoice_id: int, created: str, type_code: str = "RECURRING") -> dict[str, Any]:
    return {
        "id": invoice_id,
        "typeCode": type_code,
        "statusCode": "CLOSED",
        "createDate": created,
        "closedDate": created,
        "invoiceTotalAmount": "110",
        "invoiceTotalPreTaxAmount": "100",
        "invoiceTotalRecurringAmount": "100",
        "invoiceTotalOneTimeAmount": "0",
        "invoiceTotalOneTimeTaxAmount": "0",
        "invoiceTotalRecurringTaxAmount": "10",
        "payment": "110",
        "itemCount": 3,
    }


def test_history_list_is_recurring_newest_first() -> None:
    """Newest first, RECURRING only, exchange rate optional; a bare object is a one-row list."""
    rows = [invoice(9, "2026-11-04T23:10:00-06:00"), invoice(8, "2026-10-04T23:10:00-05:00")]
    rows[0]["localCurrencyExchangeRate"] = {
        "rate": "151.37",
        "fundingCurrency": {"keyName": "USD"},
        "localCurrency": {"keyName": "JPY"},
    }
    history = parse_recurring_invoices(rows, 13)
    assert [h.invoice.invoice_id for h in history] == [9, 8]
    assert history[0].exchange_rate is not None
    assert history[0].exchange_rate.rate == Decimal("151.37")
    assert history[1].exchange_rate is None
    assert parse_recurring_invoices(rows[0], 1)[0].invoice.invoice_id == 9
    assert parse_recurring_invoices([], 13) == ()


@pytest.mark.parametrize(
    ("rows", "count", "problem"),
    [
        # SoftLayer ignored the filter: the oldest invoices of any type, oldest first.
        ([invoice(1, "2020-01-01T00:00:00-06:00", "NEW")], 13, "filter not applied"),
        (
            [invoice(1, "2020-01-01T00:00:00-06:00"), invoice(2, "2020-02-01T00:00:00-06:00")],
            13,
            "not newest first",
        ),
        (
            [invoice(2, "2020-02-01T00:00:00-06:00"), invoice(2, "2020-02-01T00:00:00-06:00")],
            13,
            "listed twice",
        ),
        ([invoice(3, "2020-02-01T00:00:00-06:00")] * 2, 1, "resultLimit 1"),
        ({"error": "x"}, 13, "missing"),
        ("no", 13, "expected a list"),
    ],
)
def test_a_history_answer_that_is_not_what_was_asked_is_refused(
    rows: Any, count: int, problem: str
) -> None:
    """An ignored filter, a wrong order, a repeated or surplus invoice, a wrong shape: a clear
    decode error instead of history that is not the account's last invoices."""
    with pytest.raises(DecodeError, match=problem):
        parse_recurring_invoices(rows, count)


def test_invoice_lines_fold_per_category_once_each() -> None:
    """Overlapping pages count a line once; the top categories by amount, the rest in other."""
    lines = InvoiceCategoryAggregator()

    # An amount arrives as a JSON string or number.
    def line(line_id: int, code: str, recurring: str | int, one_time: str = "0") -> dict[str, Any]:
        return {
            "id": line_id,
            "categoryCode": code,
            "totalRecurringAmount": recurring,
            "totalOneTimeAmount": one_time,
        }

    page = [line(1, "server", "100", "25"), line(2, "guest_core", "40"), line(3, "ram", ".5")]
    assert lines.add_page(page) == 3
    assert lines.add_page([page[2], line(4, "other", "7"), line(5, "guest_core", 20)]) == 2
    result = lines.result(invoice_id=7, top_n=2)
    assert [(c.code, c.recurring_usd, c.one_time_usd, c.lines) for c in result.categories] == [
        ("server", Decimal(100), Decimal(25), 1),
        ("guest_core", Decimal(60), Decimal(0), 2),
        ("other", Decimal("7.5"), Decimal(0), 2),
    ]
    assert (result.folded, result.lines, result.invoice_id) == (2, 5, 7)
    for bad, path in (
        ([{"id": 9, "categoryCode": "", "totalRecurringAmount": "1"}], r"lines\[0\].categoryCode"),
        ([{"id": 9, "categoryCode": "x", "totalRecurringAmount": None}], "totalRecurringAmount"),
        ([{"categoryCode": "x"}], r"lines\[0\].id"),
        ([7], r"lines\[0\]"),
    ):
        with pytest.raises(DecodeError, match=path):
            InvoiceCategoryAggregator().add_page(bad)


@pytest.fixture
def scenario() -> Scenario:
    """A euro account with a discount and platform services (paid on terms), and a USD
    account paying by card; both with a year of invoices."""
    return Scenario.generate(
        seed=21,
        accounts=[
            AccountSpec(
                items=120,
                invoice_months=15,
                currency="EUR",
                payment="invoice",
                payment_terms_days=14,
                recurring_discount_percent=12,
                platform_services=Decimal("250"),
            ),
            AccountSpec(items=30, invoice_months=4, pending_invoice=False),
        ],
        now=START,
    )


@pytest.fixture
async def sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(scenario, rate_limit_per_second=None) as server:
        yield server


def finops_series(poller: Poller) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = build_registry(poller.state, poller.api_stats, poller.config, process_metrics=False)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(FINOPS_PREFIXES)
    }


def assert_finops_match_truth(poller: Poller, scenario: Scenario) -> None:
    served = finops_series(poller)
    want: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for index, acct in enumerate(scenario.accounts):
        want.update(expected_finops(f"acct{index}", scenario, acct.id))
    assert served.keys() == want.keys(), set(served) ^ set(want)
    for series, value in want.items():
        assert abs(served[series] - value) <= 1e-9 * max(1.0, abs(value)), series


def window_checks(poller: Poller, scenario: Scenario) -> int:
    """getInvoices of the look-back windows in the next unchanged poll, as of now: one for
    new invoices per account, one more for those the window holds open (exporter.steady)."""
    count = 0
    for account, acct in zip(poller.config.accounts, scenario.accounts, strict=True):
        window = poller.state.accounts[account.name].invoices
        assert window is not None
        truth = scenario.truth(acct.id)
        count += 1
        count += any(i.status_code == "OPEN" and i.created >= window.since for i in truth.invoices)
    return count


async def test_every_finops_series_equals_truth_and_lines_are_walked_once(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """Non-USD and USD accounts: every FinOps series equals the truth; the latest invoice's
    lines are walked on the first poll, not on the next, again after the anniversary cut and
    again after a restart (a new process knows nothing)."""
    config = make_config(sim, scenario, page_size=25)
    poller = Poller(config, ExporterState(("acct0", "acct1")), clock=scenario.clock.time)
    try:
        sim.reset_stats()
        assert await poller.poll_once()
        first = sim.stats.requests[LINES]
        latest = [scenario.truth(a.id).latest_recurring_invoice for a in scenario.accounts]
        assert first == sum(-(-inv.top_level_item_count // 25) for inv in latest if inv)
        assert_finops_match_truth(poller, scenario)

        # The latest recurring invoices are as they were: no history request, no lines.
        checks = window_checks(poller, scenario)
        sim.reset_stats()
        assert await poller.poll_once()
        assert sim.stats.requests[LINES] == 0
        assert sim.stats.requests[INVOICES] == checks  # the look-back windows only
        assert_finops_match_truth(poller, scenario)

        # A payment changes the latest invoice: the history is fetched again, not the lines.
        checks = window_checks(poller, scenario)
        scenario.pay_pending_invoice(scenario.accounts[0].id)
        sim.reset_stats()
        assert await poller.poll_once()
        assert sim.stats.requests[LINES] == 0
        assert sim.stats.requests[INVOICES] == checks + 1  # the windows, acct0's history
        assert_finops_match_truth(poller, scenario)

        # Six hours on, the history is fetched again anyway (older invoices may be paid).
        checks = window_checks(poller, scenario)
        scenario.advance(timedelta(hours=6))
        sim.reset_stats()
        assert await poller.poll_once()
        assert sim.stats.requests[INVOICES] == checks + 2  # the windows, both histories

        # The anniversary: a new latest invoice, walked once; the history moves one step.
        before = [scenario.truth(a.id) for a in scenario.accounts]
        scenario.advance_to(max(t.cycle_end for t in before) + timedelta(hours=1))
        sim.reset_stats()
        assert await poller.poll_once()
        after = [scenario.truth(a.id).latest_recurring_invoice for a in scenario.accounts]
        assert all(
            a is not None
            and (b.latest_recurring_invoice is None or a.id != b.latest_recurring_invoice.id)
            for a, b in zip(after, before, strict=True)
        )
        assert sim.stats.requests[LINES] == sum(
            -(-inv.top_level_item_count // 25) for inv in after if inv
        )
        assert_finops_match_truth(poller, scenario)
    finally:
        await poller.aclose()

    restarted = Poller(config, ExporterState(("acct0", "acct1")), clock=scenario.clock.time)
    try:
        sim.reset_stats()
        assert await restarted.poll_once()
        assert sim.stats.requests[LINES] > 0
        assert_finops_match_truth(restarted, scenario)
    finally:
        await restarted.aclose()


async def test_latest_invoice_categories_fold_like_the_next_invoice(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """With top_categories=2 the invoice keeps its two largest categories plus other, and the
    sums still equal the invoice's lines."""
    config = make_config(sim, scenario, top_categories=2)
    poller = Poller(config, ExporterState(("acct0", "acct1")))
    try:
        assert await poller.poll_once()
    finally:
        await poller.aclose()
    acct = scenario.accounts[0]
    history = poller.state.accounts["acct0"].history
    assert history is not None
    categories = history.latest_categories
    assert categories is not None
    latest = scenario.truth(acct.id).latest_recurring_invoice
    assert latest is not None
    truth = invoice_categories(scenario, acct.id, latest.id)
    ranked = sorted(truth.values(), key=lambda c: (-(c.recurring + c.one_time), c.code))
    assert [c.code for c in categories.categories] == [ranked[0].code, ranked[1].code, "other"]
    assert categories.folded == len(truth) - 2
    assert sum((c.recurring_usd for c in categories.categories), Decimal(0)) == sum(
        (c.recurring for c in truth.values()), Decimal(0)
    )
    assert categories.lines == latest.top_level_item_count


async def test_a_failed_line_walk_keeps_the_last_history_and_fails_only_its_source(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """A permission error on the invoice's lines: invoice_history down with its reason and
    no data yet; every other source up. A later poll fetches the history; and once it has,
    a failing history list keeps the last good history."""
    acct = scenario.accounts[0]
    config = make_config(sim, scenario)
    poller = Poller(config, ExporterState(("acct0", "acct1")))
    try:
        sim.add_fault(FaultRule(kind=FaultKind.PERMISSION_DENIED, method=LINES, account_id=acct.id))
        assert await poller.poll_once() is False
        snapshot = poller.state.accounts["acct0"]
        status = snapshot.sources[Source.INVOICE_HISTORY]
        assert (status.up, status.last_error_reason, status.last_success) == (
            False,
            "permission",
            None,
        )
        assert snapshot.history is None
        assert all(
            s.up for source, s in snapshot.sources.items() if source is not Source.INVOICE_HISTORY
        )
        assert poller.state.accounts["acct1"].up
        sim.clear_faults()
        assert await poller.poll_once()
        good = poller.state.accounts["acct0"].history
        assert good is not None
        sim.add_fault(FaultRule(kind=FaultKind.MALFORMED_JSON, method=INVOICES, account_id=acct.id))
        scenario.pay_pending_invoice(acct.id)  # the latest invoice changes: history refetched
        assert await poller.poll_once() is False
        snapshot = poller.state.accounts["acct0"]
        assert snapshot.sources[Source.INVOICE_HISTORY].last_error_reason == "decode"
        assert snapshot.history == good
    finally:
        await poller.aclose()


async def test_datacenters_and_top_items_accrue_between_walks(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """A poll that finds the items unchanged walks nothing, yet its datacenter totals, top
    items and rest have grown by the hours accrued since the walk, as the truth has."""
    config = make_config(sim, scenario, page_size=25)
    poller = Poller(config, ExporterState(("acct0", "acct1")), clock=scenario.clock.time)
    try:
        assert await poller.poll_once()
        walked = finops_series(poller)
        scenario.advance(timedelta(hours=3))
        sim.reset_stats()
        assert await poller.poll_once()
        # The end of each item list, no walk (steady state).
        assert sim.stats.requests["SoftLayer_Account::getNextInvoiceTopLevelBillingItems"] == 2
        assert_finops_match_truth(poller, scenario)
        grown = [
            series
            for series, value in finops_series(poller).items()
            if series[0] == "softlayer_next_invoice_datacenter_usd" and value > walked[series]
        ]
        assert grown, "no hourly datacenter total grew: the scenario needs hourly items"
    finally:
        await poller.aclose()


def serving_poller(config: Config, scenario: Scenario) -> Poller:
    """A poller of both accounts as the serving daemon runs it: lines walked after the poll."""
    return Poller(
        config,
        ExporterState(("acct0", "acct1")),
        clock=scenario.clock.time,
        defer_invoice_lines=True,
    )


def line_pages(scenario: Scenario, page_size: int) -> int:
    """getInvoiceTopLevelItems requests of one walk of every account's latest invoice."""
    latest = [scenario.truth(a.id).latest_recurring_invoice for a in scenario.accounts]
    return sum(-(-inv.top_level_item_count // page_size) for inv in latest if inv)


def lines_inside_polls(events: list[MutableMapping[str, Any]]) -> int:
    """getInvoiceTopLevelItems requests an account made before its poll event (in its poll)."""
    polled: set[str] = set()
    count = 0
    for event in events:
        if event["event"] == "poll":
            polled.add(event["account"])
        elif event["event"] == "api_request" and event["method"] == LINES.split("::")[1]:
            count += event["account"] not in polled
    assert polled, "no poll event captured"
    assert any(e["event"] == "api_request" for e in events), "no request log captured"
    return count


def assert_no_latest_categories(poller: Poller) -> None:
    for name in ("acct0", "acct1"):
        history = poller.state.accounts[name].history
        assert history is not None
        assert history.invoices
        assert history.latest_categories is None
    assert not any(s[0].startswith("softlayer_invoice_category_") for s in finops_series(poller))


async def test_deferred_lines_are_walked_after_the_poll_and_published_by_the_next(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """Serving mode: the poll that first sees an invoice walks no lines and publishes the
    history without its categories; the walk runs once after it; the next poll publishes
    the categories as the truth says without walking; the same after the anniversary."""
    config = make_config(sim, scenario, page_size=25)
    poller = serving_poller(config, scenario)
    try:
        for step in ("start", "anniversary"):
            if step == "anniversary":
                before = [scenario.truth(a.id) for a in scenario.accounts]
                scenario.advance_to(max(t.cycle_end for t in before) + timedelta(hours=1))
            sim.reset_stats()
            with structlog.testing.capture_logs() as events:
                assert await poller.poll_once()
            # An account's walk may begin while another account still polls.
            assert lines_inside_polls(events) == 0, step
            assert_no_latest_categories(poller)

            await poller.settled()
            assert sim.stats.requests[LINES] == line_pages(scenario, 25), step

            sim.reset_stats()
            assert await poller.poll_once()
            assert sim.stats.requests[LINES] == 0, step
            assert_finops_match_truth(poller, scenario)
    finally:
        await poller.aclose()


async def test_a_failed_deferred_walk_fails_the_next_poll_and_is_walked_again(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """A deferred walk refused with a permission error: the next poll reports invoice_history
    down (reason permission) and keeps the history served; the walk is started again after
    that poll and, the fault cleared, the poll after it publishes the truth."""
    acct = scenario.accounts[0]
    config = make_config(sim, scenario)
    poller = serving_poller(config, scenario)
    try:
        sim.add_fault(FaultRule(kind=FaultKind.PERMISSION_DENIED, method=LINES, account_id=acct.id))
        assert await poller.poll_once()
        served = poller.state.accounts["acct0"].history
        assert served is not None
        await poller.settled()
        sim.clear_faults()

        sim.reset_stats()
        with structlog.testing.capture_logs() as events:
            assert await poller.poll_once() is False
        snapshot = poller.state.accounts["acct0"]
        status = snapshot.sources[Source.INVOICE_HISTORY]
        assert (status.up, status.last_error_reason) == (False, "permission")
        assert snapshot.history == served
        assert all(
            s.up for source, s in snapshot.sources.items() if source is not Source.INVOICE_HISTORY
        )
        assert poller.state.accounts["acct1"].up
        assert lines_inside_polls(events) == 0  # the walk again waits for the poll's end

        await poller.settled()
        assert sim.stats.requests[LINES] > 0
        assert await poller.poll_once()
        assert_finops_match_truth(poller, scenario)
    finally:
        await poller.aclose()


async def test_aclose_with_a_deferred_walk_in_flight_leaves_no_task_and_logs_no_error(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """aclose() during a background walk (its next page hanging): the walk is cancelled and
    awaited before the session closes; no task stays pending, no error is logged and the
    event loop reports no unretrieved exception."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    acct = scenario.accounts[0]
    config = make_config(sim, scenario, page_size=25)
    poller = serving_poller(config, scenario)
    hang = FaultRule(kind=FaultKind.HANG, method=LINES, account_id=acct.id)
    hook = sim.mutate_after_pages(
        1, lambda _: sim.add_fault(hang), method=LINES, account_id=acct.id
    )
    try:
        with structlog.testing.capture_logs() as events:
            assert await poller.poll_once()
            await hook.fired.wait()  # a page served, the next ones hang: the walk is in flight
            # The hanging walk is acct0's; acct1's may end on its own meanwhile.
            latest = scenario.truth(acct.id).latest_recurring_invoice
            assert latest is not None
            name = f"invoice {latest.id} lines"
            walks = [t for t in asyncio.all_tasks() if t.get_name() == name]
            assert walks
            assert not any(t.done() for t in walks)
            await poller.aclose()
            assert all(t.cancelled() for t in walks)
            assert not [t for t in asyncio.all_tasks() if t.get_name().endswith(" lines")]
        gc.collect()
        assert not [e for e in events if e["log_level"] in ("error", "critical", "exception")]
        assert reported == []
    finally:
        loop.set_exception_handler(None)
        await poller.aclose()


async def test_a_newer_latest_invoice_cancels_the_walk_of_the_older_one(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """Serving mode: while the walk of the latest invoice's lines hangs, the anniversary cuts
    a newer one; the next poll cancels the older walk and starts the newer one's."""
    acct = scenario.accounts[0]
    poller = serving_poller(make_config(sim, scenario, page_size=25), scenario)

    def walk_of(invoice_id: int) -> asyncio.Task[Any]:
        (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"invoice {invoice_id} lines"]
        return task

    try:
        sim.add_fault(FaultRule(kind=FaultKind.HANG, method=LINES, account_id=acct.id))
        assert await poller.poll_once()
        older = scenario.truth(acct.id).latest_recurring_invoice
        assert older is not None
        older_walk = walk_of(older.id)
        scenario.advance_to(scenario.truth(acct.id).cycle_end + timedelta(hours=1))
        await poller.poll_once()
        newer = scenario.truth(acct.id).latest_recurring_invoice
        assert newer is not None
        assert newer.id != older.id
        # It ends (the deadline only bounds a failure): cancelled, not walked to the end.
        done, _ = await asyncio.wait([older_walk], timeout=30)
        assert older_walk in done
        assert older_walk.cancelled()
        assert not walk_of(newer.id).done()
    finally:
        await poller.aclose()
