"""The last recurring invoices and the latest one by category: source ``invoice_history``.

One ``SoftLayer_Account::getInvoices`` asks for the newest ``invoice_history_months``
RECURRING invoices (newest first, one page: ``resultLimit=0,N``), with the totals the other
invoice series use and the exchange rate each was billed at, whenever the latest recurring
invoice of the poll's account object differs from the one the cached list was fetched for
(and at least every 6 hours; see :class:`InvoiceHistorySource`). Then the latest one's top-level
lines are walked with ``SoftLayer_Billing_Invoice::getInvoiceTopLevelItems`` (paged, ordered
by id, proven complete like every list) and summed per ``categoryCode``, the same codes as
the next invoice's categories, children included through ``totalRecurringAmount`` and
``totalOneTimeAmount`` ("An invoice Item's total, including any child invoice items if they
exist", softlayer-go ``datatypes/billing.go``; pre-tax: the item's tax has its own
``totalRecurringTaxAmount``).

**Cost.** The walk costs ``ceil(T / page_size)`` requests (T = top-level lines of the latest
invoice, about the number of billing items) **once per invoice**: SoftLayer documents no
change to an invoice's lines after it is cut (paying one changes its status; credits and
refunds come as invoices of their own, SLDN SoftLayer_Billing_Invoice), so the breakdown is
kept in memory and walked again only when the latest invoice's id, item count or recurring
or one-time total differs from the cached one (a change to its lines would show there). A
restart forgets it: the first poll after a start walks the latest invoice once more. The list
costs one request when the latest invoice changed (cut, paid, closed) and every 6 hours, so a
steady poll makes no request for this source.

**Deferred walk** (``defer=True``, the serving daemon): the walk would triple the poll that
first sees an invoice (after a start and after each anniversary), so instead that poll
publishes the history without the latest invoice's categories (absent, never the previous
invoice's under the new label) and one background task walks the lines once the poll has
ended, in the idle time before the next. The next poll takes the result into the cache and
publishes it; a failed walk fails that poll's source with the walk's error (the last good
history stays served) and is started again after it. Without ``defer`` (``--once``, tests,
the library) the walk happens inside the poll, so one poll gives complete figures.

SoftLayer ignores a filter it cannot apply and would then send the account's oldest invoices
of any type (softlayer-api.md section 5 item 10): the answer is checked to be RECURRING
invoices, newest first, and refused (``decode``) otherwise.
"""

from __future__ import annotations

import asyncio
import decimal
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from pyroaring import BitMap64

from exporter.finops.billing import parse_exchange_rate
from exporter.finops.masks import EXCHANGE_RATE_FIELDS
from exporter.finops.records import (
    OTHER,
    HistoryInvoice,
    InvoiceCategories,
    InvoiceCategory,
    InvoiceHistory,
)
from exporter.snapshot import InvoiceSummary
from exporter.softlayer import SoftLayerClient
from exporter.wire import (
    INVOICE_FIELDS,
    DecodeError,
    add_new_ids,
    parse_decimal,
    parse_int,
    parse_invoice,
    parse_str,
)

__all__ = [
    "HISTORY_MASK",
    "INVOICE_LINE_MASK",
    "InvoiceCategoryAggregator",
    "InvoiceHistorySource",
    "fetch_invoice_categories",
    "fetch_recurring_invoices",
    "parse_recurring_invoices",
]

ACCOUNT_SERVICE: Final = "SoftLayer_Account"
INVOICE_SERVICE: Final = "SoftLayer_Billing_Invoice"
#: The history's invoices: the totals of :data:`exporter.wire.INVOICE_FIELDS` and the rate.
HISTORY_MASK: Final = f"mask[{INVOICE_FIELDS},localCurrencyExchangeRate[{EXCHANGE_RATE_FIELDS}]]"
#: An invoice's top-level lines: what the per-category sums need, nothing more.
INVOICE_LINE_MASK: Final = "mask[id,categoryCode,totalRecurringAmount,totalOneTimeAmount]"
_ORDER_BY_ID: Final = {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}
#: Newest first, RECURRING only (the order and filter of SLDN's billing article).
_HISTORY_FILTER: Final = {
    "invoices": {
        "typeCode": {"operation": "RECURRING"},
        "createDate": {"operation": "orderBy", "options": [{"name": "sort", "value": ["DESC"]}]},
    }
}
_SUM: Final = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.Overflow])


