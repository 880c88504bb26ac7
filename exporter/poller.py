"""The background poller: fetch every account's billing data and publish snapshots.

Each cycle polls all accounts concurrently; an account's failure never touches another.
Within an account the five sources (:class:`~exporter.snapshot.Source`) succeed or fail
independently: a failed source keeps its last good data in the new snapshot and is marked
down with the failure's reason. Each account's snapshot is built complete and immutable,
then published with one assignment, so a scrape never sees half a cycle.

SoftLayer calls per account per cycle (with ``P = page_size``, possibly halved):

- 1 x ``SoftLayer_Account::getObject`` (sources ``account``, ``latest_recurring_invoice``
  and ``pending_invoice`` from one combined mask);
- ``max(1, ceil(I / P))`` x ``getInvoices``, I = invoices created in the look-back window
  (plus one day of margin, because SoftLayer's date filter is coarse; see ``_invoice_filter``);
- ``max(1, ceil(N / P))`` x ``getNextInvoiceTopLevelBillingItems``, N = top-level items
  on the next invoice;

plus retries of failed requests and one IAM token exchange when a token is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import aiohttp
import structlog

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, Config
from exporter.snapshot import AccountSnapshot, ExporterState, Source, SourceStatus
from exporter.softlayer import ErrorReason, SoftLayerClient, SoftLayerError
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
)

__all__ = ["ACCOUNT_SERVICE", "Poller"]

ACCOUNT_SERVICE: Final = "SoftLayer_Account"
#: SoftLayer's date filters compare in the account's (mostly US Central) time zone and on
#: date strings without an offset; asking for a day more and cutting exactly on our side
#: keeps the window right whatever zone the API applies.
_FILTER_MARGIN: Final = timedelta(days=1)
#: SoftLayer has existed since 2005; a longer window is "all invoices" and must not overflow.
_MAX_LOOKBACK: Final = timedelta(days=100 * 366)
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
        previous: AccountSnapshot | None = None,
    ) -> None:
        self.account = account
        self._config = config
        self._client = client
        self._stats_account = account.name
        self.snapshot = previous or AccountSnapshot(name=account.name)

    async def poll(self, stats: ApiStats, next_poll: float | None) -> AccountSnapshot:
        started = time.monotonic()
        now = time.time()
        requests_before = self._client.api_requests
        groups = await asyncio.gather(
            self._account_object(stats), self._invoices(stats), self._next_invoice_items(stats)
        )
        outcomes = [outcome for group in groups for outcome in group]
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
        return outcomes

    async def _invoices(self, stats: ApiStats) -> list[_Outcome]:
        """Fetch source invoices: the look-back window, paged."""
        lookback = min(self._config.invoice_lookback_seconds, _MAX_LOOKBACK.total_seconds())
        since = datetime.now(UTC) - timedelta(seconds=max(0.0, lookback))
        window = InvoiceWindowAggregator(since)
        return [
            await self._paged(
                stats,
                Source.INVOICES,
                method="getInvoices",
                mask=WINDOW_INVOICE_MASK,
                object_filter=_invoice_filter(since),
                consume=window.add_page,
                result=window.result,
            )
        ]

    async def _next_invoice_items(self, stats: ApiStats) -> list[_Outcome]:
        """Fetch source next_invoice_items: top-level items folded into category totals."""
        categories = CategoryAggregator()
        return [
            await self._paged(
                stats,
                Source.NEXT_INVOICE_ITEMS,
                method="getNextInvoiceTopLevelBillingItems",
                mask=NEXT_INVOICE_ITEM_MASK,
                object_filter={"nextInvoiceTopLevelBillingItems": {"id": _ORDER_BY_ID}},
                consume=categories.add_page,
                result=lambda: categories.result(self._config.top_categories),
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
        consume: Callable[[list[Any]], None],
        result: Callable[[], Any],
    ) -> _Outcome:
        try:
            await self._client.fetch_pages(
                ACCOUNT_SERVICE, method, mask=mask, object_filter=object_filter, consume=consume
            )
            return _Outcome(source, ok=True, value=result())
        except SoftLayerError as exc:
            return _failed(source, exc)
        except DecodeError as exc:
            stats.record_error(self._stats_account, ErrorReason.DECODE)
            return _failed(source, exc)
        except Exception as exc:  # a bug must not stop the other sources
            _log.exception("source_crashed", account=self.account.name, source=source.value)
            return _failed(source, exc)


def _invoice_filter(since: datetime) -> dict[str, Any]:
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
        api_stats: ApiStats | None = None,
    ) -> None:
        self.config = config
        self.state = state
        # A poller replacing another (configuration reload) continues its counters.
        self.api_stats = api_stats if api_stats is not None else ApiStats()
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
                    # Continue from what is served: a failed source keeps that data.
                    self.state.accounts.get(account.name),
                )
                for account in self.config.accounts
            ]
        return self._accounts

    async def poll_once(self) -> bool:
        """Poll every account once and publish; True when every source succeeded."""
        return await self._cycle(next_poll=time.time() + self.config.poll_interval_seconds)

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
            started = time.time()
            due = started + self._next_delay()
            finished = await _unless_stopped(self._cycle(next_poll=due), stop)
            if not finished:
                return
            remaining = due - time.time()
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
