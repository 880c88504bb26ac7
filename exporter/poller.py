"""The background poller: fetch every account's billing data and publish snapshots.

Each cycle polls all accounts concurrently; an account's failure never touches another.
Within an account the five sources (:class:`~exporter.snapshot.Source`) succeed or fail
independently: a failed source keeps its last good data in the new snapshot and is marked
down with the failure's reason. Each account's snapshot is built complete and immutable,
then published with one assignment, so a scrape never sees half a cycle.

SoftLayer calls per account per cycle (with ``P = page_size``, possibly halved, and
``o = max(2, P // 20)`` rows of overlap; ``W(n) = 1 + ceil((n - P - o) / P)`` for n > P + o,
else 1, which is never more than ``ceil(n / P)``):

- 1 x ``SoftLayer_Account::getObject`` (sources ``account``, ``latest_recurring_invoice``
  and ``pending_invoice`` from one combined mask);
- ``W(I)`` x ``getInvoices``, I = invoices created in the look-back window (plus one day of
  margin, because SoftLayer's date filter is coarse; see ``invoice_filter``);
- ``W(N)`` x ``getNextInvoiceTopLevelBillingItems``, N = top-level items on the next
  invoice;

plus retries of failed requests, one more walk of a list whose completeness could not be
proven (see :meth:`exporter.softlayer.SoftLayerClient.fetch_pages`), and one IAM token
exchange when a token is due.

Time: every "now" the poller uses (attempt and success timestamps, the look-back window,
the hours left in the billing cycle, the next poll's due time) comes from one injectable
wall clock, ``Poller(config, state, clock=...)``: a callable returning unix seconds,
:func:`time.time` by default. Durations (``softlayer_poll_duration_seconds``) stay on the
monotonic clock. A harness can thus run poll cycles in simulated time, e.g. against the
simulator's billing clock (:class:`exporter.simulator.SimClock`)::

    scenario = Scenario.generate(seed=1, accounts=[AccountSpec(items=50)], now=start)
    async with SimulatorServer(scenario) as sim:
        poller = Poller(config, ExporterState(("acct0",)), clock=scenario.clock.time)
        for _ in range(24 * 31):
            scenario.advance(timedelta(hours=1))  # the simulated month moves on
            await poller.poll_once()  # one cycle, stamped with simulated time
        await poller.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import aiohttp
import structlog

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, Config
from exporter.errors import ErrorReason
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    AccountSnapshot,
    AccountSummary,
    ExporterState,
    InvoiceSummary,
    NextInvoiceBreakdown,
    PendingInvoice,
    Source,
    SourceStatus,
)
from exporter.softlayer import SoftLayerClient, SoftLayerError
from exporter.wire import (
    ACCOUNT_MASK,
    NEXT_INVOICE_ITEM_MASK,
    WINDOW_INVOICE_MASK,
    CategoryAggregator,
    DecodeError,
    InvoiceWindowAggregator,
    parse_account_summary,
    parse_latest_recurring_invoice,
    parse_pending_invoice,
    project_breakdown,
)

__all__ = ["ACCOUNT_SERVICE", "Clock", "Poller", "invoice_filter"]

#: The poller's wall clock: unix seconds, like :func:`time.time`.
Clock = Callable[[], float]

ACCOUNT_SERVICE: Final = "SoftLayer_Account"
#: SoftLayer's date filters compare in the account's (mostly US Central) time zone and on
#: date strings without an offset; asking for a day more and cutting exactly on our side
#: keeps the window right whatever zone the API applies.
_FILTER_MARGIN: Final = timedelta(days=1)
#: SoftLayer has existed since 2005; a longer window is "all invoices" and must not overflow.
_MAX_LOOKBACK: Final = timedelta(days=100 * 366)
#: Walks of one list per poll: one retry when the first cannot prove it saw every row.
_WALKS_PER_POLL: Final = 2
#: A fresh aggregator for one walk: its page consumer and its result.
_Aggregator = tuple[Callable[[list[Any]], object], Callable[[], Any]]
#: Undocumented codes remembered per account so that each is logged once (bounded).
_MAX_REPORTED_CODES: Final = 64
_DOCUMENTED_CODES: Final = {"type": frozenset(INVOICE_TYPES), "status": frozenset(INVOICE_STATUSES)}
_ORDER_BY_ID: Final = {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}
#: Snapshot field fed by each source.
_FIELDS: Final = {
    Source.ACCOUNT: "summary",
    Source.LATEST_RECURRING_INVOICE: "latest_recurring_invoice",
    Source.PENDING_INVOICE: "pending_invoice",
    Source.INVOICES: "invoices",
    Source.NEXT_INVOICE_ITEMS: "next_invoice",
}

_log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one source's attempt produced: data, or a secret-free error and its reason."""

    source: Source
    ok: bool
    value: Any = None
    error: str | None = None
    reason: str | None = None


