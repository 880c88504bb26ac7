"""SimulatorServer: run the simulator on a loopback port inside the current event loop."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from types import TracebackType

from aiohttp import web

from exporter.simulator.app import build_app
from exporter.simulator.auth import Authenticator
from exporter.simulator.clock import SimClock
from exporter.simulator.faults import FaultRule
from exporter.simulator.scenario import Scenario
from exporter.simulator.state import PageHook, SimulatorState, Stats


class SimulatorServer:
    """An async context manager serving a :class:`Scenario` over HTTP.

    ``port=0`` binds an ephemeral port; read :attr:`endpoint` after entering.
    ``rate_limit_per_second`` None or 0 disables rate limiting.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_seconds: float = 0.0,
        rate_limit_per_second: int | None = 50,
        token_ttl_seconds: float = 3600,
        faults: Iterable[FaultRule] = (),
    ) -> None:
        if latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")
        if rate_limit_per_second is not None and rate_limit_per_second < 0:
            raise ValueError("rate_limit_per_second must be >= 0 or None")
        self.scenario = scenario
        self.host = host
        self.port = port
        self.state = SimulatorState(
            scenario=scenario,
            auth=Authenticator(scenario, token_ttl_seconds),
            latency_seconds=latency_seconds,
            rate_limit_per_second=rate_limit_per_second,
        )
        for rule in faults:
            self.state.faults.add(rule)
        self._runner: web.AppRunner | None = None
        self._base: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving."""
        if self._runner is not None:
            raise RuntimeError("SimulatorServer is already running")
        self.state.closing = asyncio.Event()
        self.state.hang_started = asyncio.Event()
        runner = web.AppRunner(
            build_app(self.state),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            handler_cancellation=True,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        host, port = address[0], address[1]
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self._base = f"http://{shown}:{port}"

    async def stop(self) -> None:
        """Stop serving; hanging requests are released first."""
        if self._runner is None:
            return
        self.state.closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` (only while running)."""
        if self._base is None:
            raise RuntimeError("SimulatorServer is not running")
        return self._base

    @property
    def endpoint(self) -> str:
        """The REST endpoint URL, ending in ``/rest/v3.1/``."""
        return f"{self.base_url}/rest/v3.1/"

    @property
    def iam_token_url(self) -> str:
        """The IAM token endpoint URL."""
        return f"{self.base_url}/identity/token"

    @property
    def admin_url(self) -> str:
        """The admin API base URL, ending in ``/__admin/``."""
        return f"{self.base_url}/__admin/"

    # -- control -----------------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """Request accounting since start or the last :meth:`reset_stats`."""
        return self.state.stats

    def reset_stats(self) -> None:
        """Zero the request accounting."""
        self.state.stats = Stats(requests=collections.Counter())

    def set_latency(self, seconds: float) -> None:
        """Delay every API answer by ``seconds``."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.state.latency_seconds = seconds

    def set_rate_limit(self, per_second: int | None) -> None:
        """Change the per-account rate limit (None or 0: off)."""
        self.state.rate_limit_per_second = per_second

    def add_fault(self, rule: FaultRule) -> int:
        """Install a fault rule; returns its id."""
        return self.state.faults.add(rule)

    def remove_fault(self, fault_id: int) -> None:
        """Remove one fault rule (KeyError if unknown)."""
        self.state.faults.remove(fault_id)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.state.faults.clear()

    def expire_tokens(self) -> int:
        """Expire every IAM token issued so far; returns how many."""
        return self.state.auth.expire_tokens()

    @property
    def clock(self) -> SimClock:
        """The scenario's billing clock (see :class:`~exporter.simulator.clock.SimClock`)."""
        return self.scenario.clock

    def set_page_cap(self, max_items: int | None, *, total_header: bool = True) -> None:
        """Serve at most ``max_items`` rows per list page, whatever resultLimit asks.

        None removes the cap; ``total_header`` says whether capped answers still carry
        SoftLayer-Total-Items.
        """
        if max_items is not None and max_items < 1:
            raise ValueError("page cap must be >= 1 or None")
        self.state.page_cap = max_items
        self.state.page_cap_total_header = total_header

    def mutate_after_pages(
        self,
        after_pages: int,
        action: Callable[[Scenario], object],
        *,
        method: str | None = None,
        account_id: int | None = None,
    ) -> PageHook:
        """Run ``action(scenario)`` right after the ``after_pages``-th matching list page.

        ``method`` is ``Service::method`` (e.g. ``SoftLayer_Account::getInvoices``); await
        ``hook.fired.wait()`` to know it ran. Example, cancel an item between pages 2 and 3::

            sim.mutate_after_pages(
                2, lambda sc: sc.cancel_billing_item(acct.id, item_id), method=ITEMS
            )
        """
        hook = PageHook(after_pages, action, method, account_id, getattr(action, "__name__", ""))
        self.state.page_hooks.append(hook)
        return hook
