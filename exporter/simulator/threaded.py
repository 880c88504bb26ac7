"""Run a SimulatorServer on its own event loop in a background thread.

For synchronous callers — the official ``softlayer`` client in tests and benchmarks — that
cannot share an event loop with the simulator. Scenario mutations from the calling thread are
seen by the next request; they are plain attribute updates, not synchronised, so make them
between requests rather than during one.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer


class ThreadedSimulator:
    """A SimulatorServer serving from a daemon thread.

    ``with ThreadedSimulator(scenario, **server_kwargs) as sim:`` — ``sim`` is the running
    :class:`SimulatorServer` (use its ``endpoint``, ``stats``, ``add_fault`` ...).
    """

    def __init__(self, scenario: Scenario, **server_kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SimulatorServer(scenario, **server_kwargs)
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="softlayer-simulator", daemon=True
        )

    def __enter__(self) -> SimulatorServer:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=60)
        except BaseException:
            self._shutdown_loop()
            raise
        return self.server

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=60)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=60)
        self.loop.close()