def parse_recurring_invoices(body: Any, count: int) -> tuple[HistoryInvoice, ...]:
    """Parse the history list: at most ``count`` RECURRING invoices, newest first.

    Raises :class:`DecodeError` when the answer is not that (a filter SoftLayer ignored).
    """
    rows = [body] if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise DecodeError("invoices", "expected a list")
    if len(rows) > count:
        raise DecodeError("invoices", f"{len(rows)} invoices for resultLimit {count}")
    history: list[HistoryInvoice] = []
    seen: set[int] = set()
    for index, raw in enumerate(rows):
        where = f"invoices[{index}]"
        invoice = parse_invoice(raw, where)
        if invoice.type_code != "RECURRING":
            raise DecodeError(
                f"{where}.typeCode",
                f"{invoice.type_code[:40]!r} in a RECURRING-only answer (filter not applied)",
            )
        if history and invoice.created > history[-1].invoice.created:
            raise DecodeError(f"{where}.createDate", "not newest first (filter not applied)")
        if invoice.invoice_id in seen:
            raise DecodeError(f"{where}.id", f"invoice {invoice.invoice_id} listed twice")
        seen.add(invoice.invoice_id)
        rate = parse_exchange_rate(raw.get("localCurrencyExchangeRate"), f"{where}.rate")
        history.append(HistoryInvoice(invoice=invoice, exchange_rate=rate))
    return tuple(history)


async def fetch_recurring_invoices(
    client: SoftLayerClient, count: int
) -> tuple[HistoryInvoice, ...]:
    """Fetch the newest ``count`` RECURRING invoices, newest first: one request."""
    page = await client.call(
        ACCOUNT_SERVICE,
        "getInvoices",
        mask=HISTORY_MASK,
        object_filter=_HISTORY_FILTER,
        result_limit=(0, count),
    )
    return parse_recurring_invoices(page.body, count)


class InvoiceCategoryAggregator:
    """Per-category sums of an invoice's top-level lines, fed page by page.

    Each line counts once however often overlapping pages return it (ids deduplicated like
    :class:`exporter.wire.CategoryAggregator` does); only the sums are kept.
    """

    def __init__(self) -> None:
        self._sums: dict[str, list[Any]] = {}
        self._seen = BitMap64()

    @property
    def lines(self) -> int:
        """Distinct lines folded so far."""
        return len(self._seen)

    def add_page(self, page: Any, path: str = "lines") -> int:
        """Fold one page of Billing_Invoice_Item objects; return how many lines were new."""
        rows = [page] if isinstance(page, dict) else page
        if not isinstance(rows, list):
            raise DecodeError(path, "expected a list")
        parsed: list[tuple[int, str, Decimal, Decimal]] = []
        for index, raw in enumerate(rows):
            where = f"{path}[{index}]"
            if not isinstance(raw, Mapping):
                raise DecodeError(where, "expected an object")
            line_id = parse_int(raw.get("id"), f"{where}.id")
            code = parse_str(raw.get("categoryCode"), f"{where}.categoryCode")
            if not code:
                raise DecodeError(f"{where}.categoryCode", "empty")
            recurring = parse_decimal(
                raw.get("totalRecurringAmount"), f"{where}.totalRecurringAmount"
            )
            one_time = parse_decimal(raw.get("totalOneTimeAmount"), f"{where}.totalOneTimeAmount")
            parsed.append((line_id, code, recurring, one_time))
        fresh = add_new_ids(self._seen, [line[0] for line in parsed])
        for (_, code, recurring, one_time), new in zip(parsed, fresh, strict=True):
            if not new:
                continue
            sums = self._sums.get(code)
            if sums is None:
                sums = self._sums[code] = [Decimal(0), Decimal(0), 0]
            sums[0] = _SUM.add(sums[0], recurring)
            sums[1] = _SUM.add(sums[1], one_time)
            sums[2] += 1
        return sum(fresh)

    def result(self, invoice_id: int, top_n: int) -> InvoiceCategories:
        """Return the ``top_n`` categories by amount, the rest folded into ``other``."""

        def amount(code: str) -> Decimal:
            return _SUM.add(self._sums[code][0], self._sums[code][1])

        ranked = sorted((c for c in self._sums if c != OTHER), key=lambda c: (-amount(c), c))
        kept = ranked[: max(0, top_n)]
        folded = [code for code in self._sums if code not in kept]
        categories = [self._category(code, [self._sums[code]]) for code in kept]
        if folded:
            categories.append(self._category(OTHER, [self._sums[code] for code in folded]))
        return InvoiceCategories(
            invoice_id=invoice_id,
            categories=tuple(categories),
            folded=len(folded),
            lines=self.lines,
        )

    @staticmethod
    def _category(code: str, parts: list[list[Any]]) -> InvoiceCategory:
        recurring, one_time, lines = Decimal(0), Decimal(0), 0
        for part in parts:
            recurring = _SUM.add(recurring, part[0])
            one_time = _SUM.add(one_time, part[1])
            lines += part[2]
        return InvoiceCategory(
            code=code, recurring_usd=recurring, one_time_usd=one_time, lines=lines
        )


