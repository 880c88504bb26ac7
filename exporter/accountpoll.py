"""One poll of one account: its fetchers under a deadline, the forecast rule, one log event.

Within an account the sources (:class:`~exporter.snapshot.Source`) succeed or fail
independently (:mod:`exporter.sources`): a failed source keeps its last good data in the
new snapshot and is marked down with the failure's reason. A poll that outlives its
deadline (``Config.poll_timeout_of``) is cancelled: the sources that finished keep their
fresh data, the others are down with reason ``timeout`` and keep their last good data. The
snapshot is built complete and immutable (:func:`~exporter.snapshot.assemble`), then
published by the caller with one assignment, so a scrape never sees half a poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import structlog

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, Config
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    AccountSnapshot,
    AccountSummary,
    Failed,
    Fetched,
    NextInvoiceBreakdown,
    Outcome,
    Source,
    assemble,
)
from exporter.softlayer import ErrorReason, SoftLayerClient
from exporter.sources import (
    FETCHERS,
    AccountSources,
    BackgroundWork,
    PollContext,
    SourceFetcher,
    failed,
)
from exporter.wire import project_breakdown

__all__ = ["AccountPoller", "Clock"]

#: The poller's wall clock: unix seconds, like :func:`time.time`.
Clock = Callable[[], float]

#: Undocumented codes remembered per account so that each is logged once (bounded).
_MAX_REPORTED_CODES: Final = 64
_DOCUMENTED_CODES: Final = {"type": frozenset(INVOICE_TYPES), "status": frozenset(INVOICE_STATUSES)}

_log = structlog.get_logger()


class AccountPoller:
    """Polls one account and carries its last good data (and its fetchers' state) along."""

    def __init__(
        self,
        account: AccountConfig,
        config: Config,
        client: SoftLayerClient,
        stats: ApiStats,
        clock: Clock,
        *,
        previous: AccountSnapshot | None = None,
        defer_invoice_lines: bool = False,
    ) -> None:
        self.account = account
        self.client = client
        self._stats = stats
        self._clock = clock
        self.deadline = config.poll_timeout_of(account)
        sources = AccountSources(account, config, client, defer_invoice_lines=defer_invoice_lines)
        self._fetchers: list[SourceFetcher] = [
            fetcher for create in FETCHERS if (fetcher := create(sources)) is not None
        ]
        self._background = [f for f in self._fetchers if isinstance(f, BackgroundWork)]
        self._reported_codes: set[tuple[str, str]] = set()
        # A poller started by a configuration reload continues from the served snapshot, so a
        # source that fails on its first poll keeps the data already served.
        self.snapshot = previous or AccountSnapshot(name=account.name)

    async def poll(self, next_poll: float | None) -> AccountSnapshot:
        """Poll every source once (within the deadline) and return the new snapshot."""
        started = time.monotonic()
        poll = PollContext(now=self._clock(), stats=self._stats)
        requests_before = self.client.api_requests
        try:
            outcomes, timed_out = await self._run(poll)
        finally:
            poll.ended.set()  # background work started by this poll may begin
        outcomes = self._forecast(outcomes, poll)
        snapshot = assemble(
            self.snapshot,
            outcomes,
            now=poll.now,
            duration=time.monotonic() - started,
            next_poll=next_poll,
        )
        self.snapshot = snapshot
        self._report_codes(poll)
        if timed_out:
            poll.notes["deadline_seconds"] = self.deadline
        self._log(snapshot, outcomes, poll, self.client.api_requests - requests_before)
        return snapshot

    async def settled(self) -> None:
        """Wait until the fetchers' background work has ended (between polls)."""
        for fetcher in self._background:
            await fetcher.settled()

    async def aclose(self) -> None:
        """Cancel the fetchers' background work and wait for it to end."""
        await asyncio.gather(*(fetcher.aclose() for fetcher in self._background))

    async def _run(self, poll: PollContext) -> tuple[list[Outcome], bool]:
        """Run the fetchers concurrently until all end or the deadline passes."""
        tasks = [asyncio.create_task(f.fetch(poll)) for f in self._fetchers]
        try:
            _, pending = await asyncio.wait(tasks, timeout=self.deadline)
        finally:
            # Also when this poll itself is cancelled (shutdown): take the fetchers along.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            self._stats.record_error(self.account.name, ErrorReason.TIMEOUT)
        outcomes: list[Outcome] = []
        for fetcher, task in zip(self._fetchers, tasks, strict=True):
            if task in pending:
                message = f"poll deadline of {self.deadline:g}s passed"
                outcomes += [Failed(s, message, ErrorReason.TIMEOUT.value) for s in fetcher.sources]
            elif (exc := task.exception()) is not None:
                # Fetchers catch their own failures; this is a bug in one of them.
                _log.error("source_crashed", account=self.account.name, error=repr(exc))
                outcomes += [failed(s, exc) for s in fetcher.sources]
            else:
                outcomes += task.result()
        return outcomes, bool(pending)

    def _forecast(self, outcomes: list[Outcome], poll: PollContext) -> list[Outcome]:
        """Publish the next-invoice forecast whole or not at all (see AccountSnapshot).

        The forecast is the account object's next-invoice totals plus the item breakdown,
        projected to the end of the billing cycle; both come from this poll or both keep
        their previous values.
        """
        by_source = {outcome.source: outcome for outcome in outcomes}
        account = by_source.get(Source.ACCOUNT)
        items = by_source.get(Source.NEXT_INVOICE_ITEMS)
        summary = poll.summary.peek()  # this poll's account object, if it was decoded
        if isinstance(items, Fetched) and isinstance(items.value, NextInvoiceBreakdown):
            if not isinstance(summary, AccountSummary):  # the items fetcher reports this itself
                items = Failed(items.source, "not published: no account object", None)
            elif summary.billing_cycle is not None:
                hours_left = summary.billing_cycle.hours_left(poll.now)
                projected = project_breakdown(
                    items.value, summary.next_invoice_pre_tax_usd, hours_left
                )
                items = replace(items, value=projected)
        elif (
            items is not None
            and isinstance(account, Fetched)
            and isinstance(account.value, AccountSummary)
            and (previous := self.snapshot.summary) is not None
        ):
            # The items failed: the fresh balance is published, the forecast totals are not.
            held = replace(
                account.value,
                next_invoice_pre_tax_usd=previous.next_invoice_pre_tax_usd,
                next_invoice_recurring_usd=previous.next_invoice_recurring_usd,
                next_invoice_one_time_usd=previous.next_invoice_one_time_usd,
                next_invoice_tax_usd=previous.next_invoice_tax_usd,
                next_invoice_item_count=previous.next_invoice_item_count,
            )
            by_source[Source.ACCOUNT] = replace(account, value=held)
        if items is not None:
            by_source[Source.NEXT_INVOICE_ITEMS] = items
        return [by_source[outcome.source] for outcome in outcomes]

    def _report_codes(self, poll: PollContext) -> None:
        """Log each undocumented invoice type/status code once per account (bounded).

        The first poll that sees a code names it in its ``poll`` event
        (``undocumented_codes``, e.g. ``"status:DISPUTED"``); later polls do not repeat it.
        """
        for kind, code in poll.codes:
            if code in _DOCUMENTED_CODES[kind] or (kind, code) in self._reported_codes:
                continue
            if len(self._reported_codes) >= _MAX_REPORTED_CODES:
                return
            self._reported_codes.add((kind, code))
            poll.notes.setdefault("undocumented_codes", []).append(f"{kind}:{code[:64]}")

    def _log(
        self, snapshot: AccountSnapshot, outcomes: list[Outcome], poll: PollContext, requests: int
    ) -> None:
        """Log the poll's one canonical event; identical errors are listed once."""
        failures = [o for o in outcomes if isinstance(o, Failed)]
        failed_sources = sorted(o.source.value for o in failures)
        outcome = (
            "ok" if not failures else "failed" if len(failures) == len(outcomes) else "partial"
        )
        errors: dict[tuple[str, str | None], list[str]] = {}
        for failure in failures:
            errors.setdefault((failure.group, failure.reason), []).append(failure.source.value)
        fields: dict[str, Any] = {
            "account": self.account.name,
            "outcome": outcome,
            # The poll's time, as softlayer_source_last_attempt_timestamp_seconds carries it:
            # ties a log line to the figures it published.
            "attempted_at": poll.now,
            "duration_seconds": round(snapshot.poll_duration_seconds or 0.0, 3),
            "requests": requests,
            "sources_failed": failed_sources,
            "errors": [
                {"error": error, "reason": reason, "sources": sorted(sources)}
                for (error, reason), sources in errors.items()
            ],
            **poll.notes,
        }
        (_log.info if outcome == "ok" else _log.warning)("poll", **fields)
