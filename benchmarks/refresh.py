"""One contender's full refresh in a fresh process: ``python -m benchmarks.refresh CONTENDER``.

Contenders: ``ours`` (the exporter with ``--rate`` and ``--concurrency``: tuned), ``default``
(the exporter with the shipped defaults for both), ``baseline`` (the official client).

Prints one ``@bench`` JSON line: wall and CPU time of the refresh itself, the process's peak
RSS (``ru_maxrss``, interpreter and imports included, as an operator would see it), the RSS
after imports (to show what the refresh itself added) and a summary of the aggregates, which
the driver checks against the simulator's ground truth.

``--serving`` polls like the serving daemon, where the exporter supports it
(``Poller(..., defer_invoice_lines=True)``: the latest invoice's lines are walked after the
poll); each poll's record then carries ``background``, the wall time, CPU time and requests
of ``Poller.settled()`` right after it (the walk in the idle time before the next poll).
An exporter without that option (an older tree) polls as it always did.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness import emit, self_usage

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from benchmarks.baseline import Request


def poller_request(lookback_days: float) -> Request:
    """The masks and invoice filter our poller sends, for the baseline (run in the driver).

    The baseline's process gets them as JSON instead of importing the exporter, whose
    modules (aiohttp among them) would count in its RSS.
    """
    from exporter.sources import invoice_filter  # noqa: PLC0415  in the driver only
    from exporter.wire import ACCOUNT_MASK, NEXT_INVOICE_ITEM_MASK, WINDOW_INVOICE_MASK  # noqa: PLC0415

    since = time.time() - lookback_days * 86400.0
    return {
        "since": since,
        "account_mask": ACCOUNT_MASK,
        "invoice_mask": WINDOW_INVOICE_MASK,
        "invoice_filter": invoice_filter(datetime.fromtimestamp(since, tz=UTC)),
        "item_mask": NEXT_INVOICE_ITEM_MASK,
    }


def _run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import baseline  # noqa: PLC0415  imported before the clock starts, see main

    result = baseline.refresh(
        args.endpoint,
        args.username,
        args.api_key,
        page_size=args.page_size,
        request=json.loads(args.request),
        top_categories=args.top_categories,
    )
    categories = result.categories.values()
    return {
        "ok": True,
        "retries": result.retries,
        "since": result.since,
        "category_count": len(result.categories),
        "folded_categories": result.folded_categories,
        "category_amount": str(sum((c["amount"] for c in categories), Decimal(0))),
        "hourly_items": sum(c["hourly"] for c in categories),
        "monthly_items": sum(c["monthly"] for c in categories),
        "window_counts": result.window_counts,
        "window_amount": str(result.window_amount),
    }


async def _run_ours(args: argparse.Namespace, *, tuned: bool) -> dict[str, Any]:
    from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret  # noqa: PLC0415
    from exporter.poller import Poller  # noqa: PLC0415
    from exporter.snapshot import ExporterState  # noqa: PLC0415

    config = Config(
        accounts=(
            AccountConfig(
                name="bench",
                endpoint=args.endpoint,
                auth=AuthConfig(
                    method=AuthMethod.CLASSIC,
                    api_key=Secret(args.api_key),
                    username=args.username,
                ),
            ),
        ),
        request_timeout_seconds=120.0,
        page_size=args.page_size,
        invoice_lookback_seconds=args.lookback_days * 86400.0,
        top_categories=args.top_categories,
    )
    if tuned:
        config = replace(
            config,
            max_requests_per_second=args.rate,
            max_concurrent_requests=args.concurrency,
        )
    state = ExporterState(("bench",))
    # The *before* side of benchmarks.finops is an exporter without the option.
    serving = args.serving and "defer_invoice_lines" in inspect.signature(Poller).parameters
    poller = Poller(config, state, defer_invoice_lines=True) if serving else Poller(config, state)

    async def measured(step: Callable[[], Awaitable[object]]) -> tuple[object, dict[str, Any]]:
        before = dict(poller.api_stats.requests)
        started, cpu = time.monotonic(), self_usage().cpu_seconds
        value = await step()
        by_method: dict[str, int] = {}
        for (_, method, _), count in poller.api_stats.requests.items():
            by_method[method] = by_method.get(method, 0) + count
        for (_, method, _), count in before.items():
            by_method[method] -= count
        return value, {
            "wall_seconds": time.monotonic() - started,
            "cpu_seconds": self_usage().cpu_seconds - cpu,
            "requests_by_method": {m: n for m, n in by_method.items() if n},
        }

    polls: list[dict[str, Any]] = []
    try:
        ok = True
        # Poll 1 is what the other tables measure; later ones are the steady state that
        # whatever a process caches (the latest invoice's lines) is measured against.
        for _ in range(max(1, args.polls)):
            up, record = await measured(poller.poll_once)
            ok = bool(up) and ok
            if serving:
                _, record["background"] = await measured(poller.settled)
            polls.append(record)
    finally:
        await poller.aclose()
    snapshot = state.accounts["bench"]
    errors = dict(poller.api_stats.errors)
    import exporter  # noqa: PLC0415  which tree the contender runs (see benchmarks.finops)

    result: dict[str, Any] = {
        "ok": bool(ok),
        "serving": serving,
        "polls": polls,
        "exporter_path": str(Path(exporter.__file__).parent),
        "retries": sum(errors.values()),
        "errors": {f"{a}/{r}": n for (a, r), n in errors.items()},
    }
    if snapshot.next_invoice is not None:
        categories = snapshot.next_invoice.categories
        result.update(
            category_count=len(categories),
            folded_categories=snapshot.next_invoice.folded_categories,
            category_amount=str(sum((c.amount_usd for c in categories), Decimal(0))),
            hourly_items=sum(c.hourly_items for c in categories),
            monthly_items=sum(c.monthly_items for c in categories),
        )
    if snapshot.invoices is not None:
        result.update(
            since=snapshot.invoices.since.timestamp(),
            window_counts={f"{t}/{s}": n for (t, s), n in snapshot.invoices.counts.items() if n},
            window_amount=str(sum(snapshot.invoices.amounts_usd.values(), Decimal(0))),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one refresh and report it; exit 1 if the contender reported a failed refresh."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refresh")
    parser.add_argument("contender", choices=["ours", "default", "baseline"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--lookback-days", type=float, default=90.0)
    parser.add_argument("--top-categories", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="ours: max requests per second")
    parser.add_argument("--concurrency", type=int, default=16, help="ours: concurrent requests")
    parser.add_argument("--polls", type=int, default=1, help="ours: polls in one process")
    parser.add_argument(
        "--serving",
        action="store_true",
        help="ours: walk the latest invoice's lines after the poll, as the daemon does",
    )
    parser.add_argument("--request", help="baseline: poller_request(...) as JSON")
    args = parser.parse_args(argv)
    if args.contender == "baseline" and args.request is None:
        parser.error("the baseline needs --request (see poller_request)")

    # Import each contender's libraries before the clock starts: both pay their import cost
    # in every real deployment once, not per refresh.
    if args.contender == "baseline":
        import benchmarks.baseline  # noqa: F401, PLC0415
    else:
        import exporter.poller  # noqa: F401, PLC0415
    idle = self_usage()
    started = time.monotonic()
    if args.contender == "baseline":
        result = _run_baseline(args)
    else:
        result = asyncio.run(_run_ours(args, tuned=args.contender == "ours"))
    wall = time.monotonic() - started
    done = self_usage()
    result.update(
        contender=args.contender,
        wall_seconds=wall,
        cpu_seconds=done.cpu_seconds - idle.cpu_seconds,
        peak_rss_mb=done.peak_rss_mb,
        idle_rss_mb=idle.peak_rss_mb,
    )
    emit(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
