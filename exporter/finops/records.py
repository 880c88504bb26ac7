"""Typed records of the FinOps sources, as an account snapshot holds them.

Plain frozen data like the rest of :mod:`exporter.snapshot`: no HTTP, no Prometheus. Money is
:class:`~decimal.Decimal` USD (SoftLayer documents every amount in US dollars; an account's
local currency only comes with an exchange rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from exporter.snapshot import InvoiceSummary

__all__ = [
    "NO_DATACENTER",
    "OTHER",
    "UNKNOWN",
    "BillingProfile",
    "DatacenterTotals",
    "ExchangeRate",
    "HistoryInvoice",
    "InvoiceCategories",
    "InvoiceCategory",
    "InvoiceHistory",
    "ItemInsights",
    "TopItem",
]

#: Label value of everything folded beyond a configured limit (datacenters, categories).
OTHER: Final = "other"
#: Datacenter label of an item SoftLayer sends without a ``location``.
NO_DATACENTER: Final = "none"
#: Label value of a code or name that cannot be a label value (free text, too long).
UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class DatacenterTotals:
    """Next-invoice cost of the top-level items of one datacenter (``location.name``).

    Like :class:`~exporter.snapshot.CategoryTotals`: ``monthly_usd`` is the whole month of
    the monthly items, ``hourly_usd`` the hourly items' accrual so far this cycle, both
    children included (``nextInvoiceTotalRecurringAmount``).
    """

    name: str
    hourly_usd: Decimal
    monthly_usd: Decimal
    items: int
    #: The hourly items' summed effective hourly rate (to accrue between walks).
    hourly_rate_usd: Decimal = Decimal(0)

    @property
    def amount_usd(self) -> Decimal:
        """What the next invoice bills for this datacenter if it were cut now."""
        return self.hourly_usd + self.monthly_usd


@dataclass(frozen=True, slots=True)
class TopItem:
    """One of the most expensive top-level billing items on the next invoice.

    ``name`` is ``hostName.domainName`` (or ``hostName``) where SoftLayer sends a host name,
    else the item's ``description``; ``amount_usd`` its ``nextInvoiceTotalRecurringAmount``
    (children included; month to date for an hourly item).
    """

    item_id: int
    name: str
    category: str
    datacenter: str
    hourly: bool
    amount_usd: Decimal
    #: Effective hourly rate of an hourly item, children included (0 for a monthly one).
    hourly_rate_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ItemInsights:
    """Where the next invoice's money goes, folded from the same item walk as the categories.

    ``datacenters`` holds at most the configured number by amount plus one :data:`OTHER`
    entry (``folded_datacenters`` counts what went into it); ``top_items`` the configured
    number of most expensive items, most expensive first (ties: lower id first);
    ``other_items_usd`` / ``other_items`` sum up every item outside the top.
    """

    datacenters: tuple[DatacenterTotals, ...]
    folded_datacenters: int
    top_items: tuple[TopItem, ...]
    other_items_usd: Decimal
    other_items: int


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """A SoftLayer_Billing_Currency_ExchangeRate: ``rate`` as SoftLayer reports it.

    SLDN names its two currencies ``fundingCurrency`` and ``localCurrency`` and documents no
    direction; read as 1 ``funding`` = ``rate`` ``local``.
    """

    rate: Decimal
    funding: str
    local: str


@dataclass(frozen=True, slots=True)
class BillingProfile:
    """How the account is billed (``SoftLayer_Account`` and its ``billingInfo``).

    Every field is ``None`` where SoftLayer sends nothing (or ``null``): a card payer has no
    ``paymentTerms``, a USD account no exchange rate. Discounts are ratios (percent / 100).
    """

    currency: str | None
    currency_name: str | None
    exchange_rate: ExchangeRate | None
    anniversary_day: int | None
    payment_terms: int | None
    recurring_discount_ratio: Decimal | None
    one_time_discount_ratio: Decimal | None
    account_status_id: int | None
    account_status: str | None
    next_invoice_platform_services_usd: Decimal | None
    next_invoice_recurring_before_discount_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class InvoiceCategory:
    """Pre-tax amounts of one category's top-level lines of an invoice, children included."""

    code: str
    recurring_usd: Decimal
    one_time_usd: Decimal
    lines: int


@dataclass(frozen=True, slots=True)
class InvoiceCategories:
    """An invoice's top-level lines per ``categoryCode``.

    The top ``top_categories`` by amount plus :data:`OTHER` (``folded`` counts the
    categories in it).
    """

    invoice_id: int
    categories: tuple[InvoiceCategory, ...]
    folded: int
    lines: int


@dataclass(frozen=True, slots=True)
class HistoryInvoice:
    """One recurring invoice of the history: its totals and the exchange rate it was billed at."""

    invoice: InvoiceSummary
    exchange_rate: ExchangeRate | None


@dataclass(frozen=True, slots=True)
class InvoiceHistory:
    """The newest recurring invoices and the latest one's breakdown by category.

    ``invoices`` are newest first (the index is ``months_ago``); ``latest_categories`` is
    None while the account has no recurring invoice.
    """

    invoices: tuple[HistoryInvoice, ...]
    latest_categories: InvoiceCategories | None
