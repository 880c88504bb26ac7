"""The sources of one account's poll: what each asks SoftLayer, and what it turns into.

A *fetcher* feeds one or more sources (:class:`~exporter.snapshot.Source`) and keeps what it
needs from poll to poll (the steady-state baselines of :mod:`exporter.steady`). Each poll
calls :meth:`SourceFetcher.fetch` once with a :class:`PollContext`; it returns one
:data:`~exporter.snapshot.Outcome` per source it feeds, never raises for a failed request
(a failed source keeps its last good data), and never requests a source the account
switched off (``sources:`` in the configuration).

Adding a source: a :class:`~exporter.snapshot.Source` member, its field and ``with_*``
setter on :class:`~exporter.snapshot.AccountSnapshot`, a fetcher class here or in its own
module whose ``create(account)`` returns ``None`` when the account switched all its
sources off, and its ``create`` in :data:`FETCHERS`. Fetchers of one poll run concurrently;
one that needs the account object awaits ``PollContext.summary`` (a :class:`Handoff`).

A fetcher may also work between polls (the deferred walk of :class:`InvoiceHistoryFetcher`);
it then also implements :class:`BackgroundWork`, whose ``settled`` and ``aclose`` the poller
calls. Background work waits for :attr:`PollContext.ended`, so it never competes with a poll
that started it for the rate limit.

SoftLayer calls per poll (``P`` = ``page_size``, ``W(n)`` pages for ``n`` rows, see
docs/metrics.md): the account object, one ``getObject``; the items, one ``tail`` request
and, only when :func:`exporter.steady.plan_items` says so, a walk of ``W(N)`` pages plus one
``getObject`` of the recurring total when hourly items accrue; the invoices, one request
for new ones and one for the open ones (none when none is open), or a walk of ``W(I)``
pages the first time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Protocol, TypeVar, runtime_checkable

import structlog

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, Config
from exporter.finops.billing import parse_billing_profile
from exporter.finops.history import InvoiceHistorySource
from exporter.finops.items import ItemInsightsAggregator, accrue_insights
from exporter.finops.records import ItemInsights
from exporter.snapshot import (
    AccountSnapshot,
    AccountSummary,
    Failed,
    Fetched,
    InvoiceSummary,
    NextInvoiceBreakdown,
    Outcome,
    Source,
)
from exporter.softlayer import ErrorReason, SoftLayerClient, SoftLayerError, Tail
from exporter.steady import (
    InvoiceLedger,
    ItemsBaseline,
    Project,
    Walk,
    plan_items,
    walk_due,
)
from exporter.wire import (
    NEXT_INVOICE_ITEM_MASK,
    RECURRING_TOTAL_MASK,
    WINDOW_INVOICE_MASK,
    CategoryAggregator,
    DecodeError,
    account_mask,
    accrue_categories,
    fold_categories,
    parse_account_summary,
    parse_latest_recurring_invoice,
    parse_pending_invoice,
    parse_recurring_total,
    parse_window_invoices,
)

__all__ = [
    "ACCOUNT_SERVICE",
    "FETCHERS",
    "AccountObject",
    "AccountSources",
    "BackgroundWork",
    "FetcherFactory",
    "InvoiceHistoryFetcher",
    "InvoiceWindowSource",
    "NextInvoiceItems",
    "PollContext",
    "SourceFetcher",
    "failed",
    "invoice_filter",
]

ACCOUNT_SERVICE: Final = "SoftLayer_Account"
#: SoftLayer's date filters compare in the account's (mostly US Central) time zone and on
#: date strings without an offset; asking for a day more and cutting exactly on our side
#: keeps the window right whatever zone the API applies.
_FILTER_MARGIN: Final = timedelta(days=1)
_ORDER_BY_ID: Final = {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}
_ITEMS_METHOD: Final = "getNextInvoiceTopLevelBillingItems"
_ITEMS_FILTER: Final = {"nextInvoiceTopLevelBillingItems": {"id": _ORDER_BY_ID}}

_log = structlog.get_logger()
_T = TypeVar("_T")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class AccountSources:
    """What a fetcher of one account is built from (once, when the poller starts)."""

    account: AccountConfig
    config: Config
    client: SoftLayerClient
    #: Walk the latest invoice's lines after the poll instead of inside it (serving).
    defer_invoice_lines: bool = False

    def polls(self, source: Source) -> bool:
        """Whether the account polls ``source`` (not switched off in ``sources:``)."""
        return source in self.account.sources


class Handoff(Generic[_V]):
    """A value one fetcher of a poll hands to the others that wait on it; set once."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[_V] | None = None

    def _get(self) -> asyncio.Future[_V]:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def set(self, value: _V) -> None:
        """Hand ``value`` over, unless a value was handed over already."""
        future = self._get()
        if not future.done():
            future.set_result(value)

    async def wait(self) -> _V:
        """Wait for the value."""
        return await self._get()

    def peek(self) -> _V | None:
        """Return the value if it was handed over, else None."""
        future = self._future
        if future is None or not future.done() or future.cancelled():
            return None
        return future.result()