def _failed(source: Source, exc: Exception) -> _Outcome:
    reason = exc.reason if isinstance(exc, (SoftLayerError, DecodeError)) else None
    message = str(exc) if reason is not None else f"internal error: {type(exc).__name__}"
    return _Outcome(source, ok=False, error=message, reason=None if reason is None else str(reason))


class _AccountPoller:
    """Polls one account and carries its last good data from cycle to cycle."""

    def __init__(
        self,
        account: AccountConfig,
        config: Config,
        client: SoftLayerClient,
        clock: Clock,
        previous: AccountSnapshot | None = None,
    ) -> None:
        self.account = account
        self._config = config
        self._client = client
        self._clock = clock
        self._stats_account = account.name
        self._reported_codes: set[tuple[str, str]] = set()
        #: Extra fields of this poll's canonical log event (lists walked twice, new codes).
        self._notes: dict[str, list[str]] = {}
        self.snapshot = previous or AccountSnapshot(name=account.name)

    async def poll(self, stats: ApiStats, next_poll: float | None) -> AccountSnapshot:
        started = time.monotonic()
        now = self._clock()
        self._notes = {}
        requests_before = self._client.api_requests
        groups = await asyncio.gather(
            self._account_object(stats),
            self._invoices(stats, now),
            self._next_invoice_items(stats),
        )
        outcomes = self._forecast([outcome for group in groups for outcome in group], now)
        snapshot = self._build(outcomes, now, time.monotonic() - started, next_poll)
        self.snapshot = snapshot
        failed = sorted(o.source.value for o in outcomes if not o.ok)
        outcome = "ok" if not failed else "failed" if len(failed) == len(outcomes) else "partial"
        log = _log.info if outcome == "ok" else _log.warning
        log(
            "poll",
            account=self.account.name,
            outcome=outcome,
            duration_seconds=round(snapshot.poll_duration_seconds or 0.0, 3),
            requests=self._client.api_requests - requests_before,
            sources_failed=failed,
            errors={o.source.value: o.error for o in outcomes if not o.ok},
            **self._notes,
        )
        return snapshot

    def _build(
        self, outcomes: list[_Outcome], now: float, duration: float, next_poll: float | None
    ) -> AccountSnapshot:
        previous = self.snapshot
        data: dict[str, Any] = {field: getattr(previous, field) for field in _FIELDS.values()}
        sources: dict[Source, SourceStatus] = {}
        for outcome in outcomes:
            before = previous.sources.get(outcome.source)
            if outcome.ok:
                data[_FIELDS[outcome.source]] = outcome.value
                sources[outcome.source] = SourceStatus(up=True, last_attempt=now, last_success=now)
            else:
                sources[outcome.source] = SourceStatus(
                    up=False,
                    last_attempt=now,
                    last_success=None if before is None else before.last_success,
                    last_error=outcome.error,
                    last_error_reason=outcome.reason,
                )
        return AccountSnapshot(
            name=self.account.name,
            sources=MappingProxyType(dict(sorted(sources.items()))),
            poll_duration_seconds=duration,
            next_poll=next_poll,
            **data,
        )

    def _forecast(self, outcomes: list[_Outcome], now: float) -> list[_Outcome]:
        """Publish the next-invoice forecast whole or not at all (see AccountSnapshot).

        The forecast is the account object's next-invoice totals plus the item breakdown,
        projected to the end of the billing cycle; both come from this poll or both keep
        their previous values.
        """
        by_source = {outcome.source: outcome for outcome in outcomes}
        account = by_source[Source.ACCOUNT]
        items = by_source[Source.NEXT_INVOICE_ITEMS]
        previous = self.snapshot.summary
        if account.ok and items.ok:
            summary: AccountSummary = account.value
            breakdown: NextInvoiceBreakdown = items.value
            cycle = summary.billing_cycle
            if cycle is not None:
                breakdown = project_breakdown(
                    breakdown, summary.next_invoice_pre_tax_usd, cycle.hours_left(now)
                )
            items = replace(items, value=breakdown)
        elif account.ok and previous is not None:
            # The walk failed: the fresh balance is published, the forecast totals are not.
            held = replace(
                account.value,
                next_invoice_pre_tax_usd=previous.next_invoice_pre_tax_usd,
                next_invoice_recurring_usd=previous.next_invoice_recurring_usd,
                next_invoice_one_time_usd=previous.next_invoice_one_time_usd,
                next_invoice_tax_usd=previous.next_invoice_tax_usd,
                next_invoice_item_count=previous.next_invoice_item_count,
            )
            account = replace(account, value=held)
        elif not account.ok and items.ok:
            items = _Outcome(
                Source.NEXT_INVOICE_ITEMS,
                ok=False,
                error=f"not published: the account object failed in the same poll "
                f"({account.error})",
                reason=account.reason,
            )
        by_source[Source.ACCOUNT] = account
        by_source[Source.NEXT_INVOICE_ITEMS] = items
        return [by_source[outcome.source] for outcome in outcomes]

    def _report_codes(self, codes: list[tuple[str, str]]) -> None:
        """Log each undocumented invoice type/status code once per account (bounded).

        The first poll that sees a code names it in its ``poll`` event
        (``undocumented_codes``, e.g. ``"status:DISPUTED"``); later polls do not repeat it.
        """
        for kind, code in codes:
            if code in _DOCUMENTED_CODES[kind] or (kind, code) in self._reported_codes:
                continue
            if len(self._reported_codes) >= _MAX_REPORTED_CODES:
                return
            self._reported_codes.add((kind, code))
            self._notes.setdefault("undocumented_codes", []).append(f"{kind}:{code[:64]}")

    async def _account_object(self, stats: ApiStats) -> list[_Outcome]:
        """Fetch sources account, latest_recurring_invoice and pending_invoice: one getObject."""
        sources = (Source.ACCOUNT, Source.LATEST_RECURRING_INVOICE, Source.PENDING_INVOICE)
        try:
            page = await self._client.call(ACCOUNT_SERVICE, "getObject", mask=ACCOUNT_MASK)
        except SoftLayerError as exc:
            return [_failed(source, exc) for source in sources]
        except Exception as exc:  # a bug must not stop the other sources
            _log.exception("source_crashed", account=self.account.name, source="account")
            return [_failed(source, exc) for source in sources]
        parsers: tuple[Callable[[Any], Any], ...] = (
            parse_account_summary,
            parse_latest_recurring_invoice,
            parse_pending_invoice,
        )
        outcomes = []
        for source, parse in zip(sources, parsers, strict=True):
            try:
                outcomes.append(_Outcome(source, ok=True, value=parse(page.body)))
            except DecodeError as exc:
                outcomes.append(_failed(source, exc))
        if any(not o.ok for o in outcomes):
            stats.record_error(self._stats_account, ErrorReason.DECODE)  # one bad response
        for outcome in outcomes:
            invoice = outcome.value
            if isinstance(invoice, PendingInvoice):
                invoice = invoice.invoice
            if isinstance(invoice, InvoiceSummary):
                self._report_codes([("type", invoice.type_code), ("status", invoice.status_code)])
        return outcomes

    async def _invoices(self, stats: ApiStats, now: float) -> list[_Outcome]:
        """Fetch source invoices: the look-back window, paged."""
        lookback = min(self._config.invoice_lookback_seconds, _MAX_LOOKBACK.total_seconds())
        since = datetime.fromtimestamp(now, UTC) - timedelta(seconds=max(0.0, lookback))
        windows: list[InvoiceWindowAggregator] = []

        def fresh() -> _Aggregator:
            windows.append(InvoiceWindowAggregator(since))
            return windows[-1].add_page, windows[-1].result

        outcome = await self._paged(
            stats,
            Source.INVOICES,
            method="getInvoices",
            mask=WINDOW_INVOICE_MASK,
            object_filter=invoice_filter(since),
            aggregator=fresh,
        )
        self._report_codes(windows[-1].undocumented)
        return [outcome]

    async def _next_invoice_items(self, stats: ApiStats) -> list[_Outcome]:
        """Fetch source next_invoice_items: top-level items folded into category totals."""

        def fresh() -> _Aggregator:
            categories = CategoryAggregator()
            return categories.add_page, lambda: categories.result(self._config.top_categories)

        return [
            await self._paged(
                stats,
                Source.NEXT_INVOICE_ITEMS,
                method="getNextInvoiceTopLevelBillingItems",
                mask=NEXT_INVOICE_ITEM_MASK,
                object_filter={"nextInvoiceTopLevelBillingItems": {"id": _ORDER_BY_ID}},
                aggregator=fresh,
            )
        ]

    async def _paged(
        self,
        stats: ApiStats,
        source: Source,
        *,
        method: str,
        mask: str,
        object_filter: dict[str, Any],
        aggregator: Callable[[], _Aggregator],
    ) -> _Outcome:
        """Walk a list into a fresh aggregator; a walk not proven complete is retried once.

        The second walk starts from an empty aggregator, so nothing of the first one can mix
        in; if it cannot prove completeness either, the source is down (``incomplete``) and
        keeps its last good figures: a partial sum is never served as up.
        """
        try:
            for attempt in range(_WALKS_PER_POLL):
                consume, result = aggregator()
                try:
                    await self._client.fetch_pages(
                        ACCOUNT_SERVICE,
                        method,
                        mask=mask,
                        object_filter=object_filter,
                        consume=consume,
                    )
                except SoftLayerError as exc:
                    if exc.reason is ErrorReason.INCOMPLETE and attempt + 1 < _WALKS_PER_POLL:
                        # Named in the poll event (lists_walked_twice), not logged apart.
                        self._notes.setdefault("lists_walked_twice", []).append(source.value)
                        continue
                    raise
                return _Outcome(source, ok=True, value=result())
        except SoftLayerError as exc:
            return _failed(source, exc)
        except DecodeError as exc:
            stats.record_error(self._stats_account, ErrorReason.DECODE)
            return _failed(source, exc)
        except Exception as exc:  # a bug must not stop the other sources
            _log.exception("source_crashed", account=self.account.name, source=source.value)
            return _failed(source, exc)
        raise AssertionError("unreachable: the last walk returns or raises")  # pragma: no cover


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


