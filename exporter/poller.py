"""The background poller: each account on its own schedule, its snapshots published whole.

Every account is polled by its own loop (:func:`exporter.schedule.every`) at its own interval
(``Config.poll_interval_of``, with ``poll_jitter``), so a slow, hanging or huge account never
delays another; one poll of an account ends at its deadline (``Config.poll_timeout_of``) at
the latest (see :mod:`exporter.accountpoll`). :meth:`Poller.poll_once` polls every account
once, concurrently (``--once`` and tests).

What one poll asks SoftLayer (:mod:`exporter.sources`): one ``getObject`` for the account
object; for an account whose billing did not change since the last walk (the steady state,
:mod:`exporter.steady`) one request for the end of the item list, one for new invoices and
one for the open ones: about four requests whatever the account's size. A list is walked
whole (``W(n) = 1 + ceil((n - P - o) / P)`` pages for ``n > P + o`` rows, else 1; ``P`` =
``page_size``, ``o = max(2, P // 20)`` rows of overlap) on the first poll, when a check finds
it changed, and at least every ``full_walk_interval`` (the items; a closed invoice is never
read again). Plus retries of failed requests, one more walk of a list whose completeness
could not be proven, and one IAM token exchange when a token is due.

Time: every "now" the poller uses (attempt and success timestamps, the look-back window,
the hours left in the billing cycle, the hours accrued since a walk, when a full walk is
due, the next poll's due time) comes from one injectable wall clock,
``Poller(config, state, clock=...)``: a callable returning unix seconds, :func:`time.time`
by default. Durations and deadlines stay on the event loop's monotonic clock. A harness can
thus poll in simulated time, e.g. against the simulator's billing clock
(:class:`exporter.simulator.SimClock`)::

    scenario = Scenario.generate(seed=1, accounts=[AccountSpec(items=50)], now=start)
    async with SimulatorServer(scenario) as sim:
        poller = Poller(config, ExporterState(("acct0",)), clock=scenario.clock.time)
        for _ in range(24 * 31):
            scenario.advance(timedelta(hours=1))  # the simulated month moves on
            await poller.poll_once()  # one poll per account, stamped with simulated time
        await poller.aclose()

The latest recurring invoice's lines (source ``invoice_history``) are walked inside the poll
that first sees the invoice, so one poll gives complete figures (``--once``, tests, the
library). ``Poller(..., defer_invoice_lines=True)`` (the serving daemon) walks them in the
background once that poll has ended instead, and the next poll publishes them
(:mod:`exporter.finops.history`): the poll after a start or an anniversary then costs what it
cost before that source existed. :meth:`Poller.settled` waits for such walks.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time

import aiohttp
import structlog

from exporter.accountpoll import AccountPoller, Clock
from exporter.api_stats import ApiStats
from exporter.config import Config
from exporter.schedule import every
from exporter.snapshot import ExporterState
from exporter.softlayer import SoftLayerClient
from exporter.sources import ACCOUNT_SERVICE

__all__ = ["ACCOUNT_SERVICE", "Clock", "Poller"]

_log = structlog.get_logger()


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
        defer_invoice_lines: bool = False,
    ) -> None:
        self.config = config
        self.state = state
        # A poller replacing another (configuration reload) continues its counters.
        self.api_stats = api_stats if api_stats is not None else ApiStats()
        self.clock = clock  # every "now" of the polls (see the module docstring)
        self._rng = rng or random.Random()  # noqa: S311  jitter, not cryptography
        self._defer_invoice_lines = defer_invoice_lines
        self._session: aiohttp.ClientSession | None = None
        self._accounts: list[AccountPoller] = []
        self._polled: set[str] = set()  # accounts whose first poll has ended

    def _ensure_started(self) -> list[AccountPoller]:
        if self._session is None:
            self._session = aiohttp.ClientSession(raise_for_status=False)
            self._accounts = [
                AccountPoller(
                    account,
                    self.config,
                    SoftLayerClient(account, self.config, self._session, self.api_stats),
                    self.api_stats,
                    self.clock,
                    # Continue from what is served: a failed source keeps that data.
                    previous=self.state.accounts.get(account.name),
                    defer_invoice_lines=self._defer_invoice_lines,
                )
                for account in self.config.accounts
            ]
        return self._accounts

    def client(self, account: str) -> SoftLayerClient:
        """Return the API client polling ``account`` (its page sizes, caps and rate).

        Raises KeyError before the first poll (the clients are built with the session).
        """
        for poller in self._accounts:
            if poller.account.name == account:
                return poller.client
        raise KeyError(f"no client for account {account!r} (polled yet?)")

    async def poll_once(self) -> bool:
        """Poll every account once, concurrently, and publish; True if every source is up."""
        accounts = self._ensure_started()
        now = self.clock()
        results = await asyncio.gather(
            *(self._poll(p, now + self.config.poll_interval_of(p.account)) for p in accounts)
        )
        self.state.first_cycle_done = True
        return all(results)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll each account at its own interval (with jitter) until ``stop`` is set.

        Setting ``stop`` also cancels the polls in flight: snapshots already published stay,
        the interrupted accounts keep their previous ones.
        """
        accounts = self._ensure_started()
        loops = [
            asyncio.create_task(
                every(
                    functools.partial(self._delay, poller),
                    functools.partial(self._poll, poller),
                    clock=self.clock,
                    stop=stop,
                ),
                name=f"poll {poller.account.name}",
            )
            for poller in accounts
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def _delay(self, poller: AccountPoller) -> float:
        jitter = self.config.poll_jitter
        factor = 1.0 + self._rng.uniform(-jitter, jitter)
        return self.config.poll_interval_of(poller.account) * factor

    async def _poll(self, poller: AccountPoller, next_poll: float) -> bool:
        try:
            snapshot = await poller.poll(next_poll)
        except Exception:
            # Sources catch their own failures; this is a bug elsewhere. Keep the previous
            # snapshot and the other accounts going.
            _log.exception("poll_crashed", account=poller.account.name)
            return False
        self.state.publish(snapshot)
        self._polled.add(poller.account.name)
        if len(self._polled) == len(self._accounts):
            self.state.first_cycle_done = True
        return snapshot.up

    async def settled(self) -> None:
        """Wait until every account's background work (deferred line walks) has ended.

        Call it between polls (tests, benchmarks): a walk starts when its poll has ended.
        """
        await asyncio.gather(*(poller.settled() for poller in self._accounts))

    async def aclose(self) -> None:
        """Stop background work, then close the HTTP session; the poller cannot poll afterwards."""
        # Cancelled before the session closes, so that no walk fails on a closed session.
        await asyncio.gather(*(poller.aclose() for poller in self._accounts))
        if self._session is not None:
            await self._session.close()