@dataclass(slots=True)
class PollContext:
    """One poll of one account as its fetchers see it."""

    now: float  # the poller clock's time of the poll
    stats: ApiStats
    #: Extra fields of the poll's canonical log event, e.g. ``walks``.
    notes: dict[str, Any] = field(default_factory=dict)
    #: Undocumented invoice (kind, code) pairs seen in this poll.
    codes: list[tuple[str, str]] = field(default_factory=list)
    #: The account object's summary (or its failure), from :class:`AccountObject`.
    summary: Handoff[AccountSummary | Failed] = field(default_factory=Handoff)
    #: The account object's latest recurring invoice (``None``: the account has none).
    latest_recurring_invoice: Handoff[InvoiceSummary | Failed | None] = field(
        default_factory=Handoff
    )
    #: Set when the poll has ended, however (deadline and cancellation included).
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, key: str, source: Source, value: str) -> None:
        """Add ``value`` under ``source`` to the poll event's field ``key``."""
        self.notes.setdefault(key, {})[source.value] = value


class SourceFetcher(Protocol):
    """Fetches some sources of one account, poll after poll (see the module docstring)."""

    @property
    def sources(self) -> tuple[Source, ...]:
        """The sources this fetcher feeds, in the order of its outcomes."""

    async def fetch(self, poll: PollContext) -> list[Outcome]:
        """One outcome per source in :attr:`sources`; never raises for a failed request."""


@runtime_checkable
class BackgroundWork(Protocol):
    """A fetcher that also works between polls; its results reach the next poll's outcomes."""

    async def settled(self) -> None:
        """Wait until the background work started so far has ended (between polls)."""

    async def aclose(self) -> None:
        """Cancel the background work and wait for it; called before the session closes."""


FetcherFactory = Callable[[AccountSources], SourceFetcher | None]


def failed(source: Source, exc: BaseException) -> Failed:
    """Describe the failure of a source whose attempt raised ``exc`` (secret-free)."""
    reason = exc.reason if isinstance(exc, (SoftLayerError, DecodeError)) else None
    message = str(exc) if reason is not None else f"internal error: {type(exc).__name__}"
    cause = exc.detail if isinstance(exc, SoftLayerError) else None
    return Failed(source, message, None if reason is None else str(reason), cause)


def _crashed(account: AccountConfig, source: Source, exc: Exception) -> Failed:
    # A bug must not stop the other sources; it is logged with its traceback.
    _log.exception("source_crashed", account=account.name, source=source.value)
    return failed(source, exc)


async def _walk(
    ctx: AccountSources,
    poll: PollContext,
    source: Source,
    *,
    method: str,
    mask: str,
    object_filter: dict[str, Any],
    consume: Callable[[], tuple[Callable[[list[Any]], object], Callable[[], _T]]],
) -> tuple[_T, int | None]:
    """Walk a list of the account (:meth:`SoftLayerClient.walk_list`) for ``source``.

    A second walk is named in the poll event; a decode error is counted. Returns the
    consumer's result and the highest id seen.
    """

    def walked_twice() -> None:
        # Named in the poll event (lists_walked_twice), not logged apart.
        poll.notes.setdefault("lists_walked_twice", []).append(source.value)

    try:
        result, listing = await ctx.client.walk_list(
            ACCOUNT_SERVICE,
            method,
            consume,
            mask=mask,
            object_filter=object_filter,
            on_second_walk=walked_twice,
        )
    except DecodeError:
        poll.stats.record_error(ctx.account.name, ErrorReason.DECODE)
        raise
    return result, listing.last_id


