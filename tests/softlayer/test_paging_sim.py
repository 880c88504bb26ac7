"""Paging that proves completeness, against a simulated account that moves while it is walked.

Every test here talks to the simulator over loopback. The account is changed between two pages
of one walk (a page hook), pages are capped below what the exporter asks, totals lie: the
served figures must equal the truth before or after the change, or the source is down with
reason ``incomplete`` and its last good figures; never a mix, never a loss.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.poller import Poller
from exporter.simulator import (
    AccountSpec,
    AccountTruth,
    FaultKind,
    FaultRule,
    Scenario,
    SimulatorServer,
)
from exporter.snapshot import AccountSnapshot, ExporterState, Source
from tests.helpers.simapi import PollerFactory, assert_matches_truth, make_config, pages

GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
GET_INVOICES = "SoftLayer_Account::getInvoices"
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def categories(truth: AccountTruth) -> dict[str, tuple[Decimal, int, int, Decimal]]:
    return {
        code: (c.amount, c.hourly_items, c.monthly_items, c.hourly_amount)
        for code, c in truth.categories.items()
    }


def served_categories(snapshot: AccountSnapshot) -> dict[str, tuple[Decimal, int, int, Decimal]]:
    assert snapshot.next_invoice is not None
    return {
        c.code: (c.amount_usd, c.hourly_items, c.monthly_items, c.hourly_usd)
        for c in snapshot.next_invoice.categories
    }


def window_counts(truth: AccountTruth, since: datetime) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for inv in truth.invoices:
        if inv.created >= since:
            key = (inv.type_code, inv.status_code)
            counts[key] = counts.get(key, 0) + 1
    return counts


def served_window(snapshot: AccountSnapshot) -> dict[tuple[str, str], int]:
    assert snapshot.invoices is not None
    return {k: v for k, v in snapshot.invoices.counts.items() if v}


# -- the reported cases, one by one ----------------------------------------------------------


async def test_item_cancelled_between_pages_is_never_mixed_up_with_another(
    make_poller: PollerFactory,
) -> None:
    """The 6th item cancelled after the 2nd of 30 pages (4 in flight, latency): the served
    categories equal the truth before or after, and no other item goes missing."""
    scenario = Scenario.generate(seed=21, accounts=[AccountSpec(items=300)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None, latency_seconds=0.01) as sim:
        poller = make_poller(make_config(sim, scenario, page_size=10))
        before = categories(scenario.truth(acct.id))
        victim = acct.item_id(5)
        hook = sim.mutate_after_pages(
            2, lambda sc: sc.cancel_billing_item(acct.id, victim), method=GET_ITEMS
        )
        assert await poller.poll_once()
        assert hook.fired.is_set()
        after = categories(scenario.truth(acct.id))
        served = served_categories(poller.state.accounts["acct0"])
        assert before != after
        assert served in (before, after)
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)


async def test_capped_pages_without_the_total_header_lose_nothing(
    make_poller: PollerFactory,
) -> None:
    """A server that serves 50 rows whatever resultLimit asks, without SoftLayer-Total-Items:
    every one of 400 items is counted (the walk pages on until nothing new comes)."""
    scenario = Scenario.generate(seed=22, accounts=[AccountSpec(items=400)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        sim.set_page_cap(50, total_header=False)
        poller = make_poller(make_config(sim, scenario))
        sim.reset_stats()
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)
        items = scenario.truth(acct.id).next_invoice_item_count
        # 50 rows a page, 45 new after the first (5 re-read), then one page with nothing new.
        assert sim.stats.requests[GET_ITEMS] == 1 + math.ceil((items - 50) / 45) + 1


async def test_capped_pages_with_the_header_are_learned_and_paged_at_the_cap(
    make_poller: PollerFactory,
) -> None:
    """A cap with SoftLayer-Total-Items is adopted on the first page: exact figures, and the
    next poll pages at the cap from the start."""
    scenario = Scenario.generate(seed=23, accounts=[AccountSpec(items=230)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        sim.set_page_cap(40)
        # Every poll walks: the second walk is what this test is about.
        poller = make_poller(make_config(sim, scenario, full_walk_interval_seconds=0))
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)
        client = poller.client("acct0")
        assert client.page_cap("SoftLayer_Account", "getNextInvoiceTopLevelBillingItems") == 40
        sim.reset_stats()
        assert await poller.poll_once()
        items = scenario.truth(acct.id).next_invoice_item_count
        assert sim.stats.requests[GET_ITEMS] == 1 + math.ceil((items - 40) / 35)


async def test_absurd_total_is_retried_once_then_down_with_the_last_good_figures(
    make_poller: PollerFactory,
) -> None:
    """SoftLayer-Total-Items of 1e9: a few requests, a retry of the list, then the source is
    down with reason incomplete, the last good figures kept, one poll event; it recovers."""
    scenario = Scenario.generate(seed=24, accounts=[AccountSpec(items=400)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        poller = make_poller(make_config(sim, scenario, max_concurrent_requests=4))
        assert await poller.poll_once()
        good = poller.state.accounts["acct0"]
        sim.add_fault(FaultRule(kind=FaultKind.ABSURD_TOTAL_ITEMS, method=GET_ITEMS))
        sim.reset_stats()
        with structlog.testing.capture_logs() as events:
            assert not await poller.poll_once()
        bad = poller.state.accounts["acct0"]
        status = bad.sources[Source.NEXT_INVOICE_ITEMS]
        assert (status.up, status.last_error_reason) == (False, "incomplete")
        assert status.last_error is not None
        assert "1000000000" in status.last_error
        assert bad.next_invoice == good.next_invoice
        assert bad.summary == good.summary  # the forecast is held back whole
        assert bad.sources[Source.ACCOUNT].up
        # The end of the list (its total now says 1e9: a walk), then each walk: the first
        # page, then at most the 4 pages in flight when one ran short.
        assert sim.stats.requests[GET_ITEMS] <= 1 + 2 * (1 + 4 + 4)
        assert poller.api_stats.errors[("acct0", "incomplete")] == 2
        # One canonical event per poll, naming the retried list.
        (poll,) = [e for e in events if e["event"] == "poll"]
        assert poll["event"] == "poll"
        assert poll["lists_walked_twice"] == ["next_invoice_items"]
        (group,) = poll["errors"]
        assert (group["reason"], group["sources"]) == ("incomplete", ["next_invoice_items"])
        assert status.last_error == f"{GET_ITEMS}: {group['error']}"
        sim.clear_faults()
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)


async def test_a_walk_costs_what_it_did_and_a_few_rows_more(
    make_poller: PollerFactory,
) -> None:
    """Requests per walk: 1 + ceil((N - P - o) / P) per list, never more than the ceil(N / P)
    of offset paging without overlap; the same on every walk."""
    scenario = Scenario.generate(seed=25, accounts=[AccountSpec(items=1000)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(sim, scenario, page_size=100, full_walk_interval_seconds=0)
        poller = make_poller(config)
        items = scenario.truth(acct.id).next_invoice_item_count
        for _ in range(3):
            sim.reset_stats()
            assert await poller.poll_once()
            assert sim.stats.requests[GET_ITEMS] == pages(items, 100)
            assert sim.stats.requests[GET_ITEMS] <= math.ceil(items / 100)


async def test_timeout_on_a_big_page_halves_it_and_clean_walks_grow_it_back(
    make_poller: PollerFactory,
) -> None:
    """A page that times out is fetched as two halves (no retry of the same size); after five
    clean walks the page size doubles back towards page_size."""
    scenario = Scenario.generate(seed=26, accounts=[AccountSpec(items=120)], now=NOW)
    acct = scenario.accounts[0]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(
            sim, scenario, page_size=40, request_timeout_seconds=0.5, full_walk_interval_seconds=0
        )
        poller = make_poller(config)
        method = ("SoftLayer_Account", "getNextInvoiceTopLevelBillingItems")
        assert await poller.poll_once()
        client = poller.client("acct0")
        sim.add_fault(FaultRule(kind=FaultKind.HANG, method=GET_ITEMS, times=1))
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, acct.id)
        assert client.page_size(*method) == 20
        assert poller.api_stats.errors[("acct0", "timeout")] == 1
        sizes = []
        for _ in range(5):
            assert await poller.poll_once()
            sizes.append(client.page_size(*method))
        assert sizes == [20, 20, 20, 20, 40]


# -- properties: mutations between pages and caps at random ---------------------------------


@dataclass(frozen=True)
class Mutation:
    """One change to the account, made right after the k-th page of one list."""

    name: str
    method: str
    apply: Callable[[Scenario, int], Any]


def cancel_batch(scenario: Scenario, index: int) -> None:
    """Cancel 8 consecutive items at once: more rows than any page overlap."""
    acct = scenario.accounts[0]
    start = index % max(1, acct.item_count - 8)
    for row in range(start, start + 8):
        if row not in acct.cancelled:
            scenario.cancel_billing_item(acct.id, acct.item_id(row))


MUTATIONS = [
    Mutation("cancel", GET_ITEMS, lambda sc, i: sc.cancel_billing_item(
        sc.accounts[0].id, sc.accounts[0].item_id(i % sc.accounts[0].item_count))),
    Mutation("cancel_batch", GET_ITEMS, cancel_batch),
    Mutation("add_monthly", GET_ITEMS, lambda sc, i: sc.add_billing_item(
        sc.accounts[0].id, "server", Decimal(100 + i))),
    Mutation("add_hourly", GET_ITEMS, lambda sc, i: sc.add_billing_item(
        sc.accounts[0].id, "guest_core", Decimal("0.05"), hourly=True)),
    Mutation("open_invoice", GET_INVOICES, lambda sc, i: sc.open_pending_invoice(
        sc.accounts[0].id, Decimal(10 + i))),
    Mutation("pay_invoice", GET_INVOICES, lambda sc, i: sc.pay_pending_invoice(
        sc.accounts[0].id)),
]  # fmt: skip


@st.composite
def walks(draw: st.DrawFn) -> dict[str, Any]:
    """An account, a page size, a concurrency, a mutation after page k and maybe a cap."""
    return {
        "seed": draw(st.integers(0, 10_000)),
        "items": draw(st.integers(30, 220)),
        "page_size": draw(st.integers(4, 30)),
        "concurrency": draw(st.integers(1, 4)),
        "mutation": draw(st.sampled_from(MUTATIONS)),
        "target": draw(st.integers(0, 10_000)),
        "after_pages": draw(st.integers(1, 12)),
        "cap": draw(st.none() | st.integers(3, 40)),
        "cap_header": draw(st.booleans()),
    }


async def one_walk(case: dict[str, Any]) -> None:
    spec = AccountSpec(items=case["items"], invoice_months=18)
    scenario = Scenario.generate(seed=case["seed"], accounts=[spec], now=NOW)
    acct = scenario.accounts[0]
    mutation: Mutation = case["mutation"]
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(
            sim,
            scenario,
            page_size=case["page_size"],
            max_concurrent_requests=case["concurrency"],
            invoice_lookback_seconds=400 * 86_400.0,
            full_walk_interval_seconds=0,  # the second poll walks: the change hits its pages
        )
        poller = Poller(config, ExporterState(("acct0",)), clock=scenario.clock.time)
        try:
            assert await poller.poll_once()  # a good poll first: the last good figures
            good = poller.state.accounts["acct0"]
            if case["cap"] is not None:
                sim.set_page_cap(case["cap"], total_header=case["cap_header"])
            before = scenario.truth(acct.id)
            hook = sim.mutate_after_pages(
                case["after_pages"],
                lambda sc: mutation.apply(sc, case["target"]),
                method=mutation.method,
                account_id=acct.id,
            )
            with structlog.testing.capture_logs():
                await poller.poll_once()
            fired = hook.fired.is_set()
            sim.state.page_hooks.clear()
            after = scenario.truth(acct.id)
            snapshot = poller.state.accounts["acct0"]
            check_items(snapshot, good, before, after)
            check_invoices(snapshot, good, before, after)
            if not fired:
                assert before == after
        finally:
            await poller.aclose()


def check_items(
    snapshot: AccountSnapshot, good: AccountSnapshot, before: AccountTruth, after: AccountTruth
) -> None:
    status = snapshot.sources[Source.NEXT_INVOICE_ITEMS]
    if status.up:
        assert served_categories(snapshot) in (categories(before), categories(after))
        assert snapshot.summary is not None
        assert snapshot.summary.next_invoice_pre_tax_usd in (
            before.next_invoice_pre_tax,
            after.next_invoice_pre_tax,
        )
    else:
        assert status.last_error_reason == "incomplete", status
        assert snapshot.next_invoice == good.next_invoice


def check_invoices(
    snapshot: AccountSnapshot, good: AccountSnapshot, before: AccountTruth, after: AccountTruth
) -> None:
    status = snapshot.sources[Source.INVOICES]
    if status.up:
        assert snapshot.invoices is not None
        since = snapshot.invoices.since
        assert served_window(snapshot) in (
            window_counts(before, since),
            window_counts(after, since),
        )
    else:
        assert status.last_error_reason == "incomplete", status
        assert snapshot.invoices == good.invoices


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walks())
def test_mutation_between_pages_and_caps_never_mix_or_lose(case: dict[str, Any]) -> None:
    """Whatever page the account changes after and whatever the server's page cap: each list
    is served as the truth before or after the change, or is down (incomplete) with its last
    good figures."""
    asyncio.run(one_walk(case))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    items=st.integers(1, 150),
    page_size=st.integers(3, 25),
    cap=st.none() | st.integers(2, 30),
    header=st.booleans(),
)
def test_caps_alone_are_exact_after_at_most_one_retry(
    seed: int, items: int, page_size: int, cap: int | None, header: bool
) -> None:
    """Without changes, any cap (with or without the total) gives the exact truth: at worst
    the first walk learns the cap and the retry pages at it."""

    async def run() -> None:
        scenario = Scenario.generate(seed=seed, accounts=[AccountSpec(items=items)], now=NOW)
        async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
            sim.set_page_cap(cap, total_header=header)
            config = make_config(sim, scenario, page_size=page_size)
            poller = Poller(config, ExporterState(("acct0",)))
            try:
                with structlog.testing.capture_logs():
                    assert await poller.poll_once()
                assert_matches_truth(
                    poller.state.accounts["acct0"], scenario, scenario.accounts[0].id
                )
            finally:
                await poller.aclose()

    asyncio.run(run())


async def test_float_noise_on_every_number_is_served_exact(make_poller: PollerFactory) -> None:
    """Every JSON number one ulp off (19.080000000000002): figures equal the truth, all up."""
    scenario = Scenario.generate(seed=27, accounts=[AccountSpec(items=80)], now=NOW)
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        sim.add_fault(FaultRule(kind=FaultKind.FLOAT_NOISE))
        poller = make_poller(make_config(sim, scenario, page_size=25))
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)


async def test_rows_shifted_below_an_empty_last_page_are_not_lost() -> None:
    """8 rows cancelled after the 10th of 11 pages: the last page comes back empty (the list
    shrank below its offset) and must not pass for the end; the retry serves the truth after."""
    await one_walk(
        {
            "seed": 0,
            "items": 163,
            "page_size": 16,
            "concurrency": 1,
            "mutation": MUTATIONS[1],
            "target": 0,
            "after_pages": 10,
            "cap": None,
            "cap_header": False,
        }
    )


async def test_a_page_cap_without_the_header_on_a_shrinking_list() -> None:
    """No total, pages capped at 7 and 8 rows cancelled mid-walk: never a loss."""
    await one_walk(
        {
            "seed": 3,
            "items": 120,
            "page_size": 10,
            "concurrency": 2,
            "mutation": MUTATIONS[1],
            "target": 20,
            "after_pages": 3,
            "cap": 7,
            "cap_header": False,
        }
    )
