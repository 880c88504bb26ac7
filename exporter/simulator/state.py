"""The mutable state one running simulator shares between the API, the admin API and its owner."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator.auth import Authenticator
from exporter.simulator.faults import FaultSet
from exporter.simulator.scenario import Scenario


@dataclass(eq=False)
class PageHook:
    """Mutate the account right after the ``after_pages``-th matching list page is rendered.

    That page still shows the state before the change, the next one the state after it:
    "a device cancelled between two pages of one poll". ``method`` (``Service::method``)
    and ``account_id`` None match every list call. ``fired`` is set once ``action`` ran.
    """

    after_pages: int
    action: Callable[[Scenario], object]
    method: str | None = None
    account_id: int | None = None
    description: str = ""
    seen: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.after_pages < 1:
            raise ValueError(f"after_pages must be >= 1, got {self.after_pages}")

    def to_json(self) -> dict[str, Any]:
        """Describe the hook (admin API)."""
        return {
            "after_pages": self.after_pages,
            "method": self.method,
            "account_id": self.account_id,
            "action": self.description,
            "seen": self.seen,
            "fired": self.fired.is_set(),
        }


@dataclass
class Stats:
    """Request accounting for tests and benchmarks (API calls only, not admin/IAM)."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    total: int = 0
    bytes_sent: int = 0
    max_per_second: int = 0
    token_requests: int = 0
    _window: collections.deque[float] = field(default_factory=collections.deque, repr=False)

    def record(self, method: str, now: float) -> None:
        """Count one API call and update the peak 1-second rate."""
        self.requests[method] += 1
        self.total += 1
        window = self._window
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        self.max_per_second = max(self.max_per_second, len(window))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able copy."""
        return {
            "requests": dict(self.requests),
            "total": self.total,
            "bytes_sent": self.bytes_sent,
            "max_per_second": self.max_per_second,
            "token_requests": self.token_requests,
        }


@dataclass
class SimulatorState:
    """Everything a running simulator shares between the API, the admin API and the owner."""

    scenario: Scenario
    auth: Authenticator
    faults: FaultSet = field(default_factory=FaultSet)
    stats: Stats = field(default_factory=Stats)
    latency_seconds: float = 0.0
    rate_limit_per_second: int | None = 50
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: Monotonic clock for rate limiting and the stats window (tests may pin it).
    clock: Callable[[], float] = time.monotonic
    #: Set once a HANG fault holds a request (lets tests synchronise without sleeping).
    hang_started: asyncio.Event = field(default_factory=asyncio.Event)
    #: A server page cap below the requested resultLimit (None: no cap), and whether capped
    #: list answers still carry SoftLayer-Total-Items. No source documents a maximum limit
    #: (softlayer-api.md section 1.6); the cap models one.
    page_cap: int | None = None
    page_cap_total_header: bool = True
    page_hooks: list[PageHook] = field(default_factory=list)
    _rate_windows: dict[int, collections.deque[float]] = field(default_factory=dict)

    def run_page_hooks(self, method: str, account_id: int) -> None:
        """Count one rendered list page; run the hooks it completes."""
        for hook in list(self.page_hooks):
            if hook.method is not None and hook.method != method:
                continue
            if hook.account_id is not None and hook.account_id != account_id:
                continue
            hook.seen += 1
            if hook.seen >= hook.after_pages:
                self.page_hooks.remove(hook)
                hook.action(self.scenario)
                hook.fired.set()

    def over_rate_limit(self, account_id: int, now: float) -> bool:
        """Whether this call exceeds ``rate_limit_per_second`` for the account."""
        limit = self.rate_limit_per_second
        if not limit:
            return False
        window = self._rate_windows.setdefault(account_id, collections.deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            return True
        window.append(now)
        return False
