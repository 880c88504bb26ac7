"""Immutable billing snapshots: the contract between the poller and the metrics collector.

The poller builds one :class:`AccountSnapshot` per account per poll from plain domain
records (no Prometheus, no HTTP in here) and publishes it into :class:`ExporterState` with a
single assignment. The collector reads ``ExporterState.accounts`` once per scrape and renders
every metric family from that one consistent view.

A poll's sources each end as an :data:`Outcome`: :class:`Fetched` data with the snapshot
field it belongs in (one ``AccountSnapshot.with_*`` method per field, so the types are
checked end to end), or :class:`Failed`; :func:`assemble` turns the previous snapshot and
the outcomes into the next one, keeping the last good data of every failed source.

Money is :class:`decimal.Decimal` (USD) all the way to the collector, which converts to float
only when it emits a sample: SoftLayer sends amounts as decimal strings (``".048"``) and we do
not want binary rounding in sums over 100,000 items.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

if TYPE_CHECKING:  # the FinOps records import this module
    from exporter.finops.records import BillingProfile, InvoiceHistory, ItemInsights

__all__ = [
    "INVOICE_STATUSES",
    "INVOICE_TYPES",
    "MAX_UNDOCUMENTED_CODES",
    "OTHER_CATEGORY",
    "UNKNOWN_CODE",
    "AccountSnapshot",
    "AccountSummary",
    "BillingCycle",
    "CategoryTotals",
    "ExporterState",
    "Failed",
    "Fetched",
    "InvoiceSummary",
    "InvoiceWindow",
    "NextInvoiceBreakdown",
    "Outcome",
    "PendingInvoice",
    "Source",
    "SourceStatus",
    "assemble",
    "code_label",
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
#: Label value of a type or status code that cannot be exported under its own name: one that
#: does not look like a SoftLayer code, or one past :data:`MAX_UNDOCUMENTED_CODES`.
UNKNOWN_CODE: Final = "UNKNOWN"
#: Undocumented type (and, separately, status) codes exported under their own name per account
#: and poll; further ones are counted under :data:`UNKNOWN_CODE`. Bounds the label set.
MAX_UNDOCUMENTED_CODES: Final = 4
#: What a SoftLayer type or status code looks like (``RECURRING``, ``ONE-TIME-CHARGE``,
#: ``CLOSED_FAILED``): anything else (free text, empty, very long) is not a label value.
_CODE_SHAPE: Final = re.compile(r"[A-Z][A-Z0-9_-]{0,39}")


def code_label(code: str) -> str:
    """Return ``code`` if it has the shape of a SoftLayer code, else :data:`UNKNOWN_CODE`."""
    return code if _CODE_SHAPE.fullmatch(code) else UNKNOWN_CODE


class Source(StrEnum):
    """One independently polled part of an account's billing data (the ``source`` label)."""

    ACCOUNT = "account"  # balance and next-invoice totals (SoftLayer_Account::getObject)
    LATEST_RECURRING_INVOICE = "latest_recurring_invoice"
    PENDING_INVOICE = "pending_invoice"
    INVOICES = "invoices"  # invoices created inside the look-back window
    NEXT_INVOICE_ITEMS = "next_invoice_items"  # top-level billing items of the next invoice
    BILLING_INFO = "billing_info"  # currency, terms, discounts, status (the same getObject)
    INVOICE_HISTORY = "invoice_history"  # recurring invoices, the latest by category


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """The account's current billing cycle, from ``SoftLayer_Account.billingInfo``.

    ``end`` is ``nextBillDate`` (the anniversary the next recurring invoice is cut on);
    ``start`` is ``lastBillDate``, or one month before ``end`` when SoftLayer sends none.
    """

    start: datetime
    end: datetime

    def hours_left(self, now: float) -> Decimal:
        """Hours from ``now`` (unix time) to the end of the cycle, never negative."""
        seconds = max(0.0, self.end.timestamp() - now)
        return Decimal(repr(seconds)) / 3600


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """Account identity, balance and the next invoice's totals (one getObject call).

    The ``next_invoice_*`` totals belong to the next-invoice forecast: the poller publishes
    them only together with the item breakdown of the same poll (see
    :class:`AccountSnapshot`).
    """

    account_id: int
    company_name: str
    balance_usd: Decimal
    next_invoice_pre_tax_usd: Decimal
    next_invoice_recurring_usd: Decimal
    next_invoice_one_time_usd: Decimal
    next_invoice_tax_usd: Decimal
    next_invoice_item_count: int
    billing_cycle: BillingCycle | None = None
    #: ``nextInvoiceTotalRecurringAmountBeforeAccountDiscount``, if SoftLayer sends it.
    next_invoice_recurring_before_discount_usd: Decimal | None = None

    @property
    def items_recurring_usd(self) -> Decimal:
        """The recurring total the billing items' own amounts move with.

        Account discounts apply to account totals, never to billing items (softlayer-api.md
        section 8 item 7; softlayer-go ``datatypes/account.go``): an hour of accrual moves
        the total before the discount by exactly what it adds to the items. Without that
        field, the total after the discount (equal where there is no discount).
        """
        before = self.next_invoice_recurring_before_discount_usd
        return self.next_invoice_recurring_usd if before is None else before


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
    :data:`INVOICE_STATUSES`, zeros included, so series never appear or vanish, plus the
    pairs of undocumented codes seen in this window (bounded, see :func:`code_label`).
    ``last_payment_failure`` is the ``closedDate`` of the newest ``CLOSED_FAILED`` invoice
    in the window, if any.
    """

    since: datetime
    counts: Mapping[tuple[str, str], int]
    amounts_usd: Mapping[tuple[str, str], Decimal]
    last_payment_failure: datetime | None = None


@dataclass(frozen=True, slots=True)
class CategoryTotals:
    """Next-invoice cost of one billing category (``categoryCode``), children included.

    ``amount_usd`` is what the next invoice would bill if it were cut now: the whole month
    of monthly items plus the month-to-date accrual of hourly items (``hourly_usd``).
    ``hourly_rate_usd`` is the summed effective hourly rate of the hourly items;
    ``projected_usd`` (set by the poller, which knows the time and the cycle) is the amount
    with the hourly part projected to the end of the billing cycle.
    """

    code: str
    name: str
    amount_usd: Decimal
    hourly_items: int
    monthly_items: int
    hourly_usd: Decimal = Decimal(0)
    hourly_rate_usd: Decimal = Decimal(0)
    projected_usd: Decimal | None = None

    @property
    def monthly_usd(self) -> Decimal:
        """The monthly items' part of the amount (the whole month)."""
        return self.amount_usd - self.hourly_usd