async def fetch_invoice_categories(
    client: SoftLayerClient, invoice_id: int, top_n: int
) -> InvoiceCategories:
    """Walk one invoice's top-level lines into per-category sums, proven complete."""

    def fresh() -> tuple[Callable[[Any], int], Callable[[], InvoiceCategories]]:
        lines = InvoiceCategoryAggregator()
        return lines.add_page, lambda: lines.result(invoice_id, top_n)

    categories, _ = await client.walk_list(
        INVOICE_SERVICE,
        "getInvoiceTopLevelItems",
        fresh,
        init_id=invoice_id,
        mask=INVOICE_LINE_MASK,
        object_filter={"invoiceTopLevelItems": {"id": _ORDER_BY_ID}},
    )
    return categories


def _cache_key(invoice: InvoiceSummary) -> tuple[int, int, Decimal, Decimal]:
    # An invoice whose lines changed after the cut would show it in these.
    return (invoice.invoice_id, invoice.item_count, invoice.recurring_usd, invoice.one_time_usd)


#: The list is fetched again at least this often even when the latest invoice looks the same,
#: for the payments and statuses of the older ones.
HISTORY_MAX_AGE_SECONDS: Final = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class _LineWalk:
    """A background walk of one invoice's lines (deferred mode)."""

    key: tuple[int, int, Decimal, Decimal]
    task: asyncio.Task[InvoiceCategories]


