"""Steady state: what an unchanged account's poll can skip, and the checks that allow it.

A big account's lists are long (100 top-level items per page: 2,000 requests for 200,000
items), and most polls find them as they were. The poller therefore walks a list only when
a cheap check says it changed; see docs/reliability.md, "Steady state", for what each check
proves and what it cannot see.

**Next-invoice items** (:class:`ItemsBaseline`, :func:`plan_items`). A complete walk leaves a
baseline: every category's totals (unfolded), the number of items and the highest item id,
the account's ``nextInvoiceTotalRecurringAmount`` and billing cycle at the walk. A later
poll, which reads the account object anyway, adds one request for the end of the id-ordered
list (:meth:`exporter.softlayer.SoftLayerClient.tail`) and walks when:

- there is no baseline, or ``full_walk_interval`` has passed since it was taken;
- the walk that took it may have straddled a change of the recurring total (the total read
  right after the walk differed from the one read before it: typically the top of an hour
  while hourly items were being read, softlayer-api.md section 8 item 1);
- the billing cycle changed (the anniversary restarts hourly items at 0 hours);
- the items are not those walked: the account's item count, or the list's last id (new
  items get higher ids, section 8 item 6), or the list's total differ;
- the recurring total moved by anything but a whole number of hours of the baseline's
  hourly accrual: the difference divided by the summed effective hourly rate must be a whole
  number ``h >= 0`` (at most the hours the clock allows since the walk) and the categories
  advanced by ``h`` hours must add up to the difference exactly, to the micro-dollar.

Otherwise the categories are the baseline's advanced by ``h`` hours of accrual
(:func:`exporter.wire.accrue_categories`): every running hourly item accrues the same hours
at its own effective rate, monthly items do not move. An added, cancelled or re-priced item,
or an item whose rate was only estimated at the walk (``hoursUsed`` 0), moves the total by
something else and triggers a walk. What no check sees is a change that keeps the item set
and the recurring total exactly (two items re-priced by opposite amounts, a category
renamed): it shows at the next full walk.

**Invoices in the look-back window** (:class:`InvoiceLedger`). After one walk of the window,
a closed invoice (``CLOSED``, ``CLOSED_FAILED``) is final (section 8 item 4) and never read
again; each poll asks only for invoices with an id above the highest seen (new ones) and for
the invoices still open, by id. Both answers must prove themselves complete (one page, the
filter applied), or the window is walked instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from exporter.finops.records import ItemInsights
from exporter.snapshot import AccountSummary, BillingCycle, CategoryTotals, InvoiceWindow
from exporter.softlayer import Tail
from exporter.wire import InvoiceWindowAggregator, WindowInvoice, accrue_categories

__all__ = ["InvoiceLedger", "ItemsBaseline", "Project", "Walk", "plan_items", "walk_due"]

_HOUR: Final = 3600.0
#: Slack on the hours the clock allows between a walk and now: our clock and SoftLayer's
#: accrual need not agree to the second.
_CLOCK_SLACK_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class ItemsBaseline:
    """What the last complete walk of the next-invoice items saw, to project from."""

    categories: tuple[CategoryTotals, ...]  # every category, none folded
    item_count: int
    last_id: int | None
    recurring_usd: Decimal  # the account's items_recurring_usd at the walk
    cycle: BillingCycle | None
    walked_at: float  # the poller clock's time of the walk's poll
    #: The recurring total read after the walk equals the one read before it (or no item
    #: accrues by the hour): the categories belong to that one total.
    anchored: bool
    #: Datacenters and top items of the same walk (exporter.finops.items), if asked for.
    insights: ItemInsights | None = None

    @property
    def hourly_rate_usd(self) -> Decimal:
        """The summed effective hourly rate of every hourly item at the walk."""
        return sum((c.hourly_rate_usd for c in self.categories), Decimal(0))


@dataclass(frozen=True, slots=True)
class Walk:
    """Walk the list: ``reason`` says why (named in the poll event)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Project:
    """The items are those walked: advance the baseline's categories by ``hours`` hours."""

    hours: int


def walk_due(
    baseline: ItemsBaseline | None, *, now: float, full_walk_interval: float
) -> Walk | None:
    """Return why the items must be walked whatever this poll's checks find, if so."""
    if baseline is None:
        return Walk("first walk")
    if full_walk_interval == 0 or now - baseline.walked_at >= full_walk_interval:
        return Walk("full walk due")
    if not baseline.anchored:
        return Walk("the totals moved during the last walk")
    return None


def plan_items(
    baseline: ItemsBaseline, summary: AccountSummary, tail: Tail, *, now: float
) -> Walk | Project:
    """Decide whether this poll must walk the items (see the module docstring).

    Call it when :func:`walk_due` found no reason to walk.
    """
    if summary.billing_cycle != baseline.cycle:
        return Walk("billing cycle changed")
    expected = (baseline.last_id,) if baseline.last_id is not None else ()
    if (
        summary.next_invoice_item_count != baseline.item_count
        or tail.ids != expected
        or (tail.total is not None and tail.total != baseline.item_count)
    ):
        return Walk("items added or removed")
    delta = summary.items_recurring_usd - baseline.recurring_usd
    hours = _accrued_hours(baseline, delta, now)
    if hours is None:
        return Walk("recurring total changed")
    return Project(hours)


def _accrued_hours(baseline: ItemsBaseline, delta: Decimal, now: float) -> int | None:
    """Return the whole hours of accrual that explain ``delta`` exactly, or None."""
    if delta == 0:
        return 0
    rate = baseline.hourly_rate_usd
    if rate <= 0 or delta < 0:
        return None
    hours = int((delta / rate).to_integral_value())
    allowed = math.floor((now - baseline.walked_at + _CLOCK_SLACK_SECONDS) / _HOUR) + 1
    if not 0 < hours <= allowed:
        return None
    accrued = accrue_categories(baseline.categories, hours)
    moved = sum((c.amount_usd for c in accrued), Decimal(0)) - sum(
        (c.amount_usd for c in baseline.categories), Decimal(0)
    )
    return hours if moved == delta else None


@dataclass(slots=True)
class InvoiceLedger:
    """The invoices of the look-back window as last read, to update instead of re-reading.

    ``last_id`` is the highest invoice id ever seen (also of invoices older than the window),
    the cursor for new ones.
    """

    invoices: dict[int, WindowInvoice] = field(default_factory=dict)
    last_id: int | None = None

    def update(self, invoices: list[WindowInvoice]) -> None:
        """Store fresh copies of invoices (new ones, or open ones read again)."""
        for invoice in invoices:
            self.invoices[invoice.invoice_id] = invoice
            if self.last_id is None or invoice.invoice_id > self.last_id:
                self.last_id = invoice.invoice_id

    def prune(self, since: datetime) -> None:
        """Forget invoices created before ``since``: they left the window for good."""
        for invoice_id in [i for i, inv in self.invoices.items() if inv.created < since]:
            del self.invoices[invoice_id]

    def open_ids(self) -> list[int]:
        """Return the ids of the invoices that may still change (not closed), ascending."""
        return sorted(i for i, inv in self.invoices.items() if not inv.final)

    def window(self, since: datetime) -> tuple[InvoiceWindow, list[tuple[str, str]]]:
        """Count the window as of ``since``; also returns its undocumented codes."""
        aggregator = InvoiceWindowAggregator(since)
        aggregator.add(sorted(self.invoices.values(), key=lambda inv: inv.invoice_id))
        return aggregator.result(), aggregator.undocumented