@dataclass(frozen=True, slots=True)
class NextInvoiceBreakdown:
    """The next invoice's top-level billing items aggregated per category.

    ``categories`` holds at most the configured top-N by amount plus one
    :data:`OTHER_CATEGORY` entry; ``folded_categories`` counts what went into it.
    ``projected_pre_tax_usd`` is the account's next-invoice pre-tax total with the hourly part
    projected to the end of the cycle (set by the poller together with the categories).
    """

    categories: tuple[CategoryTotals, ...]
    folded_categories: int
    item_count: int
    projected_pre_tax_usd: Decimal | None = None
    #: Datacenters and top items of the same walk (exporter.finops.items).
    insights: ItemInsights | None = None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Health of one source of one account after its latest attempt."""

    up: bool
    last_attempt: float  # unix time
    last_success: float | None  # unix time of the last attempt that succeeded
    last_error: str | None = None  # short, secret-free message of the latest failure
    last_error_reason: str | None = None  # an ErrorReason value (exporter.errors)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything known about one account after a poll cycle.

    A data field is ``None`` only when its source has never succeeded; after a failure the
    poller carries the previous value forward and marks the source down in ``sources``.

    Figures computed together are published together: the next-invoice forecast (the
    ``next_invoice_*`` totals of ``summary``, the categories and the projections in
    ``next_invoice``) is replaced only when the account object and the item walk both
    succeeded in the same poll; otherwise all of it keeps its previous values and the
    ``next_invoice_items`` source is reported down (with the account object's failure when
    that was the cause), so that source's health is the forecast's freshness. The account's
    identity, balance and billing cycle follow the ``account`` source alone.
    ``sources`` is empty until the first poll ended.
    """

    name: str  # the configured account name, the ``account`` label
    summary: AccountSummary | None = None
    latest_recurring_invoice: InvoiceSummary | None = None
    pending_invoice: PendingInvoice | None = None
    invoices: InvoiceWindow | None = None
    next_invoice: NextInvoiceBreakdown | None = None
    billing: BillingProfile | None = None
    history: InvoiceHistory | None = None
    sources: Mapping[Source, SourceStatus] = field(default_factory=lambda: MappingProxyType({}))
    poll_duration_seconds: float | None = None
    next_poll: float | None = None  # unix time the next cycle is due

    @property
    def up(self) -> bool:
        """True when every source succeeded on its latest attempt."""
        return bool(self.sources) and all(status.up for status in self.sources.values())

    # One typed setter per data field: what a source's Fetched outcome stores into.

    def with_summary(self, value: AccountSummary) -> AccountSnapshot:
        """Return a copy with the account source's data replaced."""
        return replace(self, summary=value)

    def with_latest_recurring_invoice(self, value: InvoiceSummary | None) -> AccountSnapshot:
        """Return a copy with the latest recurring invoice replaced."""
        return replace(self, latest_recurring_invoice=value)

    def with_pending_invoice(self, value: PendingInvoice) -> AccountSnapshot:
        """Return a copy with the pending invoice replaced."""
        return replace(self, pending_invoice=value)

    def with_invoices(self, value: InvoiceWindow) -> AccountSnapshot:
        """Return a copy with the look-back window replaced."""
        return replace(self, invoices=value)

    def with_next_invoice(self, value: NextInvoiceBreakdown) -> AccountSnapshot:
        """Return a copy with the next-invoice breakdown replaced."""
        return replace(self, next_invoice=value)

    def with_billing(self, value: BillingProfile) -> AccountSnapshot:
        """Return a copy with the billing profile replaced."""
        return replace(self, billing=value)

    def with_history(self, value: InvoiceHistory) -> AccountSnapshot:
        """Return a copy with the recurring-invoice history replaced."""
        return replace(self, history=value)


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[_T]):
    """A source's fresh data and where it goes: ``store(snapshot, value)``."""

    source: Source
    value: _T
    store: Callable[[AccountSnapshot, _T], AccountSnapshot]