class InvoiceHistorySource:
    """Source ``invoice_history`` of one account.

    The list is fetched when it may have changed, the latest invoice's breakdown once per
    invoice. The poller hands :meth:`poll` the latest recurring invoice of the same poll's account
    object (``latestRecurringInvoice``, with its status, payments and totals). While that is
    unchanged, the history is what it was: no request, until :data:`HISTORY_MAX_AGE_SECONDS`
    have passed (an older invoice paid late shows by then). A new invoice, a payment or a
    status change of the latest one fetches the list again in the same poll.

    With ``defer`` the breakdown of a new latest invoice is walked in the background after
    the poll instead (see the module docstring): at most one walk at a time, a newer latest
    invoice cancels the walk of an older one; :meth:`settled` waits for it, :meth:`aclose`
    cancels it.
    """

    def __init__(self, months: int, top_categories: int, *, defer: bool = False) -> None:
        self._months = max(1, months)
        self._top_categories = top_categories
        self._defer = defer
        self._cached: tuple[tuple[int, int, Decimal, Decimal], InvoiceCategories] | None = None
        self._history: InvoiceHistory | None = None
        self._fetched_for: InvoiceSummary | None = None
        self._fetched_at = -math.inf
        self._walk: _LineWalk | None = None
        # Every walk task not yet awaited to its end, cancelled ones included (aclose).
        self._tasks: set[asyncio.Task[InvoiceCategories]] = set()

    async def poll(
        self,
        client: SoftLayerClient,
        now: float,
        latest: InvoiceSummary | None,
        *,
        latest_known: bool = True,
        ended: asyncio.Event | None = None,
    ) -> InvoiceHistory:
        """Return the history, fetching what may have changed (see the class docstring).

        ``latest_known`` is False when this poll's account object failed: then the list is
        fetched whatever the cache says. ``ended`` is set when this poll has ended: a
        deferred walk starts then (without it, or without ``defer``, the walk is inline).
        Raises the error of a background walk that failed since the last poll.
        """
        ended = ended if self._defer else None  # None: the walk is inline
        if ended is not None:
            self._take_walk(client, ended)
        fresh = now - self._fetched_at < HISTORY_MAX_AGE_SECONDS
        if self._history is not None and latest_known and fresh and latest == self._fetched_for:
            return self._history
        invoices = await fetch_recurring_invoices(client, self._months)
        if not invoices:
            self._cancel_walk()
            history = InvoiceHistory(invoices=(), latest_categories=None)
        else:
            newest = invoices[0].invoice
            key = _cache_key(newest)
            if self._cached is not None and self._cached[0] == key:
                self._cancel_walk()
                categories: InvoiceCategories | None = self._cached[1]
            elif ended is not None:
                self._start_walk(client, ended, key)
                categories = None  # absent until walked: never the previous invoice's
            else:
                categories = await fetch_invoice_categories(
                    client, newest.invoice_id, self._top_categories
                )
                self._cached = (key, categories)
            history = InvoiceHistory(invoices=invoices, latest_categories=categories)
        self._history = history
        self._fetched_for = latest if latest_known else None
        self._fetched_at = now
        return history

    def _take_walk(self, client: SoftLayerClient, ended: asyncio.Event) -> None:
        """Take a finished background walk into the cache; raise its error if it failed.

        A failed walk is started again once this poll has ended.
        """
        walk = self._walk
        if walk is None or not walk.task.done():
            return
        self._walk = None
        if walk.task.cancelled():  # not by us (we drop what we cancel): walk again
            self._start_walk(client, ended, walk.key)
            return
        exc = walk.task.exception()
        if exc is not None:
            self._start_walk(client, ended, walk.key)
            raise exc
        categories = walk.task.result()
        self._cached = (walk.key, categories)
        history = self._history
        newest = history.invoices[0].invoice if history is not None and history.invoices else None
        if history is not None and newest is not None and _cache_key(newest) == walk.key:
            self._history = replace(history, latest_categories=categories)

    def _start_walk(
        self,
        client: SoftLayerClient,
        ended: asyncio.Event,
        key: tuple[int, int, Decimal, Decimal],
    ) -> None:
        """Walk invoice ``key``'s lines once the poll has ended, unless already walking it."""
        if self._walk is not None:
            if self._walk.key == key:
                return  # never two walks of one invoice
            self._cancel_walk()  # a newer latest invoice replaces the older one's walk
        task = asyncio.create_task(
            self._walk_after(client, ended, key[0]), name=f"invoice {key[0]} lines"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._walk = _LineWalk(key, task)

    async def _walk_after(
        self, client: SoftLayerClient, ended: asyncio.Event, invoice_id: int
    ) -> InvoiceCategories:
        await ended.wait()  # the idle time after the poll, not inside it
        return await fetch_invoice_categories(client, invoice_id, self._top_categories)

    def _cancel_walk(self) -> None:
        walk, self._walk = self._walk, None
        if walk is None:
            return
        if walk.task.done() and not walk.task.cancelled():
            walk.task.exception()  # ended meanwhile: its result is of no use, mark it seen
        walk.task.cancel()

    async def settled(self) -> None:
        """Wait until no background walk is in flight (its result is taken by the next poll).

        Call it between polls: a walk waits for the end of the poll that started it.
        """
        while self._walk is not None and not self._walk.task.done():
            await asyncio.wait([self._walk.task])

    async def aclose(self) -> None:
        """Cancel any background walk and wait for it to end (before the session closes)."""
        self._walk = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # return_exceptions: a walk's error is of no interest once the poller closes.
        await asyncio.gather(*tasks, return_exceptions=True)
