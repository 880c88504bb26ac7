"""Helpers and fixtures for tests against the simulated SoftLayer API (softlayer/, poller/)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import AccountSnapshot, ExporterState, InvoiceSummary, Source

#: Projections are rounded to a micro-dollar (exporter.wire.AMOUNT_PLACES).
MICRO_DOLLAR = Decimal("0.000001")
#: Fast retries so fault tests take milliseconds; the policy itself is what's under test.
FAST_RETRY = RetryConfig(attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.005)

#: Parsed invoice field -> the simulator truth's field it must equal.
INVOICE_FIELDS = {
    "invoice_id": "id",
    "type_code": "type_code",
    "status_code": "status_code",
    "created": "created",
    "closed": "closed",
    "total_usd": "total",
    "pre_tax_usd": "pre_tax",
    "recurring_usd": "recurring",
    "one_time_usd": "one_time",
    "tax_usd": "tax",
    "payments_usd": "payments",
    "item_count": "item_count",
}
#: Account summary field -> the simulator truth's field it must equal.
SUMMARY_FIELDS = {
    "balance_usd": "balance",
    "next_invoice_pre_tax_usd": "next_invoice_pre_tax",
    "next_invoice_recurring_usd": "next_invoice_recurring",
    "next_invoice_one_time_usd": "next_invoice_one_time",
    "next_invoice_tax_usd": "next_invoice_tax",
    "next_invoice_item_count": "next_invoice_item_count",
}


def account_config(sim: SimulatorServer, acct: Any, name: str, method: AuthMethod) -> AccountConfig:
    """Credentials of one simulated account in the requested auth style."""
    if method is AuthMethod.CLASSIC:
        auth = AuthConfig(method=method, api_key=Secret(acct.api_key), username=acct.username)
    else:
        auth = AuthConfig(
            method=method, api_key=Secret(acct.api_key), iam_token_url=sim.iam_token_url
        )
    return AccountConfig(name=name, endpoint=sim.endpoint, auth=auth)


def make_config(
    sim: SimulatorServer,
    scenario: Scenario,
    *,
    method: AuthMethod = AuthMethod.CLASSIC,
    **overrides: Any,
) -> Config:
    """A config polling every scenario account as ``acct0``, ``acct1``, ..."""
    accounts = tuple(
        account_config(sim, acct, f"acct{index}", method)
        for index, acct in enumerate(scenario.accounts)
    )
    settings: dict[str, Any] = {
        "request_timeout_seconds": 2.0,
        "max_requests_per_second": 500.0,
        "max_concurrent_requests": 4,
        "page_size": 100,
        "retry": FAST_RETRY,
        "top_categories": 1000,
        "poll_interval_seconds": 60.0,
    }
    settings.update(overrides)
    return Config(accounts=accounts, **settings)


def pages(count: int, size: int) -> int:
    """Requests a paged method needs for ``count`` records: always at least one.

    Pages ask for ``size + overlap`` rows, ``size`` apart (the overlap is
    ``max(2, size // 20)``), so this is never more than ``ceil(count / size)``.
    """
    limit = size + max(2, size // 20)
    return 1 if count <= limit else 1 + math.ceil((count - limit) / size)


def window_invoices(truth: Any, since: datetime) -> list[Any]:
    """Invoices of the truth created inside the poller's look-back window."""
    return [inv for inv in truth.invoices if inv.created >= since]


def assert_invoice(parsed: InvoiceSummary | None, expected: Any) -> None:
    """Every field of a parsed invoice equals the simulator's ground truth."""
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    assert {ours: getattr(parsed, ours) for ours in INVOICE_FIELDS} == {
        ours: getattr(expected, theirs) for ours, theirs in INVOICE_FIELDS.items()
    }


def assert_matches_truth(snapshot: AccountSnapshot, scenario: Scenario, account_id: int) -> None:
    """The whole snapshot of one account equals ``scenario.truth()`` (top-N not folding)."""
    truth = scenario.truth(account_id)
    acct = next(a for a in scenario.accounts if a.id == account_id)
    summary = snapshot.summary
    assert summary is not None
    assert (summary.account_id, summary.company_name) == (account_id, acct.company_name)
    assert {ours: getattr(summary, ours) for ours in SUMMARY_FIELDS} == {
        ours: getattr(truth, theirs) for ours, theirs in SUMMARY_FIELDS.items()
    }
    assert_invoice(snapshot.latest_recurring_invoice, truth.latest_recurring_invoice)
    assert snapshot.pending_invoice is not None
    assert_invoice(snapshot.pending_invoice.invoice, truth.pending_invoice)
    breakdown = snapshot.next_invoice
    assert breakdown is not None
    assert breakdown.folded_categories == 0
    assert breakdown.item_count == truth.next_invoice_item_count
    got = {
        c.code: (c.name, c.amount_usd, c.hourly_items, c.monthly_items, c.hourly_usd)
        for c in breakdown.categories
    }
    want = {
        c.code: (c.name or c.code, c.amount, c.hourly_items, c.monthly_items, c.hourly_amount)
        for c in truth.categories.values()
    }
    assert got == want
    # The billing cycle and the projections to its end, at the poll's own time.
    assert summary.billing_cycle is not None
    assert (summary.billing_cycle.start, summary.billing_cycle.end) == (
        truth.cycle_start,
        truth.cycle_end,
    )
    polled_at = snapshot.sources[Source.NEXT_INVOICE_ITEMS].last_attempt
    hours_left = truth.hours_left(polled_at)
    for category in breakdown.categories:
        expected = truth.categories[category.code].projected(hours_left)
        assert category.projected_usd is not None
        assert abs(category.projected_usd - expected) <= MICRO_DOLLAR, category.code
    assert breakdown.projected_pre_tax_usd is not None
    assert abs(breakdown.projected_pre_tax_usd - truth.projected_pre_tax(polled_at)) <= (
        MICRO_DOLLAR
    )
    window = snapshot.invoices
    assert window is not None
    expected_counts = dict.fromkeys(window.counts, 0)
    expected_amounts = dict.fromkeys(window.amounts_usd, 0)
    failures = []
    for inv in window_invoices(truth, window.since):
        expected_counts[(inv.type_code, inv.status_code)] += 1
        expected_amounts[(inv.type_code, inv.status_code)] += inv.total
        if inv.status_code == "CLOSED_FAILED" and inv.closed is not None:
            failures.append(inv.closed)
    assert dict(window.counts) == expected_counts
    assert dict(window.amounts_usd) == expected_amounts
    assert len(window.counts) == 18
    assert window.last_payment_failure == (max(failures) if failures else None)


@pytest.fixture
def scenario() -> Scenario:
    """Two accounts: one with a pending invoice and 40 items, one without and 5 items."""
    return Scenario.generate(
        seed=7,
        accounts=[
            AccountSpec(items=40, pending_invoice=True, invoice_months=24),
            AccountSpec(items=5, pending_invoice=False),
        ],
    )


PollerFactory = Callable[..., Poller]


@pytest.fixture
async def make_poller() -> AsyncIterator[PollerFactory]:
    """Build pollers (closed at teardown) for a config."""
    made: list[Poller] = []

    def factory(config: Config) -> Poller:
        poller = Poller(config, ExporterState(tuple(a.name for a in config.accounts)))
        made.append(poller)
        return poller

    yield factory
    for poller in made:
        await poller.aclose()


def with_accounts(config: Config, *names: str) -> Config:
    """The same config restricted to some accounts."""
    return replace(config, accounts=tuple(a for a in config.accounts if a.name in names))
