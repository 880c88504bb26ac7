"""Sharing an account's request budget with another tool: ``python -m benchmarks.budget``.

SoftLayer allows 50 requests per second (the simulator enforces it per account, answering
``RateLimitExceeded`` above it). A *neighbour*, another tool on the same account, sends
``getObject`` at a steady ``--neighbour-rate`` and counts its rejections, while the exporter
makes its first walk of an account: alone (neighbour off), next to the neighbour with the
shipped adaptive rate (ceiling 45), and next to it with a fixed share (ceiling 50 minus the
neighbour's rate). Everything runs in this process against an in-process simulator with
``--latency`` per request. Prints one ``@bench`` JSON line per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import time
from typing import Any

import aiohttp
import structlog

from benchmarks.harness import emit
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState


async def _neighbour(
    sim: SimulatorServer, username: str, api_key: str, rate: float, stop: asyncio.Event
) -> dict[str, int]:
    """Send getObject at ``rate`` per second until ``stop``; count answers and rejections."""
    token = base64.b64encode(f"{username}:{api_key}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    url = f"{sim.endpoint}SoftLayer_Account/getObject.json"
    counts = {"sent": 0, "rejected": 0}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.get(url, headers=headers, params={"objectMask": "mask[id]"}) as answer:
            body = await answer.text()
            if "RateLimitExceeded" in body:
                counts["rejected"] += 1

    async with aiohttp.ClientSession() as session:
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            counts["sent"] += 1
            task = asyncio.create_task(one(session))
            pending.add(task)
            task.add_done_callback(pending.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / rate)
        await asyncio.gather(*pending, return_exceptions=True)
    return counts


async def _walk(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    scenario = Scenario.generate(seed=7, accounts=[AccountSpec(items=args.items)])
    acct = scenario.accounts[0]
    async with SimulatorServer(
        scenario, latency_seconds=args.latency, rate_limit_per_second=50
    ) as sim:
        auth = AuthConfig(
            method=AuthMethod.CLASSIC, api_key=Secret(acct.api_key), username=acct.username
        )
        overrides: dict[str, Any] = {}
        if setting == "fixed share":
            overrides["max_requests_per_second"] = 50.0 - args.neighbour_rate
        config = Config(
            accounts=(AccountConfig(name="bench", endpoint=sim.endpoint, auth=auth),),
            **overrides,
        )
        poller = Poller(config, ExporterState(("bench",)))
        stop = asyncio.Event()
        neighbour = (
            None
            if setting == "alone"
            else asyncio.create_task(
                _neighbour(sim, acct.username, acct.api_key, args.neighbour_rate, stop)
            )
        )
        if neighbour is not None:
            await asyncio.sleep(1.0)  # the neighbour is already busy when the walk starts
        started = time.monotonic()
        with structlog.testing.capture_logs():
            ok = await poller.poll_once()
        wall = time.monotonic() - started
        stop.set()
        counts = await neighbour if neighbour is not None else {"sent": 0, "rejected": 0}
        client = poller.client("bench")
        result = {
            "setting": setting,
            "ok": ok,
            "wall_seconds": wall,
            "exporter_rejected": poller.api_stats.errors.get(("bench", "rate_limited"), 0),
            "exporter_final_rate": client.rate.rate,
            "neighbour_sent": counts["sent"],
            "neighbour_rejected": counts["rejected"],
        }
        await poller.aclose()
    return result


def main(argv: list[str] | None = None) -> int:
    """Walk alone, then next to the neighbour with the adaptive rate and a fixed share."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--neighbour-rate", type=float, default=20.0)
    args = parser.parse_args(argv)
    results = [asyncio.run(_walk(args, s)) for s in ("alone", "adaptive", "fixed share")]
    emit(
        {
            "items": args.items,
            "latency": args.latency,
            "neighbour_rate": args.neighbour_rate,
            "runs": results,
        }
    )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
