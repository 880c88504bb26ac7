"""Immutable billing snapshots: the contract between the poller and the metrics collector.

The poller builds one :class:`AccountSnapshot` per account per poll cycle from plain
domain records (no Prometheus, no HTTP in here) and publishes it into :class:`ExporterState`
with a single assignment. The collector reads ``ExporterState.accounts`` once per scrape and
renders every metric family from that one consistent view.

Money is :class:`decimal.Decimal` (USD) all the way to the collector, which converts to float
only when it emits a sample: SoftLayer sends amounts as decimal strings (``".048"``) and we do
not want binary rounding in sums over 100,000 items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "INVOICE_STATUSES",
    "INVOICE_TYPES",
    "OTHER_CATEGORY",
    "AccountSnapshot",
    "AccountSummary",
    "CategoryTotals",
    "ExporterState",
    "InvoiceSummary",
    "InvoiceWindow",
    "NextInvoiceBreakdown",
    "PendingInvoice",
    "Source",
    "SourceStatus",
]

#: Every invoice type SoftLayer documents; window metrics always carry all of them.
INVOICE_TYPES: Final = (
    "NEW",
    "RECURRING",
    "ONE-TIME-CHARGE",
    "CREDIT",
    "REFUND",
    "MANUAL_PAYMENT_CREDIT",
)
#: Every invoice status SoftLayer documents.
INVOICE_STATUSES: Final = ("OPEN", "CLOSED", "CLOSED_FAILED")
#: Category label value that the categories beyond the configured top-N are folded into.
OTHER_CATEGORY: Final = "other"


class Source(StrEnum):
    """One independently polled part of an account's billing data (the ``source`` label)."""

    ACCOUNT = "account"  # balance and next-invoice totals (SoftLayer_Account::getObject)
    LATEST_RECURRING_INVOICE = "latest_recurring_invoice"
    PENDING_INVOICE = "pending_invoice"
    INVOICES = "invoices"  # invoices created inside the look-back window
    NEXT_INVOICE_ITEMS = "next_invoice_items"  # top-level billing items of the next invoice


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """Account identity, balance and the next invoice's totals (one getObject call)."""

    account_id: int
    company_name: str
    balance_usd: Decimal
    next_invoice_pre_tax_usd: Decimal
    next_invoice_recurring_usd: Decimal
    next_invoice_one_time_usd: Decimal
    next_invoice_tax_usd: Decimal
    next_invoice_item_count: int


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """The totals of one invoice, as SoftLayer reports them (never re-derived from items)."""

    invoice_id: int
    type_code: str
    status_code: str
    created: datetime
    closed: datetime | None
    total_usd: Decimal
    pre_tax_usd: Decimal
    recurring_usd: Decimal
    one_time_usd: Decimal
    tax_usd: Decimal
    payments_usd: Decimal
    item_count: int

    @property
    def open_balance_usd(self) -> Decimal:
        """What is still owed on this invoice: its total minus the payments applied to it."""
        return self.total_usd - self.payments_usd


@dataclass(frozen=True, slots=True)
class PendingInvoice:
    """Result of the pending-invoice source; ``invoice is None`` means "none open" (normal)."""

    invoice: InvoiceSummary | None


@dataclass(frozen=True, slots=True)
class InvoiceWindow:
    """Invoices created since ``since``, counted and summed per (type, status).

    ``counts`` and ``amounts_usd`` hold every pair of :data:`INVOICE_TYPES` x
    :data:`INVOICE_STATUSES`, zeros included, so series never appear or vanish.
    """

    since: datetime
    counts: Mapping[tuple[str, str], int]
    amounts_usd: Mapping[tuple[str, str], Decimal]


@dataclass(frozen=True, slots=True)
class CategoryTotals:
    """Next-invoice cost of one billing category (``categoryCode``), children included."""

    code: str
    name: str
    amount_usd: Decimal
    hourly_items: int
    monthly_items: int


@dataclass(frozen=True, slots=True)
class NextInvoiceBreakdown:
    """The next invoice's top-level billing items aggregated per category.

    ``categories`` holds at most the configured top-N by amount plus one
    :data:`OTHER_CATEGORY` entry; ``folded_categories`` counts what went into it.
    """

    categories: tuple[CategoryTotals, ...]
    folded_categories: int
    item_count: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Health of one source of one account after its latest attempt."""

    up: bool
    last_attempt: float  # unix time
    last_success: float | None  # unix time of the last attempt that succeeded
    last_error: str | None = None  # short, secret-free message of the latest failure
    last_error_reason: str | None = None  # auth|rate_limited|timeout|server|client|decode|network


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything known about one account after a poll cycle.

    A data field is ``None`` only when its source has never succeeded; after a failure the
    poller carries the previous value forward and marks the source down in ``sources``.
    """

    name: str  # the configured account name, the ``account`` label
    summary: AccountSummary | None = None
    latest_recurring_invoice: InvoiceSummary | None = None
    pending_invoice: PendingInvoice | None = None
    invoices: InvoiceWindow | None = None
    next_invoice: NextInvoiceBreakdown | None = None
    sources: Mapping[Source, SourceStatus] = field(default_factory=lambda: MappingProxyType({}))
    poll_duration_seconds: float | None = None
    next_poll: float | None = None  # unix time the next cycle is due

    @property
    def up(self) -> bool:
        """True when every source succeeded on its latest attempt."""
        return bool(self.sources) and all(status.up for status in self.sources.values())


class ExporterState:
    """The published snapshots, one per account, replaced whole by the poller.

    ``accounts`` is swapped with one assignment per publish, so a scrape that reads it once
    sees one consistent set of snapshots; nothing in it is ever mutated in place.
    """

    def __init__(self, account_names: tuple[str, ...] = ()) -> None:
        self.accounts: Mapping[str, AccountSnapshot] = MappingProxyType(
            {name: AccountSnapshot(name=name) for name in account_names}
        )
        self.first_cycle_done = False

    def publish(self, snapshot: AccountSnapshot) -> None:
        """Replace one account's snapshot, leaving the others untouched."""
        updated = dict(self.accounts)
        updated[snapshot.name] = snapshot
        self.accounts = MappingProxyType(updated)
