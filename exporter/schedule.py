"""Repeating one piece of work on its own schedule until told to stop.

The poller runs one schedule per account (:func:`every`), so an account whose polls are slow,
hang until their deadline or walk 200,000 items never delays another account's polls: each
account waits only for its own previous poll and its own interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["every", "unless_stopped"]


async def every(
    delay: Callable[[], float],
    work: Callable[[float], Awaitable[Any]],
    *,
    clock: Callable[[], float],
    stop: asyncio.Event,
) -> None:
    """Run ``work(due)`` now, then again once ``due`` has come, until ``stop`` is set.

    ``due`` is the start of this run plus ``delay()`` (an interval, with jitter), on
    ``clock``; a run that takes longer than that is followed by the next one at once.
    Setting ``stop`` cancels a run in flight.
    """
    while not stop.is_set():
        due = clock() + delay()
        if not await unless_stopped(work(due), stop):
            return
        remaining = due - clock()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=remaining)


async def unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` fires first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()  # the caller itself was cancelled: take the work down with it
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
