"""Deterministic generated SoftLayer accounts, their ground truth, and billing-cycle mutations.

An account holds its top-level billing items as parallel ``array`` columns (one row per item,
a few dozen bytes each) instead of objects, so 200,000 items generate in about a second and
take tens of MB; children are not stored at all but derived from the item's catalogue tier.
Invoices either *view* a prefix of the billing-item table (monthly RECURRING invoices bill
every item that existed when they were cut) or carry a short explicit list of lines (NEW,
ONE-TIME-CHARGE, CREDIT, ...). Running prefix sums make every invoice total O(1).

Money is integer mills (1/1000 USD) inside; :meth:`Scenario.truth` hands out ``Decimal``.
The truth is computed from these tables directly, never from rendered API responses, so tests
can compare what the API says against it.

Billing over time runs on the scenario's :class:`~exporter.simulator.clock.SimClock`
(``scenario.clock``); :meth:`Scenario.advance` moves it and runs what SoftLayer does meanwhile
(sources: softlayer-cli fixture ``SoftLayer_Virtual_Guest/getObject.json`` for month-to-date
hourly amounts, SLDN's SoftLayer_Billing_Invoice datatype for statuses):

- hourly items accrue one hour at the top of every simulated hour: ``hoursUsed`` and the
  month-to-date ``nextInvoiceTotalRecurringAmount`` (children included) grow, monthly items
  stay at their whole month;
- on the anniversary (``billingInfo.nextBillDate``) the RECURRING invoice is cut ``OPEN`` with
  every active item (monthly fees, hourly usage of the cycle that ended, setup fees of items
  new since the last cut), items scheduled to end with the cycle leave, hourly items restart at
  0 hours and the cycle moves one month on;
- the invoice is closed by payment after the account's terms (:attr:`AccountSpec.payment`):
  a card the same day (``CLOSED``), invoice terms after ``payment_terms_days`` (``CLOSED``),
  a failing card the same day (``CLOSED_FAILED``, nothing paid).

No public source says when within the hour SoftLayer counts an hour, how many minutes after the
anniversary the invoice is cut, or how long a card payment takes; the simulator's choices (top
of the hour, on the anniversary, four hours) are documented in docs/reliability.md.
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import random
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any, Final

from exporter.simulator.catalog import (
    ACTIVE_STATUS,
    CATEGORIES,
    CATEGORY_INDEX,
    COMPANY_NAMES,
    CURRENCIES,
    Category,
    Tier,
)
from exporter.simulator.clock import SimClock
from exporter.simulator.wireformat import (
    CENTRAL,
    aware,
    decimal_to_mills,
    mills_to_decimal,
    utc_epoch,
)

__all__ = [
    "AccountSpec",
    "AccountTruth",
    "BillingTruth",
    "CategoryTruth",
    "ExchangeRate",
    "InvoiceLine",
    "InvoiceTruth",
    "Scenario",
    "SimAccount",
    "SimInvoice",
    "SimUser",
    "exchange_rate",
]

#: Tier index marking an item added by :meth:`Scenario.add_billing_item`: no children.
CUSTOM_TIER: Final = 255
#: Billing item ids: top-level item ``i`` is ``base + i * ID_STRIDE``; child ``j`` adds ``j``.
ID_STRIDE: Final = 8
_ITEM_ID_BASE: Final = 100_000_000
_ACCOUNT_ITEM_SPAN: Final = 20_000_000
#: Invoice item ids are ``invoice id * _INVOICE_ITEM_SPAN + position``.
INVOICE_ITEM_SPAN: Final = 10_000_000
_DAY: Final = 86_400
_HOUR: Final = 3_600
#: A card is charged the same day the invoice is cut: this many seconds after the cut.
CARD_SETTLE_SECONDS: Final = 4 * _HOUR
#: How an account pays its recurring invoices (see AccountSpec.payment).
PAYMENT_METHODS: Final = ("card", "invoice", "card_failed")


def tax_of(mills: int, tax_bp: int) -> int:
    """Tax on one charge, rounded half-up to the mill (the simulator taxes per line)."""
    return (mills * tax_bp + 5000) // 10000


def discount_of(mills: int, percent: int) -> int:
    """Return the account discount of ``percent`` on an amount, rounded half-up to the mill."""
    return (mills * percent + 50) // 100


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """A SoftLayer_Billing_Currency_ExchangeRate: 1 USD (funding) in the local currency.

    Properties ``id``, ``rate``, ``effectiveDate``, ``expirationDate``, ``fundingCurrency``
    and ``localCurrency`` (SLDN SoftLayer_Billing_Currency_ExchangeRate datatype page;
    softlayer-go ``datatypes/billing.go``). No public capture shows a value: the direction
    (local units per USD), the monthly validity and the rates are INFERRED.
    """

    id: int
    local: str  # the local currency's key name
    rate: Decimal
    effective: int  # epoch seconds
    expiration: int


def exchange_rate(currency: str, moment: int) -> ExchangeRate | None:
    """Return the rate valid at ``moment`` for ``currency``; None for USD (nothing to exchange).

    Rates hold for a calendar month (Central time) and drift by up to 2 % around the
    currency's base rate from month to month, deterministically.
    """
    spec = CURRENCIES[currency]
    if spec.base_rate is None:
        return None
    local = datetime.fromtimestamp(moment, CENTRAL)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    index = start.year * 12 + start.month - 1
    drift = Decimal((index * 37) % 41 - 20) / 1000
    base = Decimal(spec.base_rate)
    places = base.as_tuple().exponent
    rate = (base * (1 + drift)).quantize(
        Decimal(1).scaleb(places if isinstance(places, int) else -4)
    )
    return ExchangeRate(
        id=700_000 + spec.id * 10_000 + index % 10_000,
        local=currency,
        rate=rate,
        effective=utc_epoch(start),
        expiration=utc_epoch(_add_months(start, 1)),
    )


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What to generate for one account.

    ``items`` counts top-level billing items (children come on top). ``invoice_months`` is how
    many monthly RECURRING invoices the history has; the latest is the pending (OPEN) one when
    ``pending_invoice`` is set. ``tax_rate`` (e.g. ``Decimal("0.0825")``) defaults to one drawn
    from the seed. ``payment`` is how the recurring invoices the billing clock cuts get paid:
    ``card`` (the same day), ``invoice`` (``payment_terms_days`` after the cut) or
    ``card_failed`` (closed ``CLOSED_FAILED`` the same day, nothing paid).

    Billing terms (``SoftLayer_Billing_Info``, see :mod:`exporter.simulator.model`):
    ``currency`` is a key of :data:`~exporter.simulator.catalog.CURRENCIES` (amounts stay
    USD; the invoices carry the month's exchange rate); ``recurring_discount_percent`` and
    ``one_time_discount_percent`` (0..100) are the account discounts applied to the next
    invoice's and the recurring invoices' totals (never to billing items);
    ``platform_services`` is the monthly pre-tax platform-services charge, which is on the
    next invoice's and the recurring invoices' totals but on no billing item.
    """

    items: int = 40
    pending_invoice: bool = True
    invoice_months: int = 12
    tax_rate: Decimal | None = None
    company_name: str | None = None
    payment: str = "card"
    payment_terms_days: int = 30
    currency: str = "USD"
    recurring_discount_percent: int = 0
    one_time_discount_percent: int = 0
    platform_services: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.items < 0:
            raise ValueError(f"AccountSpec.items must be >= 0, got {self.items}")
        if self.invoice_months < 0:
            raise ValueError(f"AccountSpec.invoice_months must be >= 0, got {self.invoice_months}")
        if self.pending_invoice and self.invoice_months < 1:
            raise ValueError("AccountSpec.pending_invoice needs invoice_months >= 1")
        if self.tax_rate is not None and not Decimal(0) <= self.tax_rate < Decimal(1):
            raise ValueError(f"AccountSpec.tax_rate must be in [0, 1), got {self.tax_rate}")
        if self.tax_rate is not None and (self.tax_rate * 10000) % 1:
            raise ValueError("AccountSpec.tax_rate must be a whole number of basis points")
        if self.payment not in PAYMENT_METHODS:
            raise ValueError(
                f"AccountSpec.payment must be one of {', '.join(PAYMENT_METHODS)}, "
                f"got {self.payment!r}"
            )
        if not 0 <= self.payment_terms_days <= 366:
            raise ValueError("AccountSpec.payment_terms_days must be in [0, 366]")
        if self.currency not in CURRENCIES:
            raise ValueError(
                f"AccountSpec.currency must be one of {', '.join(CURRENCIES)}, "
                f"got {self.currency!r}"
            )
        for name in ("recurring_discount_percent", "one_time_discount_percent"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"AccountSpec.{name} must be in [0, 100]")
        if self.platform_services < 0 or (self.platform_services * 1000) % 1:
            raise ValueError("AccountSpec.platform_services must be >= 0, in whole mills")


