"""Per-account request-rate limiting for the SoftLayer API: a hard cap and an adaptive rate.

SoftLayer answers more than 50 requests per second with an HTTP 500 ``RateLimitExceeded``
(softlayer-api.md section 2.2; whether per user, key or account is not documented).

:class:`RateLimiter` enforces a rate: a token bucket holding a single token (requests are
spaced ``1/rate`` apart instead of bursting) plus a sliding-window log that caps the requests
started in any window of one second at ``floor(rate)``. The log is what makes the rate a hard
guarantee: spacing alone lets ``rate + 1`` requests land in a closed one-second window when
the event loop wakes up late for one request and on time for the next.

:class:`AdaptiveRate` moves that rate below a ceiling (``max_requests_per_second``),
because an account's budget is shared with whatever else uses the account and nobody tells
us how much is left: it starts at the ceiling, halves on a ``RateLimitExceeded`` (at most
once per second: the requests in flight when the limit was hit are one event) down to
:data:`FLOOR_RATE`, and grows back by :data:`ADDITIVE_STEP` requests/second per second of
accepted requests (additive increase, multiplicative decrease, as TCP shares a link). Alone
on an account under the default ceiling of 45, the exporter is never rejected and runs at
the ceiling; next to another tool, the two settle below SoftLayer's limit with the exporter
giving way. docs/performance.md ("Request budget") has the measurements.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["ADDITIVE_STEP", "FLOOR_RATE", "AdaptiveRate", "RateLimiter"]

#: Slack added to the window so that arrival jitter between us and the API cannot squeeze
#: ``floor(rate) + 1`` requests into one second as seen by the server.
_WINDOW_SLACK_SECONDS: Final = 0.02
#: Growth after a rejection, in requests/second per second of accepted requests.
ADDITIVE_STEP: Final = 2.0
#: The adaptive rate never drops below this (or the ceiling, if lower).
FLOOR_RATE: Final = 1.0
#: A rejection decreases the rate at most once per this many seconds: the requests already
#: in flight when the limit was hit are rejected too, and are one event, not several.
_DECREASE_HOLD_SECONDS: Final = 1.0


class RateLimiter:
    """Admit at most ``floor(rate)`` (at least one) request starts per second, spaced out.

    ``acquire`` waits until a request may start and records its start; callers are served
    in FIFO order because one lock serialises the waiting. :meth:`set_rate` changes the rate
    for the requests that have not started yet.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._next_token_at = 0.0
        self._lock = asyncio.Lock()
        self.rate = rate
        self._per_window = 1
        self._window = 1.0
        self._interval = 1.0
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """Use ``rate`` requests/second from the next request on."""
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        self.rate = rate
        self._per_window = max(1, math.floor(rate))
        # With rate < 1 the window stretches so that one request per window is still <= rate.
        self._window = max(1.0, self._per_window / rate) + _WINDOW_SLACK_SECONDS
        # The token due after the last start moves with the rate, so a halved rate also
        # slows the very next request.
        if self._starts:
            self._next_token_at = self._starts[-1] + 1.0 / rate
        self._interval = 1.0 / rate

    def _delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next request may start."""
        starts = self._starts
        while starts and starts[0] <= now - self._window:
            starts.popleft()
        delay = self._next_token_at - now
        if len(starts) >= self._per_window:
            delay = max(delay, starts[-self._per_window] + self._window - now)
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


class AdaptiveRate:
    """Steer a :class:`RateLimiter` between :data:`FLOOR_RATE` and ``ceiling`` (see above).

    The caller reports every answered request: :meth:`accepted`, or :meth:`rejected` for a
    ``RateLimitExceeded``.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        ceiling: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.ceiling = ceiling
        self._floor = min(FLOOR_RATE, ceiling)
        self._clock = clock
        self._last_decrease = -math.inf
        self.rejections = 0  # rejection events: at most one per hold period
        limiter.set_rate(ceiling)

    @property
    def rate(self) -> float:
        """The rate currently allowed, requests/second."""
        return self.limiter.rate

    def accepted(self) -> None:
        """One request went through: grow by ``step / rate``, i.e. ``step`` per second."""
        rate = self.limiter.rate
        if rate < self.ceiling:
            self.limiter.set_rate(min(self.ceiling, rate + ADDITIVE_STEP / rate))

    def rejected(self) -> None:
        """SoftLayer answered ``RateLimitExceeded``: halve, once per hold period."""
        now = self._clock()
        if now - self._last_decrease < _DECREASE_HOLD_SECONDS:
            return
        self._last_decrease = now
        self.rejections += 1
        self.limiter.set_rate(max(self._floor, self.limiter.rate / 2))
