"""Per-account request-rate limiter for the SoftLayer API.

SoftLayer answers more than 50 requests per second with an HTTP 500
``RateLimitExceeded``; the exporter keeps each account under its own, lower, configured
budget. The limiter is a token bucket holding a single token (so requests are spaced
``1/rate`` apart instead of bursting) plus a sliding-window log that caps the number of
requests started in any window of one second at ``floor(rate)``. The log is what makes the
budget a hard guarantee: spacing alone lets ``rate + 1`` requests land in a closed
one-second window when the event loop wakes up late for one request and on time for the next.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

#: Slack added to the window so that arrival jitter between us and the API cannot squeeze
#: ``floor(rate) + 1`` requests into one second as seen by the server.
_WINDOW_SLACK_SECONDS = 0.02


class RateLimiter:
    """Admit at most ``floor(rate)`` (at least one) request starts per second, spaced out.

    ``acquire`` waits until a request may start and records its start; callers are served
    in FIFO order because one lock serialises the waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._per_window = max(1, math.floor(rate))
        # With rate < 1 the window stretches so that one request per window is still <= rate.
        self._window = max(1.0, self._per_window / rate) + _WINDOW_SLACK_SECONDS
        self._interval = 1.0 / rate
        self._starts: deque[float] = deque(maxlen=self._per_window)
        self._next_token_at = 0.0
        self._lock = asyncio.Lock()

    def _delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next request may start."""
        delay = self._next_token_at - now
        if len(self._starts) == self._per_window:
            delay = max(delay, self._starts[0] + self._window - now)
        return max(0.0, delay)

    async def acquire(self) -> None:
        """Wait for permission to start one request."""
        async with self._lock:
            while (delay := self._delay(self._clock())) > 0:
                await self._sleep(delay)
            # Book from the actual start time, not from the planned one: a late wake-up
            # must not let the next request follow closer than the interval.
            now = self._clock()
            self._starts.append(now)
            self._next_token_at = now + self._interval