@dataclass(frozen=True, slots=True)
class SimUser:
    """A SoftLayer_User_Customer as it appears under ``orderItem.order.userRecord``."""

    id: int
    username: str
    display_name: str
    email: str | None
    iam_id: str
    status_id: int
    status_key: str
    status_name: str


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One explicit top-level line of a small invoice (no children)."""

    category: int  # index into CATEGORIES
    description: str
    recurring: int  # mills
    one_time: int  # mills


@dataclass(slots=True)
class SimInvoice:
    """One SoftLayer_Billing_Invoice; totals are fixed when it is cut."""

    id: int
    type_code: str
    status_code: str
    created: int
    closed: int | None
    modified: int
    tax_bp: int
    payments: int
    view_hi: int  # billing-item rows [0, view_hi) when >= 0; -1 for explicit lines
    view_new_lo: int  # rows >= this carry their setup fee on this invoice
    lines: tuple[InvoiceLine, ...]
    #: Rows billed when not all of [0, view_hi) are (items cancelled before the cut).
    rows: Sequence[int] | None = None
    #: Hours used per row at the cut (billing-clock invoices); None: the generation's hours.
    hours: Sequence[int] | None = None
    recurring: int = 0
    one_time: int = 0
    recurring_tax: int = 0
    one_time_tax: int = 0
    item_count: int = 0
    top_level_count: int = 0
    starting_balance: int = 0
    ending_balance: int = 0
    #: Platform-services charge (untaxed, on no line), recurring invoices of accounts with one.
    platform: int = 0

    @property
    def tax(self) -> int:
        """Total tax in mills."""
        return self.recurring_tax + self.one_time_tax

    @property
    def pre_tax(self) -> int:
        """Recurring plus one-time plus platform services, before tax, in mills."""
        return self.recurring + self.one_time + self.platform

    @property
    def total(self) -> int:
        """``invoiceTotalAmount`` in mills: what the invoice adds to the balance."""
        return self.pre_tax + self.tax


@dataclass(frozen=True, slots=True)
class InvoiceTruth:
    """Ground truth of one invoice (Decimal USD).

    ``item_count`` is ``itemCount`` (children included); ``top_level_item_count`` is
    ``invoiceTopLevelItemCount``.
    """

    id: int
    type_code: str
    status_code: str
    created: datetime
    closed: datetime | None
    total: Decimal
    pre_tax: Decimal
    recurring: Decimal
    one_time: Decimal
    tax: Decimal
    payments: Decimal
    item_count: int
    top_level_item_count: int
    starting_balance: Decimal
    ending_balance: Decimal
    #: ``localCurrencyExchangeRate`` (None on a USD account's invoices).
    exchange_rate: ExchangeRate | None = None


@dataclass(frozen=True, slots=True)
class BillingTruth:
    """The account's billing information (``SoftLayer_Account.billingInfo`` and co.).

    ``payment_terms`` is ``paymentTerms`` (None, sent as ``null``, for card payers);
    ``exchange_rate`` is the currency's ``currentExchangeRate`` (None for USD).
    """

    currency: str
    currency_name: str
    exchange_rate: ExchangeRate | None
    payment_terms: int | None
    recurring_discount_percent: int
    one_time_discount_percent: int
    account_status_id: int
    account_status: str
    next_invoice_recurring_before_discount: Decimal
    next_invoice_platform_services: Decimal


@dataclass(frozen=True, slots=True)
class CategoryTruth:
    """Next-invoice amount of one top-level category (children included).

    ``hourly_amount`` is the hourly items' month-to-date accrual (part of ``amount``);
    ``hourly_rate`` their summed rate per hour, children included. ``known_hourly_rate`` is
    the rate an API client can tell today: an item that has not used an hour yet this cycle
    shows only its own ``hourlyRecurringFee`` (its children have accrued nothing to divide).
    """

    code: str
    name: str
    amount: Decimal
    hourly_items: int
    monthly_items: int
    hourly_amount: Decimal = Decimal(0)
    hourly_rate: Decimal = Decimal(0)
    known_hourly_rate: Decimal = Decimal(0)

    @property
    def monthly_amount(self) -> Decimal:
        """The monthly items' part of ``amount`` (the whole month)."""
        return self.amount - self.hourly_amount

    def projected(self, hours_left: Decimal) -> Decimal:
        """Return ``amount`` with the hourly items accruing ``hours_left`` more hours.

        The rate is the one an API client knows (see ``known_hourly_rate``).
        """
        return self.amount + self.known_hourly_rate * max(Decimal(0), hours_left)