class Poller:
    """Polls every configured account and publishes snapshots into ``state``.

    Created outside an event loop; the aiohttp session is opened on the first poll.
    """

    def __init__(
        self,
        config: Config,
        state: ExporterState,
        *,
        rng: random.Random | None = None,
        clock: Clock = time.time,
        api_stats: ApiStats | None = None,
    ) -> None:
        self.config = config
        self.state = state
        # A poller replacing another (configuration reload) continues its counters.
        self.api_stats = api_stats if api_stats is not None else ApiStats()
        self.clock = clock  # every "now" of the poll cycles (see the module docstring)
        self._rng = rng or random.Random()  # noqa: S311  jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None
        self._accounts: list[_AccountPoller] = []

    def _ensure_started(self) -> list[_AccountPoller]:
        if self._session is None:
            self._session = aiohttp.ClientSession(raise_for_status=False)
            if hasattr(self._session, "_retry_connection"):
                # aiohttp silently resends an idempotent request once when a reused
                # connection drops. That resend would bypass the rate limiter and the request
                # accounting; our own retry policy covers network errors instead.
                self._session._retry_connection = False
            self._accounts = [
                _AccountPoller(
                    account,
                    self.config,
                    SoftLayerClient(account, self.config, self._session, self.api_stats),
                    self.clock,
                    # Continue from what is served: a failed source keeps that data.
                    self.state.accounts.get(account.name),
                )
                for account in self.config.accounts
            ]
        return self._accounts

    async def poll_once(self) -> bool:
        """Poll every account once and publish; True when every source succeeded."""
        return await self._cycle(next_poll=self.clock() + self.config.poll_interval_seconds)

    async def _cycle(self, next_poll: float) -> bool:
        accounts = self._ensure_started()
        results = await asyncio.gather(
            *(self._poll_account(poller, next_poll) for poller in accounts)
        )
        self.state.first_cycle_done = True
        return all(results)

    async def _poll_account(self, poller: _AccountPoller, next_poll: float) -> bool:
        try:
            snapshot = await poller.poll(self.api_stats, next_poll)
        except Exception:
            # Sources catch their own failures; this is a bug elsewhere. Keep the previous
            # snapshot and the other accounts going.
            _log.exception("poll_crashed", account=poller.account.name)
            return False
        self.state.publish(snapshot)
        return snapshot.up

    def _next_delay(self) -> float:
        jitter = max(0.0, min(1.0, self.config.poll_jitter))
        factor = 1.0 + self._rng.uniform(-jitter, jitter)
        return max(0.0, self.config.poll_interval_seconds * factor)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, wait the interval (with jitter), repeat until ``stop`` is set.

        Setting ``stop`` also cancels a cycle in flight: snapshots already published stay,
        the interrupted accounts keep their previous ones.
        """
        while not stop.is_set():
            started = self.clock()
            due = started + self._next_delay()
            finished = await _unless_stopped(self._cycle(next_poll=due), stop)
            if not finished:
                return
            remaining = due - self.clock()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=remaining)

    async def aclose(self) -> None:
        """Close the HTTP session; the poller cannot poll afterwards."""
        if self._session is not None:
            await self._session.close()


async def _unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` fires first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()  # run() itself was cancelled: take the cycle down with it
        raise
    finally:
        stopper.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    # wait() does not re-raise the task's CancelledError, but does propagate our own.
    await asyncio.wait({task})
    return False
