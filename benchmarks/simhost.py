"""The simulator in its own process, steered over stdin/stdout JSON lines.

Run by the driver as ``python -m benchmarks.simhost --items N ...``; it generates one account
of N top-level billing items with a multi-year invoice history, serves it on an ephemeral
loopback port, prints ``{"endpoint": ..., "account": {...}}`` and then answers one JSON line
per command: ``stats``, ``reset``, ``latency`` (``value``), ``truth`` (``since``), ``quit``.
Keeping it out of the contenders' processes keeps its CPU and memory out of their figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from benchmarks.harness import emit
from exporter.simulator import AccountSpec, Scenario, SimulatorServer


def _truth(scenario: Scenario, account_id: int, since: float) -> dict[str, Any]:
    """Ground truth the contenders' aggregates are checked against."""
    truth = scenario.truth(account_id)
    categories = truth.categories.values()
    window: dict[str, int] = {}
    window_amount = Decimal(0)
    since_dt = datetime.fromtimestamp(since, tz=UTC)
    for invoice in truth.invoices:
        if invoice.created >= since_dt:
            key = f"{invoice.type_code}/{invoice.status_code}"
            window[key] = window.get(key, 0) + 1
            window_amount += invoice.total
    return {
        "category_count": len(truth.categories),
        "category_amount": str(sum((c.amount for c in categories), Decimal(0))),
        "hourly_items": sum(c.hourly_items for c in categories),
        "monthly_items": sum(c.monthly_items for c in categories),
        "next_invoice_item_count": truth.next_invoice_item_count,
        "invoice_count": len(truth.invoices),
        "window_counts": window,
        "window_amount": str(window_amount),
    }


async def _serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    scenario = Scenario.generate(
        seed=args.seed,
        accounts=[
            AccountSpec(items=args.items, pending_invoice=True, invoice_months=args.invoice_months)
        ],
    )
    generated = time.monotonic() - started
    account = scenario.accounts[0]
    async with SimulatorServer(
        scenario,
        host="127.0.0.1",
        port=0,
        latency_seconds=args.latency,
        rate_limit_per_second=args.rate_limit,
        token_ttl_seconds=3600,
    ) as sim:
        emit(
            {
                "endpoint": sim.endpoint,
                "iam_token_url": sim.iam_token_url,
                "account": {
                    "id": account.id,
                    "username": account.username,
                    "api_key": account.api_key,
                },
                "generate_seconds": round(generated, 3),
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            match command["cmd"]:
                case "stats":
                    emit(
                        {
                            "requests": dict(sim.stats.requests),
                            "total": sim.stats.total,
                            "bytes_sent": sim.stats.bytes_sent,
                            "max_per_second": sim.stats.max_per_second,
                        }
                    )
                case "reset":
                    sim.reset_stats()
                    emit({"ok": True})
                case "latency":
                    sim.set_latency(float(command["value"]))
                    emit({"ok": True})
                case "truth":
                    emit(_truth(scenario, account.id, float(command["since"])))
                case "quit":
                    return
                case other:
                    emit({"error": f"unknown command {other!r}"})


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until stdin closes or ``quit`` arrives."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simhost")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--invoice-months", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rate-limit", type=int, default=50)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
