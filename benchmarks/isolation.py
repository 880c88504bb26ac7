"""Accounts on their own schedules, in a fresh process: ``python -m benchmarks.isolation``.

Three simulated accounts polled every ``--interval`` seconds for ``--seconds`` seconds of
wall time: a healthy one, one whose ``getObject`` hangs (the simulator's hang fault; each of
its polls ends at the poll deadline, ``--poll-timeout``), one that announces a total of 10^9
items (the absurd-total fault; each walk is proven incomplete). Prints one ``@bench`` JSON
line with the polls each account completed: the healthy account's count is what its own
interval allows, whatever the others do. With the lock-step cycles the exporter had before,
every account completed one poll per cycle of the slowest, the hanging one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from typing import Any

import structlog

from benchmarks.harness import emit
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret
from exporter.poller import Poller
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import AccountSnapshot, ExporterState

NAMES = ("healthy", "hanging", "huge")


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = AccountSpec(items=args.items, pending_invoice=True, invoice_months=12)
    scenario = Scenario.generate(seed=9, accounts=[spec] * len(NAMES))
    async with SimulatorServer(scenario, rate_limit_per_second=50) as sim:
        _, hanging, huge = scenario.accounts
        sim.add_fault(FaultRule(FaultKind.HANG, "SoftLayer_Account::getObject", hanging.id))
        sim.add_fault(
            FaultRule(
                FaultKind.ABSURD_TOTAL_ITEMS,
                "SoftLayer_Account::getNextInvoiceTopLevelBillingItems",
                huge.id,
            )
        )
        accounts = tuple(
            AccountConfig(
                name=name,
                endpoint=sim.endpoint,
                auth=AuthConfig(
                    method=AuthMethod.CLASSIC, api_key=Secret(a.api_key), username=a.username
                ),
            )
            for name, a in zip(NAMES, scenario.accounts, strict=True)
        )
        config = Config(
            accounts=accounts,
            poll_interval_seconds=args.interval,
            poll_jitter=0.0,
            poll_timeout_seconds=args.poll_timeout,
            request_timeout_seconds=args.seconds * 10,
        )
        poller = Poller(config, ExporterState(NAMES))
        polls: Counter[str] = Counter()
        publish = poller.state.publish

        def counting(snapshot: AccountSnapshot) -> None:
            publish(snapshot)
            polls[snapshot.name] += 1

        poller.state.publish = counting  # type: ignore[method-assign]
        stop = asyncio.Event()
        with structlog.testing.capture_logs():
            task = asyncio.create_task(poller.run(stop))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), args.seconds)
            stop.set()
            await task
        await poller.aclose()
    return {
        "seconds": args.seconds,
        "interval": args.interval,
        "poll_timeout": args.poll_timeout,
        "polls": {name: polls[name] for name in NAMES},
        "healthy_expected": int(args.seconds / args.interval),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the three accounts for a while and print how many polls each completed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isolation")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--poll-timeout", type=float, default=3.0)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args(argv)
    emit(asyncio.run(_measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
