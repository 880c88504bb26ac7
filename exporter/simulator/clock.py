"""The simulator's billing clock: simulated wall time that may run faster than real time.

A :class:`SimClock` reads ``start + (real elapsed) x speed + manual advances``. Speed 0 (the
default) stands still, so a test or a month-replay harness moves time only when it says so
and every step is deterministic; speed 3600 turns each real second into a simulated hour.
The scenario (:class:`~exporter.simulator.Scenario`) reads this clock to accrue hourly items,
cut the recurring invoice on the account's anniversary and close it by payment after the
account's terms; ``Scenario.advance()`` moves the clock and runs those events at once.

Python::

    clock = SimClock(start=datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    clock.advance(3600)        # one simulated hour later
    clock.set_speed(86_400)    # from now on, one simulated day per real second
    poller = Poller(config, state, clock=clock.time)  # the exporter on simulated time

HTTP (``/__admin/clock``): ``GET`` answers ``{"now", "epoch", "speed"}``; ``POST`` takes
``{"speed": 3600}``, ``{"advance": "36h"}`` (or seconds) and/or ``{"to": "<ISO-8601>"}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

__all__ = ["SimClock", "parse_duration"]

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str) -> float:
    """Parse ``90s``, ``15m``, ``36h``, ``1d12h`` (Prometheus style) into seconds."""
    stripped = text.strip()
    if not stripped or _DURATION_PART.sub("", stripped):
        raise ValueError(f"expected a duration such as 36h or 1d12h, got {text!r}")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(stripped))


class SimClock:
    """Simulated unix time; see the module docstring.

    ``real`` is the real-time source the speed applies to (monotonic by default); tests may
    pass their own. Time never goes backwards: :meth:`advance_to` a past moment is an error.
    """

    def __init__(
        self,
        start: float,
        *,
        speed: float = 0.0,
        real: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._real = real
        self._anchor_sim = float(start)
        self._anchor_real = real()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second (0: the clock stands still)."""
        return self._speed

    def now(self) -> float:
        """Return the simulated unix time."""
        return self._anchor_sim + (self._real() - self._anchor_real) * self._speed

    def time(self) -> float:
        """Return the simulated unix time; a drop-in for :func:`time.time`."""
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` simulated seconds per real second from now on."""
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._rebase()
        self._speed = float(speed)

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` ahead; returns the new simulated time."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, got {seconds} seconds")
        self._rebase()
        self._anchor_sim += seconds
        return self._anchor_sim

    def advance_to(self, moment: float) -> float:
        """Jump to ``moment`` (unix time, not in the past); returns it."""
        current = self.now()
        if moment < current:
            raise ValueError(f"the clock only moves forward: {moment} is before {current}")
        return self.advance(moment - current)

    def _rebase(self) -> None:
        self._anchor_sim = self.now()
        self._anchor_real = self._real()