@dataclass(frozen=True, slots=True)
class Failed:
    """A source's failure: a short, secret-free message and its reason (an ErrorReason).

    ``cause`` is what went wrong without where (which call, which source): sources that
    failed for one cause are listed together in the poll's log event.
    """

    source: Source
    error: str
    reason: str | None
    cause: str | None = None

    @property
    def group(self) -> str:
        """The text this failure is listed under in the poll's log event."""
        return self.cause if self.cause is not None else self.error


#: What one source's attempt in a poll produced.
Outcome: TypeAlias = "Fetched[Any] | Failed"


def assemble(
    previous: AccountSnapshot,
    outcomes: Iterable[Outcome],
    *,
    now: float,
    duration: float,
    next_poll: float | None,
) -> AccountSnapshot:
    """Build the snapshot after a poll: fresh data where fetched, the last good elsewhere.

    Only the sources in ``outcomes`` (those polled) appear in ``sources``; a failed one keeps
    the time of its last success.
    """
    snapshot = previous
    sources: dict[Source, SourceStatus] = {}
    for outcome in outcomes:
        before = previous.sources.get(outcome.source)
        if isinstance(outcome, Fetched):
            snapshot = outcome.store(snapshot, outcome.value)
            sources[outcome.source] = SourceStatus(up=True, last_attempt=now, last_success=now)
        else:
            sources[outcome.source] = SourceStatus(
                up=False,
                last_attempt=now,
                last_success=None if before is None else before.last_success,
                last_error=outcome.error,
                last_error_reason=outcome.reason,
            )
    return replace(
        snapshot,
        sources=MappingProxyType(dict(sorted(sources.items()))),
        poll_duration_seconds=duration,
        next_poll=next_poll,
    )


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