class AccountObject:
    """Sources ``account``, ``latest_recurring_invoice``, ``pending_invoice``, ``billing_info``.

    One getObject. The mask asks only for the parts of the sources polled; the account's
    next-invoice totals and billing cycle are also asked for when only
    ``next_invoice_items`` needs them (its forecast and change detection), and the latest
    recurring invoice when only ``invoice_history`` needs it (to see it change), without
    publishing those sources.
    """

    _PARTS: Final = (
        Source.ACCOUNT,
        Source.LATEST_RECURRING_INVOICE,
        Source.PENDING_INVOICE,
        Source.BILLING_INFO,
    )

    def __init__(self, ctx: AccountSources) -> None:
        self._ctx = ctx
        self.sources = tuple(s for s in self._PARTS if ctx.polls(s))
        self._summary = ctx.polls(Source.ACCOUNT) or ctx.polls(Source.NEXT_INVOICE_ITEMS)
        self._latest = ctx.polls(Source.LATEST_RECURRING_INVOICE) or ctx.polls(
            Source.INVOICE_HISTORY
        )
        self._mask = account_mask(
            summary=self._summary,
            latest=self._latest,
            pending=ctx.polls(Source.PENDING_INVOICE),
            billing=ctx.polls(Source.BILLING_INFO),
        )

    @classmethod
    def create(cls, ctx: AccountSources) -> AccountObject | None:
        """Build the fetcher, unless no source of the account needs the account object."""
        fetcher = cls(ctx)
        return fetcher if fetcher.sources or fetcher._summary or fetcher._latest else None

    async def fetch(self, poll: PollContext) -> list[Outcome]:
        """Fetch and decode the account object; each source succeeds or fails on its own."""
        try:
            return await self._fetch(poll)
        finally:  # whatever happened, nobody waits forever (a no-op where already set)
            poll.summary.set(Failed(Source.ACCOUNT, "not fetched", None))
            poll.latest_recurring_invoice.set(
                Failed(Source.LATEST_RECURRING_INVOICE, "not fetched", None)
            )

    async def _fetch(self, poll: PollContext) -> list[Outcome]:
        ctx = self._ctx
        try:
            page = await ctx.client.call(ACCOUNT_SERVICE, "getObject", mask=self._mask)
        except Exception as exc:
            if isinstance(exc, SoftLayerError):
                outcome = failed(Source.ACCOUNT, exc)
            else:
                outcome = _crashed(ctx.account, Source.ACCOUNT, exc)
            poll.summary.set(outcome)
            poll.latest_recurring_invoice.set(outcome)
            return [replace(outcome, source=source) for source in self.sources]
        outcomes, decode_failed = self._handed_over(page.body, poll)
        for source in self.sources:
            if source in (Source.ACCOUNT, Source.LATEST_RECURRING_INVOICE):
                continue  # decoded above
            try:
                outcomes.append(self._part(source, page.body, poll))
            except DecodeError as exc:
                outcomes.append(failed(source, exc))
                decode_failed = True
        if decode_failed:
            poll.stats.record_error(ctx.account.name, ErrorReason.DECODE)  # one bad response
        return outcomes

    def _handed_over(self, body: Any, poll: PollContext) -> tuple[list[Outcome], bool]:
        """Decode the parts other fetchers wait for and hand them over.

        Returns the outcomes of those parts the account publishes, and whether one failed.
        """
        ctx = self._ctx
        outcomes: list[Outcome] = []
        decode_failed = False
        if self._summary:
            summary: Outcome
            try:
                summary = Fetched(
                    Source.ACCOUNT, parse_account_summary(body), AccountSnapshot.with_summary
                )
            except DecodeError as exc:
                summary, decode_failed = failed(Source.ACCOUNT, exc), True
            poll.summary.set(summary.value if isinstance(summary, Fetched) else summary)
            if ctx.polls(Source.ACCOUNT):
                outcomes.append(summary)
        if self._latest:
            latest: Outcome
            try:
                latest = self._invoice(Source.LATEST_RECURRING_INVOICE, body, poll)
            except DecodeError as exc:
                latest, decode_failed = failed(Source.LATEST_RECURRING_INVOICE, exc), True
            poll.latest_recurring_invoice.set(
                latest.value if isinstance(latest, Fetched) else latest
            )
            if ctx.polls(Source.LATEST_RECURRING_INVOICE):
                outcomes.append(latest)
        return outcomes, decode_failed

    def _part(self, source: Source, body: Any, poll: PollContext) -> Outcome:
        if source is Source.BILLING_INFO:
            return Fetched(source, parse_billing_profile(body), AccountSnapshot.with_billing)
        return self._invoice(source, body, poll)

    @staticmethod
    def _invoice(source: Source, body: Any, poll: PollContext) -> Outcome:
        invoice: InvoiceSummary | None
        if source is Source.LATEST_RECURRING_INVOICE:
            invoice = parse_latest_recurring_invoice(body)
            outcome: Outcome = Fetched(
                source, invoice, AccountSnapshot.with_latest_recurring_invoice
            )
        else:
            pending = parse_pending_invoice(body)
            invoice = pending.invoice
            outcome = Fetched(source, pending, AccountSnapshot.with_pending_invoice)
        if invoice is not None:
            poll.codes += [("type", invoice.type_code), ("status", invoice.status_code)]
        return outcome


