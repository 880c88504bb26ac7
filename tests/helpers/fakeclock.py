"""A fake clock for the rate limiter tests: exact and instant."""

from __future__ import annotations


class FakeTime:
    """A clock that only moves when told to (``now``) or when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