@dataclass(frozen=True, slots=True)
class AccountTruth:
    """Ground truth of one account, computed from the scenario's tables."""

    account_id: int
    company_name: str
    balance: Decimal
    next_invoice_pre_tax: Decimal
    next_invoice_recurring: Decimal
    next_invoice_one_time: Decimal
    next_invoice_tax: Decimal
    next_invoice_recurring_tax: Decimal
    next_invoice_one_time_tax: Decimal
    next_invoice_item_count: int
    all_top_level_item_count: int
    categories: dict[str, CategoryTruth]
    latest_recurring_invoice: InvoiceTruth | None
    pending_invoice: InvoiceTruth | None
    invoices: list[InvoiceTruth]
    cycle_start: datetime
    cycle_end: datetime
    anniversary_day: int
    billing: BillingTruth | None = None

    def hours_left(self, now: float) -> Decimal:
        """Hours from ``now`` (unix time) to the end of the cycle, never negative."""
        return Decimal(repr(max(0.0, self.cycle_end.timestamp() - now))) / 3600

    def projected_pre_tax(self, now: float) -> Decimal:
        """Return the next invoice's pre-tax total, hourly items accruing to the cycle's end."""
        rate = sum((c.known_hourly_rate for c in self.categories.values()), Decimal(0))
        return self.next_invoice_pre_tax + rate * self.hours_left(now)