class InvoiceWindowSource:
    """Source ``invoices``: invoices created in the look-back window, per type and status.

    The first poll walks the window; later polls read only new and still open invoices
    (:class:`exporter.steady.InvoiceLedger`): closed invoices are never read again.
    """

    sources: Final = (Source.INVOICES,)

    def __init__(self, ctx: AccountSources) -> None:
        self._ctx = ctx
        self._ledger: InvoiceLedger | None = None

    @classmethod
    def create(cls, ctx: AccountSources) -> InvoiceWindowSource | None:
        """Build the fetcher, unless the account switched the source off."""
        return cls(ctx) if ctx.polls(Source.INVOICES) else None

    async def fetch(self, poll: PollContext) -> list[Outcome]:
        """Bring the window up to date and count it."""
        ctx = self._ctx
        since = datetime.fromtimestamp(poll.now, UTC) - timedelta(
            seconds=ctx.config.invoice_lookback_seconds
        )
        try:
            ledger = await self._updated(since, poll)
        except Exception as exc:
            if isinstance(exc, (SoftLayerError, DecodeError)):
                return [failed(Source.INVOICES, exc)]
            return [_crashed(ctx.account, Source.INVOICES, exc)]
        self._ledger = ledger
        ledger.prune(since)
        window, undocumented = ledger.window(since)
        poll.codes += undocumented
        return [Fetched(Source.INVOICES, window, AccountSnapshot.with_invoices)]

    async def _updated(self, since: datetime, poll: PollContext) -> InvoiceLedger:
        """Return the ledger brought up to date: cheaply if it can prove itself, else walked."""
        ledger = self._ledger
        if ledger is None:
            why = "first walk"
        elif self._ctx.config.full_walk_interval_seconds == 0:
            why = "full walk due"  # the steady state is switched off
        elif await self._update(ledger, since):
            return ledger
        else:
            why = "new or open invoices need a walk"
        poll.note("walks", Source.INVOICES, why)
        return await self._walk(since, poll)

    async def _walk(self, since: datetime, poll: PollContext) -> InvoiceLedger:
        def consume() -> tuple[Callable[[list[Any]], int], Callable[[], InvoiceLedger]]:
            ledger = InvoiceLedger()

            def add(page: list[Any]) -> int:
                invoices = parse_window_invoices(page)
                new = sum(1 for inv in invoices if inv.invoice_id not in ledger.invoices)
                ledger.update(invoices)
                return new

            return add, lambda: ledger

        ledger, _ = await _walk(
            self._ctx,
            poll,
            Source.INVOICES,
            method="getInvoices",
            mask=WINDOW_INVOICE_MASK,
            object_filter=invoice_filter(since),
            consume=consume,
        )
        return ledger

    async def _update(self, ledger: InvoiceLedger, since: datetime) -> bool:
        """Read new and open invoices into the ledger; False if a walk must do it instead."""
        limit = self._ctx.config.page_size
        open_ids = ledger.open_ids()
        if len(open_ids) > limit:
            return False
        last = ledger.last_id
        # No invoice seen yet: "new" is whatever the (so far empty) window holds now.
        newer = (
            invoice_filter(since)
            if last is None
            else {"invoices": {"id": {"operation": f"> {last}"}}}
        )
        requests = [self._page(newer, limit)]
        if open_ids:
            by_id = {"id": {"operation": "in", "options": [_data(open_ids)]}}
            requests.append(self._page({"invoices": by_id}, limit))
        answers = await _all(requests)
        if any(rows is None for rows in answers):
            return False
        new = parse_window_invoices(answers[0])
        reread = parse_window_invoices(answers[1]) if open_ids else []
        # SoftLayer ignores a filter it cannot apply and answers the unfiltered list: then
        # the rows are not those asked for, and only a walk can tell what changed.
        if last is not None and any(inv.invoice_id <= last for inv in new):
            return False
        if sorted(inv.invoice_id for inv in reread) != open_ids:
            return False
        ledger.update(reread + new)
        return True

    async def _page(self, object_filter: dict[str, Any], limit: int) -> list[Any] | None:
        return await self._ctx.client.fetch_page(
            ACCOUNT_SERVICE,
            "getInvoices",
            mask=WINDOW_INVOICE_MASK,
            object_filter=object_filter,
            limit=limit,
        )


