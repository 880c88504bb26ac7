"""Prebuilt snapshots for the scrape benchmark: 5 accounts with 200 categories each.

The scrape benchmark measures serving, not polling, so both servers render the same
fixed :class:`~exporter.snapshot.ExporterState`, built here without any HTTP.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    AccountSnapshot,
    AccountSummary,
    CategoryTotals,
    ExporterState,
    InvoiceSummary,
    InvoiceWindow,
    NextInvoiceBreakdown,
    PendingInvoice,
    Source,
    SourceStatus,
)

__all__ = ["API_METHODS", "build_api_stats", "build_config", "build_state"]

#: The methods one poll cycle calls, as the request counters label them.
API_METHODS = ("getObject", "getInvoices", "getNextInvoiceTopLevelBillingItems")


def _money(rng: random.Random, high: int) -> Decimal:
    return Decimal(rng.randrange(0, high * 100)) / 100


def _invoice(rng: random.Random, invoice_id: int, type_code: str, status: str) -> InvoiceSummary:
    created = datetime(2026, 11, 1, 6, tzinfo=UTC) - timedelta(days=rng.randrange(0, 60))
    pre_tax = _money(rng, 50_000)
    tax = (pre_tax * Decimal("0.08")).quantize(Decimal("0.01"))
    return InvoiceSummary(
        invoice_id=invoice_id,
        type_code=type_code,
        status_code=status,
        created=created,
        closed=None if status == "OPEN" else created + timedelta(days=3),
        total_usd=pre_tax + tax,
        pre_tax_usd=pre_tax,
        recurring_usd=pre_tax - Decimal(10),
        one_time_usd=Decimal(10),
        tax_usd=tax,
        payments_usd=Decimal(0) if status == "OPEN" else pre_tax + tax,
        item_count=rng.randrange(100, 100_000),
    )


def _account(rng: random.Random, index: int, categories: int, now: float) -> AccountSnapshot:
    name = f"account-{index}"
    totals = tuple(
        CategoryTotals(
            code=f"category_{index}_{n}",
            name=f"Category {n} of account {index}",
            amount_usd=_money(rng, 10_000),
            hourly_items=rng.randrange(0, 500),
            monthly_items=rng.randrange(0, 500),
        )
        for n in range(categories)
    )
    counts = {(t, s): rng.randrange(0, 4) for t in INVOICE_TYPES for s in INVOICE_STATUSES}
    amounts = {key: _money(rng, 20_000) * count for key, count in counts.items()}
    status = SourceStatus(up=True, last_attempt=now, last_success=now)
    return AccountSnapshot(
        name=name,
        summary=AccountSummary(
            account_id=100_000 + index,
            company_name=f"Company {index}",
            balance_usd=_money(rng, 100_000),
            next_invoice_pre_tax_usd=_money(rng, 1_000_000),
            next_invoice_recurring_usd=_money(rng, 1_000_000),
            next_invoice_one_time_usd=_money(rng, 1_000),
            next_invoice_tax_usd=_money(rng, 10_000),
            next_invoice_item_count=sum(c.hourly_items + c.monthly_items for c in totals),
        ),
        latest_recurring_invoice=_invoice(rng, 10 * index + 1, "RECURRING", "CLOSED"),
        pending_invoice=PendingInvoice(_invoice(rng, 10 * index + 2, "RECURRING", "OPEN")),
        invoices=InvoiceWindow(
            since=datetime.fromtimestamp(now - 90 * 86400, tz=UTC),
            counts=MappingProxyType(counts),
            amounts_usd=MappingProxyType(amounts),
        ),
        next_invoice=NextInvoiceBreakdown(
            categories=totals,
            folded_categories=0,
            item_count=sum(c.hourly_items + c.monthly_items for c in totals),
        ),
        sources=MappingProxyType(dict.fromkeys(Source, status)),
        poll_duration_seconds=12.5,
        next_poll=now + 900,
    )


def build_config(accounts: int = 5, categories: int = 200) -> Config:
    """A configuration naming the snapshot accounts, with room for every category."""
    return Config(
        accounts=tuple(
            AccountConfig(
                name=f"account-{index}",
                endpoint="http://127.0.0.1:9/rest/v3.1/",  # never contacted: no poller runs
                auth=AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret("x"), username="u"),
            )
            for index in range(accounts)
        ),
        top_categories=categories,
    )


def build_state(accounts: int = 5, categories: int = 200, seed: int = 7) -> ExporterState:
    """Published snapshots for ``accounts`` accounts of ``categories`` categories each."""
    rng = random.Random(seed)
    now = time.time()
    state = ExporterState(tuple(f"account-{index}" for index in range(accounts)))
    for index in range(accounts):
        state.publish(_account(rng, index, categories, now))
    state.first_cycle_done = True
    return state


def build_api_stats(accounts: int = 5, seed: int = 7) -> ApiStats:
    """Request counters and latencies as after a day of polling every 15 minutes."""
    rng = random.Random(seed)
    stats = ApiStats()
    for index in range(accounts):
        for method in API_METHODS:
            for _ in range(96):
                stats.record_request(f"account-{index}", method, "200", rng.uniform(0.05, 3.0))
        stats.record_request(f"account-{index}", "getInvoices", "500", 1.0)
        stats.record_error(f"account-{index}", "server")
    return stats