class SimAccount:
    """One generated account.

    The public face is ``id``, ``username``, ``api_key``,
    ``iam_api_key`` (IBM Cloud API key for ``apikey`` auth and the IAM token endpoint) and
    ``company_name``; the columns below are the simulator's own storage.
    """

    def credentials(self) -> dict[str, Any]:
        """Return the account's public face as JSON: what a client needs to log in to it."""
        return {
            "id": self.id,
            "username": self.username,
            "api_key": self.api_key,
            "iam_api_key": self.iam_api_key,
            "company_name": self.company_name,
        }

    def __init__(self, index: int, seed: int, spec: AccountSpec, now: int) -> None:
        rng = random.Random(f"{seed}/{index}")  # noqa: S311  deterministic test data, not crypto
        self.index = index
        self.spec = spec
        self.id = 300_000 + index * 7_919 + (seed % 997) * 11
        self.company_name = spec.company_name or (
            f"{COMPANY_NAMES[(seed + index) % len(COMPANY_NAMES)]} {self.id}"
        )
        self.username = f"{self.id}_billing{index}@example.com"
        self.api_key = f"{rng.getrandbits(256):064x}"
        self.iam_api_key = hashlib.sha256(f"iam/{seed}/{index}".encode()).hexdigest()[:44]
        self.brand_id = 2
        self.account_status_id, self.account_status_name = ACTIVE_STATUS
        self.country = "US"
        self.currency = spec.currency
        self.recurring_discount = spec.recurring_discount_percent
        self.one_time_discount = spec.one_time_discount_percent
        self.platform_services = decimal_to_mills(spec.platform_services)
        if spec.tax_rate is not None:
            self.tax_bp = int(spec.tax_rate * 10000)
        else:
            self.tax_bp = rng.choice((0, 0, 500, 825))
        self.item_base = _ITEM_ID_BASE + index * _ACCOUNT_ITEM_SPAN
        self.users = (
            SimUser(
                self.id * 10 + 1,
                self.username,
                "Billing Owner",
                f"billing{index}@example.com",
                f"IBMid-{self.id:08d}",
                1001,
                "ACTIVE",
                "Active",
            ),
            SimUser(
                self.id * 10 + 2,
                f"{self.id}_ops",
                "Ops Robot",
                None,
                f"SL-{self.id * 10 + 2}",
                1021,
                "CANCEL_PENDING",
                "cancel_pending",
            ),
        )
        self.misc_counts = {
            "blockDeviceTemplateGroupCount": rng.randint(0, 40),
            "domainCount": rng.randint(0, 50),
            "openTicketCount": rng.randint(0, 6),
            "userCount": len(self.users),
        }
        # The billing cycle: anniversary day-of-month at 23:00 Central, like the captures.
        day = rng.randint(1, 28)
        self.anniversary_day = day
        self.payment = spec.payment
        self.payment_terms_days = spec.payment_terms_days if spec.payment == "invoice" else 0
        self.payments_due: list[tuple[int, int]] = []  # (due epoch, invoice id), by due time
        local_now = aware(now)
        anchor = local_now.replace(day=day, hour=23, minute=0, second=0, microsecond=0)
        if anchor > local_now:
            anchor = _add_months(anchor, -1)
        self.cycle_start = utc_epoch(anchor)
        self.next_bill = utc_epoch(_add_months(anchor, 1))
        months = max(spec.invoice_months, 1)
        self.created = utc_epoch(_add_months(anchor, -months)) - 20 * _DAY
        self._init_columns()
        self._generate_items(rng, spec.items, now)
        self._generate_invoices(rng, spec, now, anchor)
        # Hourly accrual from here on: hours(row, t) = t // 3600 - origin_h[row].
        self.accrued_h = now // _HOUR
        self.origin_h = array("q", (self.accrued_h - h for h in self.hours))
        self.hours0 = array("I", self.hours)  # what generated invoices' lines show
        self.hourly_rows = [row for row, flag in enumerate(self.hourly) if flag]

    # -- generation --------------------------------------------------------------------------

    def _init_columns(self) -> None:
        # Item columns (see module docstring); prefix sums have one extra leading zero.
        self.cat = array("B")
        self.tier = array("B")
        self.hourly = array("B")
        self.hours = array("I")
        self.own = array("q")  # parent's own monthly fee, or hourly rate (mills)
        self.created_at = array("q")
        self.cancel_at = array("q")  # 0 = no cancellation date
        self.rec = array("q")  # next-invoice recurring incl. children
        self.tax = array("q")
        self.setup = array("q")
        self.setup_tax = array("q")
        self.count = array("B")  # 1 + children
        self.p_rec = array("q", [0])
        self.p_tax = array("q", [0])
        self.p_setup = array("q", [0])
        self.p_setup_tax = array("q", [0])
        self.p_count = array("q", [0])
        self.cancelled: set[int] = set()
        # Bumped by every mutation of this account; keys the per-account caches below.
        self.version = 0
        self._category_cache: tuple[int, dict[str, tuple[int, int, int, int, int, int]]] | None = (
            None
        )
        self.invoices: list[SimInvoice] = []
        self.invoice_seq = 0

    def _generate_items(self, rng: random.Random, n: int, now: int) -> None:
        weights = list(accumulate(c.weight for c in CATEGORIES))
        total_weight = weights[-1]
        span_start = self.created + _DAY
        step = max((now - 3600 - span_start) // (n + 1), 1) if n else 1
        bp = self.tax_bp
        monthly_cache: dict[tuple[int, int], tuple[int, int]] = {}
        rand = rng.random
        cat_a, tier_a, hourly_a, hours_a = self.cat, self.tier, self.hourly, self.hours
        own_a, created_a, cancel_a = self.own, self.created_at, self.cancel_at
        rec_a, tax_a, setup_a, setup_tax_a, count_a = (
            self.rec,
            self.tax,
            self.setup,
            self.setup_tax,
            self.count,
        )
        cycle_start, next_bill = self.cycle_start, self.next_bill
        for i in range(n):
            c = bisect.bisect_right(weights, rand() * total_weight)
            category = CATEGORIES[c]
            t = int(rand() * len(category.tiers))
            tier = category.tiers[t]
            created = span_start + i * step + int(rand() * step)
            hourly = rand() < category.hourly_share
            if hourly:
                since = max(created, cycle_start)
                hours = max(1, int((now - since) / 3600 * (0.5 + rand() / 2)))
                own = tier.rate
                rec, tax = _hourly_totals(tier, hours, bp)
            else:
                hours = 0
                own = tier.fee
                cached = monthly_cache.get((c, t))
                if cached is None:
                    cached = monthly_cache[(c, t)] = _monthly_totals(tier, bp)
                rec, tax = cached
            cat_a.append(c)
            tier_a.append(t)
            hourly_a.append(hourly)
            hours_a.append(hours)
            own_a.append(own)
            created_a.append(created)
            # About 1 in 100 items is scheduled to end with the current cycle.
            cancel_a.append(next_bill if rand() < 0.01 else 0)
            rec_a.append(rec)
            tax_a.append(tax)
            setup_a.append(tier.setup)
            setup_tax_a.append(tax_of(tier.setup, bp))
            count_a.append(1 + len(tier.children))
        self.p_rec.extend(_prefix(rec_a))
        self.p_tax.extend(_prefix(tax_a))
        self.p_setup.extend(_prefix(setup_a))
        self.p_setup_tax.extend(_prefix(setup_tax_a))
        self.p_count.extend(_prefix(count_a))

    def _generate_invoices(
        self, rng: random.Random, spec: AccountSpec, now: int, anchor: datetime
    ) -> None:
        months = spec.invoice_months
        invoices: list[SimInvoice] = []
        prev_hi = 0
        for m in range(months - 1, -1, -1):  # oldest first
            # Invoices are cut a few minutes after the anniversary, but never in the future.
            cut = min(utc_epoch(_add_months(anchor, -m)) + rng.randint(600, 900), now - 120)
            hi = bisect.bisect_left(self.created_at, cut)
            latest = m == 0
            inv = self._view_invoice("RECURRING", cut, hi, prev_hi)
            prev_hi = hi
            age = months - 1 - m  # 0 for the oldest month
            failed = (not latest) and (age == 2 or (age > 4 and rng.random() < 0.06))
            if latest and spec.pending_invoice:
                inv.status_code = "OPEN"
            elif failed:
                inv.status_code = "CLOSED_FAILED"
                inv.closed = max(min(cut + 3 * _DAY, now - 60), cut + 1)
            else:
                inv.status_code = "CLOSED"
                inv.closed = max(min(cut + 2 * _DAY + rng.randint(0, 7200), now - 60), cut + 1)
                inv.payments = inv.total
            inv.modified = inv.closed or cut + 78
            invoices.append(inv)
            if latest:
                continue
            extras = self._extra_invoices(rng, cut, age, inv, now)
            invoices.extend(extras)
        invoices.sort(key=lambda v: v.created)
        for inv in invoices:
            self.invoice_seq += 1
            inv.id = self._invoice_id(self.invoice_seq)
        self.invoices = invoices
        self.recompute_balances()

    def _extra_invoices(
        self, rng: random.Random, cut: int, age: int, recurring: SimInvoice, now: int
    ) -> list[SimInvoice]:
        """Cut the small invoices of one month; every type shows up in the first five months."""
        out: list[SimInvoice] = []

        def line(code: str, description: str, recurring_fee: int, one_time: int) -> InvoiceLine:
            return InvoiceLine(CATEGORY_INDEX[code], description, recurring_fee, one_time)

        def add(
            type_code: str, offset_days: int, lines: Sequence[InvoiceLine], taxed: bool = True
        ) -> SimInvoice:
            created = min(cut + offset_days * _DAY + rng.randint(0, 36_000), now - 120)
            bp = self.tax_bp if taxed else 0
            inv = self._line_invoice(type_code, created, tuple(lines), bp)
            inv.status_code = "CLOSED"
            inv.closed = max(min(created + 4, now - 60), created + 1)
            inv.modified = inv.closed + 9
            if inv.total > 0:
                inv.payments = inv.total
            out.append(inv)
            return inv

        if age == 0 or rng.random() < 0.3:
            fee = rng.randint(5, 400) * 1000 + rng.choice((0, 50, 330, 875))
            add("NEW", 9, [line("guest_core", "2 x 2.0 GHz or higher Cores (prorated)", fee, 0)])
        if age == 1 or rng.random() < 0.15:
            fee = rng.randint(10, 500) * 1000
            add("ONE-TIME-CHARGE", 12, [line("ssl_certificate", "RapidSSL - 1 year", 0, fee)])
        if age == 1 or rng.random() < 0.1:
            credit = -rng.randint(5, 100) * 1000
            add("CREDIT", 15, [line("bandwidth", "Credit for service disruption", 0, credit)])
        if age == 2 or (recurring.status_code == "CLOSED_FAILED"):
            # The failed card payment is settled by wire a few days later (payments are untaxed).
            add(
                "MANUAL_PAYMENT_CREDIT",
                5,
                [line("bandwidth", "Manual payment credit", 0, -recurring.total)],
                taxed=False,
            )
        if age == 3 or rng.random() < 0.04:
            refund = rng.randint(5, 60) * 1000
            inv = add("REFUND", 18, [line("bandwidth", "Refund of account credit", 0, refund)])
            inv.payments = 0
        return out

    # -- invoice construction ----------------------------------------------------------------

    def _invoice_id(self, seq: int) -> int:
        return 40_000_000 + self.index * 100_000 + seq * 7

    def _view_invoice(self, type_code: str, created: int, hi: int, new_lo: int) -> SimInvoice:
        inv = SimInvoice(
            0, type_code, "OPEN", created, None, created + 78, self.tax_bp, 0, hi, new_lo, ()
        )
        inv.recurring = self.p_rec[hi]
        inv.recurring_tax = self.p_tax[hi]
        inv.one_time = self.p_setup[hi] - self.p_setup[new_lo]
        inv.one_time_tax = self.p_setup_tax[hi] - self.p_setup_tax[new_lo]
        inv.item_count = self.p_count[hi]
        inv.top_level_count = hi
        self._apply_account_terms(inv)
        return inv

    def _apply_account_terms(self, inv: SimInvoice) -> None:
        """Apply the account discounts to a recurring invoice and add platform services.

        Account discounts apply to account and invoice totals, never to billing items
        (softlayer-api.md section 8 item 7: ``...BeforeAccountDiscount`` in softlayer-go
        ``datatypes/account.go``, ``Billing_Info.percentDiscountRecurring``); the lines keep
        their own amounts, so they need not add up to the totals. How SoftLayer rounds a
        discount, and whether tax is computed before or after it, is not documented: here
        each total and its tax lose the percentage, rounded half-up to the mill (INFERRED).
        """
        inv.recurring -= discount_of(inv.recurring, self.recurring_discount)
        inv.recurring_tax -= discount_of(inv.recurring_tax, self.recurring_discount)
        inv.one_time -= discount_of(inv.one_time, self.one_time_discount)
        inv.one_time_tax -= discount_of(inv.one_time_tax, self.one_time_discount)
        inv.platform = self.platform_services

    def _line_invoice(
        self, type_code: str, created: int, lines: tuple[InvoiceLine, ...], tax_bp: int
    ) -> SimInvoice:
        inv = SimInvoice(0, type_code, "OPEN", created, None, created + 9, tax_bp, 0, -1, 0, lines)
        inv.recurring = sum(line.recurring for line in lines)
        inv.one_time = sum(line.one_time for line in lines)
        inv.recurring_tax = sum(tax_of(line.recurring, tax_bp) for line in lines)
        inv.one_time_tax = sum(tax_of(line.one_time, tax_bp) for line in lines)
        inv.item_count = inv.top_level_count = len(lines)
        return inv

    def recompute_balances(self) -> None:
        """Re-derive every invoice's starting/ending balance in creation order."""
        running = 0
        for inv in self.invoices:
            inv.starting_balance = running
            running += inv.total - inv.payments
            inv.ending_balance = running

    # -- queries used by the API and the truth -----------------------------------------------

    def previous_anniversary(self, moment: int) -> int:
        """Return the anniversary one month before the anniversary ``moment`` (epoch)."""
        return utc_epoch(_add_months(aware(moment), -1))

    @property
    def item_count(self) -> int:
        """Top-level billing items ever created (cancelled ones included)."""
        return len(self.cat)

    def item_id(self, row: int, child: int = 0) -> int:
        """Return the SoftLayer_Billing_Item id of a row (``child`` 0 = the top-level item)."""
        return self.item_base + row * ID_STRIDE + child

    def locate_item(self, item_id: int) -> tuple[int, int] | None:
        """``(row, child)`` of a billing item id of this account, or None."""
        offset = item_id - self.item_base
        if offset < 0:
            return None
        row, child = divmod(offset, ID_STRIDE)
        if row >= self.item_count or child > self.child_count(row):
            return None
        return row, child

    def tier_of(self, row: int) -> Tier | None:
        """Return the catalogue tier of a row; None for items added by hand (no children)."""
        t = self.tier[row]
        return None if t == CUSTOM_TIER else CATEGORIES[self.cat[row]].tiers[t]

    def child_count(self, row: int) -> int:
        """How many child items a row has."""
        return self.count[row] - 1

    def category_of(self, row: int) -> Category:
        """Return the catalogue category of a row."""
        return CATEGORIES[self.cat[row]]

    def is_active(self, row: int) -> bool:
        """Whether a row is billed on the next invoice."""
        return row not in self.cancelled

    def active_rows(self) -> Sequence[int]:
        """Rows on the next invoice, in id order."""
        if not self.cancelled:
            return range(self.item_count)
        return array("i", (r for r in range(self.item_count) if r not in self.cancelled))

    def latest_recurring(self) -> SimInvoice | None:
        """Return the newest RECURRING invoice, whatever its status."""
        for inv in reversed(self.invoices):
            if inv.type_code == "RECURRING":
                return inv
        return None

    def pending(self) -> SimInvoice | None:
        """Return the newest OPEN invoice (SoftLayer's ``pendingInvoice``)."""
        for inv in reversed(self.invoices):
            if inv.status_code == "OPEN":
                return inv
        return None

    def next_new_lo(self) -> int:
        """First row whose setup fee lands on the next invoice (created after the last cut)."""
        latest = self.latest_recurring()
        if latest is None:
            return 0
        return latest.view_hi if latest.view_hi >= 0 else self._rows_before(latest.created)

    def _rows_before(self, moment: int) -> int:
        return bisect.bisect_left(self.created_at, moment)

    def next_one_time(self, row: int) -> int:
        """Return the row's ``nextInvoiceTotalOneTimeAmount`` in mills."""
        return self.setup[row] if row >= self.next_new_lo() else 0

    def next_totals(self) -> tuple[int, int, int, int, int]:
        """Sum up the next invoice after the account discounts, in mills.

        Returns (recurring, one_time, recurring_tax, one_time_tax, top-level count); the
        platform-services charge (:attr:`platform_services`) comes on top of these.
        """
        recurring, one_time, rec_tax, one_tax, count = self.next_totals_before_discount()
        return (
            recurring - discount_of(recurring, self.recurring_discount),
            one_time - discount_of(one_time, self.one_time_discount),
            rec_tax - discount_of(rec_tax, self.recurring_discount),
            one_tax - discount_of(one_tax, self.one_time_discount),
            count,
        )

    def next_totals_before_discount(self) -> tuple[int, int, int, int, int]:
        """Sum up the next invoice's billing items, in mills (see :meth:`next_totals`)."""
        n = self.item_count
        lo = self.next_new_lo()
        recurring = self.p_rec[n]
        rec_tax = self.p_tax[n]
        one_time = self.p_setup[n] - self.p_setup[lo]
        one_tax = self.p_setup_tax[n] - self.p_setup_tax[lo]
        for row in self.cancelled:
            recurring -= self.rec[row]
            rec_tax -= self.tax[row]
            if row >= lo:
                one_time -= self.setup[row]
                one_tax -= self.setup_tax[row]
        return recurring, one_time, rec_tax, one_tax, n - len(self.cancelled)

    def hourly_rate(self, row: int) -> int:
        """Return a row's hourly rate in mills per hour, children included (0 if monthly)."""
        if not self.hourly[row]:
            return 0
        tier = self.tier_of(row)
        children = 0 if tier is None else sum(child.rate for child in tier.children)
        return self.own[row] + children

    def category_totals(self) -> dict[str, tuple[int, int, int, int, int, int]]:
        """Sum the active rows per category code.

        Each value is (recurring mills, hourly items, monthly items, hourly recurring mills,
        hourly rate in mills per hour, known hourly rate: see CategoryTruth).
        """
        if self._category_cache is not None and self._category_cache[0] == self.version:
            return self._category_cache[1]
        sums: dict[int, list[int]] = {}
        cancelled = self.cancelled
        for row, (c, hourly, rec) in enumerate(zip(self.cat, self.hourly, self.rec, strict=True)):
            if cancelled and row in cancelled:
                continue
            entry = sums.get(c)
            if entry is None:
                entry = sums[c] = [0, 0, 0, 0, 0, 0]
            entry[0] += rec
            entry[1 if hourly else 2] += 1
            if hourly:
                entry[3] += rec
                entry[4] += self.hourly_rate(row)
                entry[5] += self.hourly_rate(row) if self.hours[row] else self.own[row]
        result = {
            CATEGORIES[c].code: (v[0], v[1], v[2], v[3], v[4], v[5])
            for c, v in sorted(sums.items())
        }
        self._category_cache = (self.version, result)
        return result

    def count_properties(self) -> dict[str, int]:
        """Return the SoftLayer_Account ``*Count`` properties."""
        counts = dict.fromkeys(
            (c.count_property for c in CATEGORIES if c.count_property is not None), 0
        )
        for code, (_, hourly, monthly, *_) in self.category_totals().items():
            prop = CATEGORIES[CATEGORY_INDEX[code]].count_property
            if prop is not None:
                counts[prop] += hourly + monthly
        counts.update(self.misc_counts)
        return counts

    def payment_terms(self) -> int | None:
        """``billingInfo.paymentTerms``: the invoice terms in days; None for card payers.

        softlayer-cli captures (``SoftLayer_Account/getObject.json``) send ``null``.
        """
        return self.payment_terms_days if self.payment == "invoice" else None

    def current_exchange_rate(self) -> ExchangeRate | None:
        """Return the billing currency's rate now (the hour the account was last brought to)."""
        return exchange_rate(self.currency, self.accrued_h * _HOUR)

    def invoice_exchange_rate(self, inv: SimInvoice) -> ExchangeRate | None:
        """``localCurrencyExchangeRate`` of an invoice: the rate of the month it was cut."""
        return exchange_rate(self.currency, inv.created)

    # -- the billing clock -------------------------------------------------------------------

    def _hourly_charge(self, row: int, hours: int) -> tuple[int, int]:
        """(recurring, tax) mills of an hourly row after ``hours`` hours, children included."""
        tier = self.tier_of(row)
        children = () if tier is None else tier.children
        charges = [self.own[row] * hours, *(child.rate * hours for child in children)]
        return sum(charges), sum(tax_of(c, self.tax_bp) for c in charges)

    def reprice(self, row: int, own: int) -> None:
        """Give a row a new own fee (monthly) or rate (hourly); its children keep theirs."""
        self.own[row] = own
        if self.hourly[row]:
            rec, tax = self._hourly_charge(row, self.hours[row])
        else:
            tier = self.tier_of(row)
            fees = [own, *(() if tier is None else (child.fee for child in tier.children))]
            rec, tax = sum(fees), sum(tax_of(f, self.tax_bp) for f in fees)
        self.rec[row], self.tax[row] = rec, tax
        self.p_rec = array("q", [0, *_prefix(self.rec)])
        self.p_tax = array("q", [0, *_prefix(self.tax)])

    def accrue(self, moment: int) -> bool:
        """Bring every hourly row's hours and charges to ``moment``; True if anything changed.

        Hours tick at the top of each simulated hour, so within an hour nothing changes.
        """
        hour = moment // _HOUR
        if hour == self.accrued_h:
            return False
        self.accrued_h = hour
        hours_a, origin, rec_a, tax_a = self.hours, self.origin_h, self.rec, self.tax
        changed = False
        for row in self.hourly_rows:
            hours = max(0, hour - origin[row])
            if hours != hours_a[row]:
                hours_a[row] = hours
                rec_a[row], tax_a[row] = self._hourly_charge(row, hours)
                changed = True
        if changed:
            self.p_rec = array("q", [0, *_prefix(rec_a)])
            self.p_tax = array("q", [0, *_prefix(tax_a)])
            self.version += 1
        return changed

    def next_event(self) -> int:
        """Return the epoch of the account's next billing event (anniversary or payment)."""
        due = self.payments_due[0][0] if self.payments_due else self.next_bill
        return min(due, self.next_bill)

    def run_event(self) -> None:
        """Run the account's next billing event (see :meth:`next_event`)."""
        if self.payments_due and self.payments_due[0][0] <= self.next_bill:
            due, invoice_id = self.payments_due.pop(0)
            self._settle(due, invoice_id)
        else:
            self._anniversary(self.next_bill)
        self.version += 1

    def _settle(self, moment: int, invoice_id: int) -> None:
        inv = next(i for i in self.invoices if i.id == invoice_id)
        if inv.status_code != "OPEN":
            return  # paid by hand meanwhile
        failed = self.payment == "card_failed"
        inv.status_code = "CLOSED_FAILED" if failed else "CLOSED"
        inv.payments = 0 if failed else inv.total
        inv.closed = inv.modified = moment
        self.recompute_balances()

    def _anniversary(self, moment: int) -> None:
        """Cut the recurring invoice at ``moment``, restart hourly items, roll the cycle."""
        self.accrue(moment)  # the hourly usage of the cycle that ends now
        for row, ends in enumerate(self.cancel_at):
            if ends and ends <= moment and row not in self.cancelled:
                self.cancelled.add(row)  # scheduled to end with the cycle
        hi = bisect.bisect_left(self.created_at, moment)
        new_lo = self.next_new_lo()
        rows = [row for row in range(hi) if row not in self.cancelled]
        inv = SimInvoice(
            0, "RECURRING", "OPEN", moment, None, moment + 78, self.tax_bp, 0, hi, new_lo, ()
        )
        inv.rows = None if len(rows) == hi else array("i", rows)
        inv.hours = array("I", self.hours[:hi])
        inv.recurring = sum(self.rec[row] for row in rows)
        inv.recurring_tax = sum(self.tax[row] for row in rows)
        inv.one_time = sum(self.setup[row] for row in rows if row >= new_lo)
        inv.one_time_tax = sum(self.setup_tax[row] for row in rows if row >= new_lo)
        inv.item_count = sum(self.count[row] for row in rows)
        inv.top_level_count = len(rows)
        self._apply_account_terms(inv)
        self.invoice_seq += 1
        inv.id = self._invoice_id(self.invoice_seq)
        self.invoices.append(inv)
        self.recompute_balances()
        settle = moment + (
            self.payment_terms_days * _DAY if self.payment == "invoice" else CARD_SETTLE_SECONDS
        )
        bisect.insort(self.payments_due, (settle, inv.id))
        # A new cycle: hourly items restart from 0 hours at the anniversary.
        start_h = moment // _HOUR
        for row in self.hourly_rows:
            if row < hi:
                self.origin_h[row] = start_h
        self.accrued_h = -1  # force the recomputation below
        self.accrue(moment)
        self.cycle_start = moment
        self.next_bill = utc_epoch(_add_months(aware(moment), 1))

    # -- mutation helpers --------------------------------------------------------------------

    def append_item(self, category: int, own: int, hourly: bool, hours: int, created: int) -> int:
        """Append a childless row; returns its row index."""
        rec = own * hours if hourly else own
        tax = tax_of(rec, self.tax_bp)
        row = len(self.cat)
        self.origin_h.append(self.accrued_h - hours)
        self.hours0.append(hours)
        if hourly:
            self.hourly_rows.append(row)
        self.cat.append(category)
        self.tier.append(CUSTOM_TIER)
        self.hourly.append(hourly)
        self.hours.append(hours)
        self.own.append(own)
        self.created_at.append(created)
        self.cancel_at.append(0)
        self.rec.append(rec)
        self.tax.append(tax)
        self.setup.append(0)
        self.setup_tax.append(0)
        self.count.append(1)
        self.p_rec.append(self.p_rec[-1] + rec)
        self.p_tax.append(self.p_tax[-1] + tax)
        self.p_setup.append(self.p_setup[-1])
        self.p_setup_tax.append(self.p_setup_tax[-1])
        self.p_count.append(self.p_count[-1] + 1)
        return len(self.cat) - 1


def _prefix(values: Iterable[int]) -> Iterable[int]:
    return accumulate(values)


def _monthly_totals(tier: Tier, bp: int) -> tuple[int, int]:
    fees = [tier.fee, *(child.fee for child in tier.children)]
    return sum(fees), sum(tax_of(f, bp) for f in fees)


def _hourly_totals(tier: Tier, hours: int, bp: int) -> tuple[int, int]:
    charges = [tier.rate * hours, *(child.rate * hours for child in tier.children)]
    return sum(charges), sum(tax_of(c, bp) for c in charges)


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass
class Scenario:
    """A deterministic set of accounts; see :meth:`generate`.

    The billing clock (Python API; the admin API and the CLI drive the same calls):

    - ``scenario.clock`` is the :class:`~exporter.simulator.clock.SimClock`; hand
      ``scenario.clock.time`` to ``exporter.poller.Poller(clock=...)`` so that the exporter
      lives in the same simulated time;
    - :meth:`advance` / :meth:`advance_to` move it and run every billing event on the way
      (hourly accrual, the anniversary's invoice, payments), in order, before returning;
    - :meth:`set_speed` lets it run on its own (events then run on the next request);
    - :meth:`truth` is the ground truth at the clock's current time.

    Example, one simulated month in hourly steps::

        scenario = Scenario.generate(1, [AccountSpec(items=30, payment="invoice")], now=start)
        for _ in range(31 * 24):
            scenario.advance(timedelta(hours=1))
            truth = scenario.truth(scenario.accounts[0].id)
    """

    seed: int
    accounts: list[SimAccount]
    now: int  # the generation time
    fixed_clock: bool  # whether ``now`` was given (else it was the wall clock)
    version: int = 0
    clock: SimClock = field(default_factory=lambda: SimClock(0.0))
    _by_id: dict[int, SimAccount] = field(default_factory=dict, repr=False)
    _last_event: int = 0
    _truth_cache: dict[int, tuple[int, AccountTruth]] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(
        cls,
        seed: int,
        accounts: Sequence[AccountSpec],
        now: datetime | None = None,
        *,
        speed: float = 0.0,
    ) -> Scenario:
        """Generate accounts from a seed.

        ``now`` is when the simulated time starts (default: the wall clock); ``speed`` how
        many simulated seconds pass per real second (default 0: time moves only with
        :meth:`advance`, and each mutation stamps one second after the previous event).
        """
        if not accounts:
            raise ValueError("Scenario.generate needs at least one AccountSpec")
        if now is not None and now.tzinfo is None:
            raise ValueError("Scenario.generate: now must be timezone-aware")
        now_epoch = utc_epoch(now) if now is not None else int(time.time())
        built = [SimAccount(i, seed, spec, now_epoch) for i, spec in enumerate(accounts)]
        scenario = cls(seed, built, now_epoch, now is not None, clock=SimClock(now_epoch))
        scenario.clock.set_speed(speed)
        scenario._by_id = {a.id: a for a in built}
        scenario._last_event = now_epoch
        return scenario

    # -- the billing clock ------------------------------------------------------------------

    def sync(self) -> int:
        """Run every billing event due by the clock's time; returns that time (epoch)."""
        moment = max(self._last_event, int(self.clock.now()))
        changed = False
        for acct in self.accounts:
            while acct.next_event() <= moment:
                acct.run_event()
                changed = True
            changed = acct.accrue(moment) or changed
        if changed:
            self.version += 1
        return moment

    def advance(self, duration: timedelta | float) -> datetime:
        """Move the clock ``duration`` (or seconds) ahead, run what falls due; returns now."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        self.clock.advance(seconds)
        return aware(self.sync())

    def advance_to(self, moment: datetime) -> datetime:
        """Move the clock to ``moment`` (aware, not in the past), run what falls due."""
        if moment.tzinfo is None:
            raise ValueError("advance_to needs a timezone-aware moment")
        self.clock.advance_to(max(moment.timestamp(), self.clock.now()))
        return aware(self.sync())

    def set_speed(self, speed: float) -> None:
        """Let the clock run at ``speed`` simulated seconds per real second (0: stand still)."""
        self.sync()
        self.clock.set_speed(speed)

    # -- lookup ------------------------------------------------------------------------------

    def account(self, account_id: int) -> SimAccount:
        """Return the account with this id (KeyError with a clear message if none)."""
        try:
            return self._by_id[account_id]
        except KeyError:
            raise KeyError(f"no simulated account with id {account_id}") from None

    def event_time(self) -> int:
        """Return a strictly increasing timestamp for mutations (events due first run)."""
        self._last_event = max(self.sync(), self._last_event + 1)
        return self._last_event

    def current_time(self) -> int:
        """Return the scenario's "now" (epoch seconds), with every event due run."""
        return self.sync()

    # -- truth -------------------------------------------------------------------------------

    def truth(self, account_id: int) -> AccountTruth:
        """Ground truth of one account, computed from the tables (cached per mutation)."""
        self.sync()
        cached = self._truth_cache.get(account_id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        acct = self.account(account_id)
        recurring, one_time, rec_tax, one_tax, count = acct.next_totals()
        invoices = [_invoice_truth(inv, acct.currency) for inv in acct.invoices]
        by_id = {t.id: t for t in invoices}
        latest = acct.latest_recurring()
        pending = acct.pending()
        categories = {
            code: CategoryTruth(
                code,
                CATEGORIES[CATEGORY_INDEX[code]].name,
                mills_to_decimal(amount),
                hourly,
                monthly,
                mills_to_decimal(hourly_amount),
                mills_to_decimal(rate),
                mills_to_decimal(known),
            )
            for code, (amount, hourly, monthly, hourly_amount, rate, known) in (
                acct.category_totals().items()
            )
        }
        truth = AccountTruth(
            account_id=acct.id,
            company_name=acct.company_name,
            balance=mills_to_decimal(sum(inv.total - inv.payments for inv in acct.invoices)),
            next_invoice_pre_tax=mills_to_decimal(recurring + one_time + acct.platform_services),
            next_invoice_recurring=mills_to_decimal(recurring),
            next_invoice_one_time=mills_to_decimal(one_time),
            next_invoice_tax=mills_to_decimal(rec_tax + one_tax),
            next_invoice_recurring_tax=mills_to_decimal(rec_tax),
            next_invoice_one_time_tax=mills_to_decimal(one_tax),
            next_invoice_item_count=count,
            all_top_level_item_count=acct.item_count,
            categories=categories,
            latest_recurring_invoice=by_id[latest.id] if latest else None,
            pending_invoice=by_id[pending.id] if pending else None,
            invoices=invoices,
            cycle_start=aware(acct.cycle_start),
            cycle_end=aware(acct.next_bill),
            anniversary_day=acct.anniversary_day,
            billing=_billing_truth(acct),
        )
        self._truth_cache[account_id] = (self.version, truth)
        return truth

    # -- mutations ---------------------------------------------------------------------------

    def pay_pending_invoice(self, account_id: int) -> int:
        """Pay the pending invoice in full and close it; returns its id."""
        acct = self.account(account_id)
        inv = acct.pending()
        if inv is None:
            raise ValueError(f"account {account_id} has no pending (OPEN) invoice to pay")
        stamp = self.event_time()
        inv.payments = inv.total
        inv.status_code = "CLOSED"
        inv.closed = stamp
        inv.modified = stamp
        acct.recompute_balances()
        acct.version += 1
        self.version += 1
        return inv.id

    def open_pending_invoice(self, account_id: int, amount: Decimal = Decimal("5000")) -> int:
        """Cut a new OPEN RECURRING invoice of ``amount``; returns its id.

        ``amount`` is the ``invoiceTotalAmount`` (untaxed, split over three lines).
        """
        acct = self.account(account_id)
        mills = decimal_to_mills(amount)
        if mills < 0:
            raise ValueError(f"open_pending_invoice: amount must be >= 0, got {amount}")
        first = mills * 6 // 10
        second = mills * 3 // 10
        lines = (
            InvoiceLine(CATEGORY_INDEX["guest_core"], "Computing Instances", first, 0),
            InvoiceLine(CATEGORY_INDEX["storage_as_a_service"], "Storage As A Service", second, 0),
            InvoiceLine(CATEGORY_INDEX["bandwidth"], "Public Bandwidth", mills - first - second, 0),
        )
        stamp = self.event_time()
        inv = acct._line_invoice("RECURRING", stamp, lines, 0)
        acct.invoice_seq += 1
        inv.id = acct._invoice_id(acct.invoice_seq)
        acct.invoices.append(inv)
        acct.recompute_balances()
        acct.version += 1
        self.version += 1
        return inv.id

    def add_billing_item(
        self,
        account_id: int,
        category_code: str,
        recurring_fee: Decimal,
        hourly: bool = False,
    ) -> int:
        """Add an active top-level item (no children); returns its billing item id.

        It is billed ``recurring_fee`` on the next invoice; an hourly item gets that as its
        hourly rate with one hour used.
        """
        acct = self.account(account_id)
        category = CATEGORY_INDEX.get(category_code)
        if category is None:
            known = ", ".join(sorted(CATEGORY_INDEX))
            raise ValueError(f"unknown category_code {category_code!r}; known: {known}")
        own = decimal_to_mills(recurring_fee)
        if own < 0:
            raise ValueError(f"recurring_fee must be >= 0, got {recurring_fee}")
        row = acct.append_item(category, own, hourly, 1 if hourly else 0, self.event_time())
        acct.version += 1
        self.version += 1
        return acct.item_id(row)

    def recode_invoice(
        self,
        account_id: int,
        invoice_id: int,
        *,
        type_code: str | None = None,
        status_code: str | None = None,
    ) -> None:
        """Give an invoice a type or status code of SoftLayer's choosing, documented or not.

        SoftLayer may add codes its documentation does not list; this lets a test see how
        an exporter copes (the totals stay as they are).
        """
        acct = self.account(account_id)
        inv = next((i for i in acct.invoices if i.id == invoice_id), None)
        if inv is None:
            raise ValueError(f"account {account_id} has no invoice {invoice_id}")
        if type_code is not None:
            inv.type_code = type_code
        if status_code is not None:
            inv.status_code = status_code
        inv.modified = self.event_time()
        acct.version += 1
        self.version += 1

    def reprice_billing_item(self, account_id: int, item_id: int, fee: Decimal) -> None:
        """Re-price a top-level item now: its own monthly fee, or hourly rate, becomes ``fee``.

        Children keep their prices. An hourly item's month-to-date amount is rate x hours
        used, so the hours already used count at the new rate too (a simplification: no
        source says how SoftLayer splits a month re-priced midway).
        """
        acct = self.account(account_id)
        located = acct.locate_item(item_id)
        if located is None or located[1] != 0:
            raise ValueError(f"account {account_id} has no top-level billing item {item_id}")
        own = decimal_to_mills(fee)
        if own < 0:
            raise ValueError(f"fee must be >= 0, got {fee}")
        acct.reprice(located[0], own)
        acct.version += 1
        self.version += 1

    def cancel_billing_item(self, account_id: int, item_id: int) -> None:
        """Cancel a top-level item now.

        It leaves the next invoice and gets a ``cancellationDate``.
        """
        acct = self.account(account_id)
        located = acct.locate_item(item_id)
        if located is None or located[1] != 0:
            raise ValueError(f"account {account_id} has no top-level billing item {item_id}")
        row = located[0]
        if row in acct.cancelled:
            raise ValueError(f"billing item {item_id} is already cancelled")
        acct.cancelled.add(row)
        acct.cancel_at[row] = self.event_time()
        acct.version += 1
        self.version += 1


def _billing_truth(acct: SimAccount) -> BillingTruth:
    currency = CURRENCIES[acct.currency]
    return BillingTruth(
        currency=currency.key_name,
        currency_name=currency.name,
        exchange_rate=acct.current_exchange_rate(),
        payment_terms=acct.payment_terms(),
        recurring_discount_percent=acct.recurring_discount,
        one_time_discount_percent=acct.one_time_discount,
        account_status_id=acct.account_status_id,
        account_status=acct.account_status_name,
        next_invoice_recurring_before_discount=mills_to_decimal(
            acct.next_totals_before_discount()[0]
        ),
        next_invoice_platform_services=mills_to_decimal(acct.platform_services),
    )


def _invoice_truth(inv: SimInvoice, currency: str = "USD") -> InvoiceTruth:
    return InvoiceTruth(
        id=inv.id,
        type_code=inv.type_code,
        status_code=inv.status_code,
        created=aware(inv.created),
        closed=aware(inv.closed) if inv.closed is not None else None,
        total=mills_to_decimal(inv.total),
        pre_tax=mills_to_decimal(inv.pre_tax),
        recurring=mills_to_decimal(inv.recurring),
        one_time=mills_to_decimal(inv.one_time),
        tax=mills_to_decimal(inv.tax),
        payments=mills_to_decimal(inv.payments),
        item_count=inv.item_count,
        top_level_item_count=inv.top_level_count,
        starting_balance=mills_to_decimal(inv.starting_balance),
        ending_balance=mills_to_decimal(inv.ending_balance),
        exchange_rate=exchange_rate(currency, inv.created),
    )