def _data(ids: list[int]) -> dict[str, Any]:
    return {"name": "data", "value": ids}


async def _all(requests: Sequence[Awaitable[_T]]) -> list[_T]:
    """Await every request (none is left running); raise the first failure, if any."""
    results: list[_T] = []
    for result in await asyncio.gather(*requests, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
        results.append(result)
    return results


def invoice_filter(since: datetime) -> dict[str, Any]:
    """``getInvoices`` filter: created after ``since`` minus a day, ordered by id."""
    start = (since - _FILTER_MARGIN).astimezone(UTC)
    return {
        "invoices": {
            "createDate": {
                "operation": "greaterThanDate",
                "options": [{"name": "date", "value": [start.strftime("%m/%d/%Y %H:%M:%S")]}],
            },
            "id": _ORDER_BY_ID,
        }
    }


class NextInvoiceItems:
    """Source ``next_invoice_items``: the next invoice's items folded into categories.

    Walks the items only when :func:`exporter.steady.plan_items` finds them changed;
    otherwise projects the last walk's categories by the hours accrued since.
    """

    sources: Final = (Source.NEXT_INVOICE_ITEMS,)

    def __init__(self, ctx: AccountSources) -> None:
        self._ctx = ctx
        self._baseline: ItemsBaseline | None = None

    @classmethod
    def create(cls, ctx: AccountSources) -> NextInvoiceItems | None:
        """Build the fetcher, unless the account switched the source off."""
        return cls(ctx) if ctx.polls(Source.NEXT_INVOICE_ITEMS) else None

    async def fetch(self, poll: PollContext) -> list[Outcome]:
        """Check the items against the baseline; walk them if they changed."""
        source = Source.NEXT_INVOICE_ITEMS
        try:
            breakdown = await self._breakdown(poll)
        except Exception as exc:
            if isinstance(exc, (SoftLayerError, DecodeError)):
                return [failed(source, exc)]
            return [_crashed(self._ctx.account, source, exc)]
        if isinstance(breakdown, Failed):
            return [breakdown]
        return [Fetched(source, breakdown, AccountSnapshot.with_next_invoice)]

    async def _breakdown(self, poll: PollContext) -> NextInvoiceBreakdown | Failed:
        ctx = self._ctx
        baseline = self._baseline
        plan: Walk | Project | None = walk_due(
            baseline, now=poll.now, full_walk_interval=ctx.config.full_walk_interval_seconds
        )
        tail: asyncio.Task[Tail] | None = None
        if plan is None and baseline is not None:
            # Read the end of the list while the account object is fetched.
            tail = asyncio.create_task(
                ctx.client.tail(
                    ACCOUNT_SERVICE,
                    _ITEMS_METHOD,
                    object_filter=_ITEMS_FILTER,
                    rows=baseline.item_count,
                )
            )
        try:
            summary = await poll.summary.wait()
            seen = None if tail is None else await tail
        finally:
            if tail is not None and not tail.done():
                tail.cancel()
                await asyncio.gather(tail, return_exceptions=True)
        if isinstance(summary, Failed):
            # The forecast is the account totals and the items together (AccountSnapshot):
            # without this poll's totals nothing new could be published.
            return Failed(
                Source.NEXT_INVOICE_ITEMS,
                f"not published: the account object failed in the same poll ({summary.error})",
                summary.reason,
                summary.group,  # one cause: listed with the account object's sources
            )
        if baseline is not None and seen is not None:
            plan = plan_items(baseline, summary, seen, now=poll.now)
        top = ctx.config.top_categories
        if isinstance(plan, Project) and baseline is not None:
            breakdown = fold_categories(
                accrue_categories(baseline.categories, plan.hours), top, baseline.item_count
            )
            if baseline.insights is None:
                return breakdown
            return replace(breakdown, insights=accrue_insights(baseline.insights, plan.hours))
        assert isinstance(plan, Walk)  # noqa: S101  (walk_due or plan_items decided)
        poll.note("walks", Source.NEXT_INVOICE_ITEMS, plan.reason)
        (categories, insights), last_id = await self._walk(poll)
        self._baseline = baseline = ItemsBaseline(
            categories=categories.totals(),
            item_count=categories.item_count,
            last_id=last_id,
            recurring_usd=summary.items_recurring_usd,
            cycle=summary.billing_cycle,
            walked_at=poll.now,
            anchored=True,
            insights=insights,
        )
        if baseline.hourly_rate_usd and ctx.config.full_walk_interval_seconds:
            self._baseline = replace(baseline, anchored=await self._anchored(summary))
        return replace(categories.result(top), insights=insights)

    async def _walk(
        self, poll: PollContext
    ) -> tuple[tuple[CategoryAggregator, ItemInsights], int | None]:
        """Walk the items into category totals and, from the same pages, the insights."""
        config = self._ctx.config

        def consume() -> tuple[
            Callable[[list[Any]], int], Callable[[], tuple[CategoryAggregator, ItemInsights]]
        ]:
            # Datacenters and top items see each page once, parsed and deduplicated.
            insights = ItemInsightsAggregator(config.top_items, config.top_datacenters)
            categories = CategoryAggregator(observer=insights.observe)
            return categories.add_page, lambda: (categories, insights.result())

        return await _walk(
            self._ctx,
            poll,
            Source.NEXT_INVOICE_ITEMS,
            method=_ITEMS_METHOD,
            mask=NEXT_INVOICE_ITEM_MASK,
            object_filter=_ITEMS_FILTER,
            consume=consume,
        )

    async def _anchored(self, summary: AccountSummary) -> bool:
        """Read the recurring total again: unchanged, the walk saw the items at that total."""
        try:
            page = await self._ctx.client.call(
                ACCOUNT_SERVICE, "getObject", mask=RECURRING_TOTAL_MASK
            )
            return parse_recurring_total(page.body) == summary.items_recurring_usd
        except (SoftLayerError, DecodeError):
            return False  # unknown: the next poll walks again


class InvoiceHistoryFetcher:
    """Source ``invoice_history``: the recurring invoices and the latest one by category.

    Asks SoftLayer only when this poll's latest recurring invoice differs from the one the
    history was fetched for, and every 6 hours (:class:`exporter.finops.history.
    InvoiceHistorySource`): a steady poll makes no request for it. With
    ``defer_invoice_lines`` a new latest invoice's lines are walked after the poll
    (:class:`BackgroundWork`).
    """

    sources: Final = (Source.INVOICE_HISTORY,)

    def __init__(self, ctx: AccountSources) -> None:
        self._ctx = ctx
        self._history = InvoiceHistorySource(
            ctx.config.invoice_history_months,
            ctx.config.top_categories,
            defer=ctx.defer_invoice_lines,
        )

    @classmethod
    def create(cls, ctx: AccountSources) -> InvoiceHistoryFetcher | None:
        """Build the fetcher, unless the account switched the source off."""
        return cls(ctx) if ctx.polls(Source.INVOICE_HISTORY) else None

    async def fetch(self, poll: PollContext) -> list[Outcome]:
        """Bring the history up to date once this poll's account object is in."""
        ctx, source = self._ctx, Source.INVOICE_HISTORY
        latest = await poll.latest_recurring_invoice.wait()
        known = not isinstance(latest, Failed)
        try:
            history = await self._history.poll(
                ctx.client,
                poll.now,
                None if isinstance(latest, Failed) else latest,
                latest_known=known,
                ended=poll.ended,
            )
        except DecodeError as exc:
            poll.stats.record_error(ctx.account.name, ErrorReason.DECODE)
            return [failed(source, exc)]
        except SoftLayerError as exc:
            return [failed(source, exc)]
        except Exception as exc:
            return [_crashed(ctx.account, source, exc)]
        return [Fetched(source, history, AccountSnapshot.with_history)]

    async def settled(self) -> None:
        """Wait for a background walk of the latest invoice's lines, if one is in flight."""
        await self._history.settled()

    async def aclose(self) -> None:
        """Cancel a background walk and wait for it."""
        await self._history.aclose()


#: Every fetcher the poller builds for an account, in the order their outcomes are listed.
FETCHERS: Final[tuple[FetcherFactory, ...]] = (
    AccountObject.create,
    InvoiceWindowSource.create,
    NextInvoiceItems.create,
    InvoiceHistoryFetcher.create,
)
