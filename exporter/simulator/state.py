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
    _rate_windows: dict[int, collections.deque[float]] = field(default_factory=dict)

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
