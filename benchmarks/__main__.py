"""``python -m benchmarks``: refresh, scrape and scaling benchmarks side by side, in one run.

Prints Markdown tables (the same ones docs/performance.md holds) and the performance targets
with PASS/MISS and their margin; ``--json`` also writes every raw measurement. The exit
status is 0 when every refresh succeeded and agreed with the simulator's ground truth,
whatever the targets say: targets are benchmark output, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.harness import ChildProcess, run_json_child
from benchmarks.polling import (
    budget_table,
    isolation_table,
    polling_targets,
    run_budget,
    run_isolation,
    run_steady,
    steady_table,
)
from benchmarks.refresh import poller_request
from benchmarks.report import (
    Target,
    cpu_ratio,
    fmt_bytes,
    linear_fit,
    markdown_table,
    request_floor,
)
from benchmarks.scrape import OpenLoop, ScrapeResult, run_scrape_benchmark

RSS_TARGET_MB = 150.0
SPEEDUP_TARGET = 4.0
DEFAULT_SPEEDUP_TARGET = 3.0
FLOOR_TARGET = 1.25
P99_TARGET_MS = 5.0
MAX_TARGET_MS = 20.0
FLAT_MEMORY_MB = 10.0


def _csv(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from error
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"need positive values: {text!r}")
        return values

    return parse


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the exporter against the official softlayer client.",
    )
    parser.add_argument(
        "--sizes",
        type=_csv(int),
        default=[1000, 20000, 100000],
        help="top-level billing items for the refresh comparison",
    )
    parser.add_argument(
        "--latencies",
        type=_csv(float),
        default=[0.02, 0.1, 0.3],
        help="simulated seconds per API request",
    )
    parser.add_argument(
        "--headline-latency",
        type=float,
        default=0.1,
        help="latency the targets and the scaling curve use",
    )
    parser.add_argument(
        "--scaling-sizes", type=_csv(int), default=[1000, 10000, 50000, 100000, 200000]
    )
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--rate-limit", type=int, default=50, help="simulator requests/second")
    parser.add_argument(
        "--our-rate",
        type=float,
        default=None,
        help="exporter max_requests_per_second (default: the rate limit)",
    )
    parser.add_argument(
        "--our-concurrency", type=int, default=20, help="exporter max_concurrent_requests"
    )
    parser.add_argument("--invoice-months", type=int, default=60, help="invoice history length")
    parser.add_argument("--lookback-days", type=float, default=90.0)
    parser.add_argument("--top-categories", type=int, default=20)
    parser.add_argument("--scrapers", type=_csv(int), default=[1, 10, 50])
    parser.add_argument(
        "--scrapes",
        type=int,
        default=300,
        help="scrapes per concurrency level (at least one per scraper)",
    )
    parser.add_argument(
        "--open-scrapers", type=int, default=50, help="open-loop scrapers (0: no open loop)"
    )
    parser.add_argument(
        "--open-interval", type=float, default=1.0, help="seconds between one scraper's scrapes"
    )
    parser.add_argument("--open-scrapes", type=int, default=1000, help="open-loop scrapes in all")
    parser.add_argument("--accounts", type=int, default=5, help="scrape benchmark accounts")
    parser.add_argument("--categories", type=int, default=200, help="categories per account")
    parser.add_argument(
        "--skip",
        choices=["refresh", "scaling", "scrape", "steady", "isolation", "budget"],
        action="append",
        default=[],
        help="leave out one part (repeatable)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smallest size, low latency, few scrapes: the CI smoke run",
    )
    parser.add_argument(
        "--steady-sizes",
        type=_csv(int),
        default=[1000, 20000, 100000, 200000],
        help="account sizes of the steady-state benchmark (requests per poll and per day)",
    )
    parser.add_argument(
        "--steady-interval", type=float, default=15.0, help="poll interval (minutes) of its day"
    )
    parser.add_argument(
        "--isolation-seconds", type=float, default=10.0, help="length of the isolation run"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [1000]
        args.latencies = [0.02]
        args.headline_latency = 0.02
        args.scaling_sizes = [500, 1000, 2000]
        args.steady_sizes = [1000]
        args.steady_interval = 60.0
        args.isolation_seconds = 3.0
        args.skip.append("budget")
        args.scrapes = 10
        args.open_scrapers, args.open_interval, args.open_scrapes = 10, 0.2, 40
        args.invoice_months = 24
    if args.headline_latency not in args.latencies:
        args.latencies = sorted({*args.latencies, args.headline_latency})
    if args.our_rate is None:
        args.our_rate = float(args.rate_limit)
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _check(result: dict[str, Any], truth: dict[str, Any]) -> str:
    """Compare a contender's aggregates with the simulator's ground truth."""
    problems = []
    if Decimal(result.get("category_amount", "nan")) != Decimal(truth["category_amount"]):
        problems.append(f"amount {result.get('category_amount')} != {truth['category_amount']}")
    items = result.get("hourly_items", 0) + result.get("monthly_items", 0)
    if items != truth["hourly_items"] + truth["monthly_items"]:
        problems.append(f"items {items} != {truth['hourly_items'] + truth['monthly_items']}")
    if result.get("window_counts") != truth["window_counts"]:
        problems.append(f"window {result.get('window_counts')} != {truth['window_counts']}")
    return "ok" if not problems else "; ".join(problems)


def _refresh_once(
    sim: ChildProcess, contender: str, items: int, latency: float, args: argparse.Namespace
) -> dict[str, Any]:
    account = sim.hello["account"]
    sim.request("reset")
    argv = [
        contender,
        "--endpoint", sim.hello["endpoint"],
        "--username", account["username"],
        "--api-key", account["api_key"],
        "--page-size", str(args.page_size),
        "--lookback-days", str(args.lookback_days),
        "--top-categories", str(args.top_categories),
        "--rate", str(args.our_rate),
        "--concurrency", str(args.our_concurrency),
    ]  # fmt: skip
    if contender == "baseline":
        argv += ["--request", json.dumps(poller_request(args.lookback_days))]
    try:
        result, usage, process_wall = run_json_child("benchmarks.refresh", argv)
    except RuntimeError as error:
        result, usage, process_wall = {"ok": False, "error": str(error)}, None, 0.0
    stats = sim.request("stats")
    truth = sim.request("truth", since=result.get("since", time.time()))
    record = {
        "contender": contender,
        "items": items,
        "latency": latency,
        **result,
        "process_wall_seconds": process_wall,
        "process_cpu_seconds": usage.cpu_seconds if usage else None,
        "process_peak_rss_mb": usage.peak_rss_mb if usage else None,
        "requests": stats["total"],
        "requests_by_method": stats["requests"],
        "bytes_sent": stats["bytes_sent"],
        "max_per_second": stats["max_per_second"],
        "window_invoices": sum(truth["window_counts"].values()),
        "check": _check(result, truth) if result.get("ok") else result.get("error", "failed"),
    }
    _log(
        f"{contender:8} {items:>7} items @{latency * 1000:.0f} ms: "
        f"{record.get('wall_seconds', float('nan')):.2f} s, {record['requests']} requests, "
        f"peak {record.get('peak_rss_mb', float('nan')):.0f} MiB, check {record['check']}"
    )
    return record


def run_refreshes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (size, latency, contender) the comparison and the scaling curve need."""
    compare = set() if "refresh" in args.skip else set(args.sizes)
    scaling = set() if "scaling" in args.skip else set(args.scaling_sizes)
    records = []
    for items in sorted(compare | scaling):
        _log(f"generating a simulated account of {items} items")
        with ChildProcess(
            "benchmarks.simhost",
            [
                "--items",
                str(items),
                "--invoice-months",
                str(args.invoice_months),
                "--latency",
                str(args.headline_latency),
                "--rate-limit",
                str(args.rate_limit),
            ],
        ) as sim:
            latencies = args.latencies if items in compare else [args.headline_latency]
            for latency in latencies:
                sim.request("latency", value=latency)
                contenders = ["ours", "default", "baseline"] if items in compare else ["ours"]
                for contender in contenders:
                    records.append(_refresh_once(sim, contender, items, latency, args))
    return records


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _find(records: list[dict[str, Any]], contender: str, items: int, latency: float) -> Any:
    for record in records:
        if (record["contender"], record["items"], record["latency"]) == (contender, items, latency):
            return record
    return None


def refresh_tables(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The per-contender table and the side-by-side ratio table."""
    rows = []
    for r in sorted(records, key=lambda r: (r["items"], r["latency"], r["contender"] != "ours")):
        if r["items"] not in args.sizes:
            continue
        rows.append([
            f"{r['items']:,}", f"{r['latency'] * 1000:.0f} ms", r["contender"],
            _f(r.get("wall_seconds")), str(r["requests"]), fmt_bytes(r["bytes_sent"]),
            _f(r.get("peak_rss_mb"), 0) + " MiB", _f(r.get("cpu_seconds")),
            str(r.get("retries", "-")), r["check"],
        ])  # fmt: skip
    per_contender = markdown_table(
        ["items", "latency", "contender", "wall s", "requests", "bytes", "peak RSS", "CPU s",
         "retries", "aggregates vs truth"],
        rows,
    )  # fmt: skip
    ratio_rows = []
    for items in args.sizes:
        for latency in args.latencies:
            ours = _find(records, "ours", items, latency)
            base = _find(records, "baseline", items, latency)
            if not ours or not base or "wall_seconds" not in ours or "wall_seconds" not in base:
                continue
            floor_requests = request_floor(items, ours["window_invoices"], args.page_size)
            floor_seconds = floor_requests / args.rate_limit
            default = _find(records, "default", items, latency)
            ratio_rows.append([
                f"{items:,}", f"{latency * 1000:.0f} ms",
                f"{base['wall_seconds'] / ours['wall_seconds']:.2f}x",
                f"{base['wall_seconds'] / default['wall_seconds']:.2f}x"
                if default and "wall_seconds" in default else "-",
                f"{ours['requests']} / {base['requests']}",
                f"{ours['bytes_sent'] / base['bytes_sent']:.2f}",
                f"{ours['peak_rss_mb']:.0f} / {base['peak_rss_mb']:.0f} MiB",
                cpu_ratio(ours["cpu_seconds"], base["cpu_seconds"], 1 / os.sysconf("SC_CLK_TCK")),
                f"{floor_requests} req = {floor_seconds:.2f} s",
                f"{ours['wall_seconds'] / floor_seconds:.2f}x",
            ])  # fmt: skip
    ratios = markdown_table(
        ["items", "latency", "speedup (baseline/ours)", "at defaults (baseline/default)",
         "requests ours/baseline",
         "bytes ours/baseline", "peak RSS ours/baseline", "CPU ours/baseline",
         f"floor at {args.rate_limit} req/s", "ours / floor"],
        ratio_rows,
    )  # fmt: skip
    return per_contender + "\n\n" + ratios


def scaling_table(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, str]:
    """The scaling curve of our exporter and its linear-fit verdict."""
    points = [
        r
        for r in records
        if r["contender"] == "ours"
        and r["latency"] == args.headline_latency
        and r["items"] in args.scaling_sizes
        and "wall_seconds" in r
    ]
    points.sort(key=lambda r: r["items"])
    rows = [
        [
            f"{r['items']:,}", _f(r["wall_seconds"]), str(r["requests"]),
            f"{r['requests'] / r['wall_seconds']:.1f}", _f(r["peak_rss_mb"], 1),
            _f(r["peak_rss_mb"] - r["idle_rss_mb"], 1), _f(r["cpu_seconds"]),
            _f(r["wall_seconds"] / r["items"] * 1000, 3),
        ]
        for r in points
    ]  # fmt: skip
    table = markdown_table(
        ["items", "wall s", "requests", "req/s", "peak RSS MiB", "RSS over idle MiB", "CPU s",
         "s per 1k items"],
        rows,
    )  # fmt: skip
    if len({r["items"] for r in points}) < 2:
        return table, "linear fit: needs at least two sizes"
    xs = [float(r["items"]) for r in points]
    fit = linear_fit(xs, [r["wall_seconds"] for r in points])
    memory = linear_fit(xs, [r["peak_rss_mb"] for r in points])
    linear = fit.r_squared >= 0.99
    growth = points[-1]["peak_rss_mb"] - points[0]["peak_rss_mb"]
    # Holding every item would cost hundreds of MiB at 200k; streaming costs a few pages.
    flat = growth < FLAT_MEMORY_MB
    verdict = (
        f"time: t = {fit.intercept:.2f} s + {fit.slope * 10_000:.3f} s per 10k items, "
        f"R^2 = {fit.r_squared:.4f}, worst point {fit.max_residual:.2f} s off the line "
        f"-> {'LINEAR' if linear else 'NOT LINEAR'}\n"
        f"memory: peak RSS {points[0]['peak_rss_mb']:.1f} MiB at {points[0]['items']:,} items, "
        f"{points[-1]['peak_rss_mb']:.1f} MiB at {points[-1]['items']:,} ({growth:+.1f} MiB; "
        f"fitted slope {memory.slope * 100_000:.1f} MiB per 100k items) "
        f"-> {'FLAT' if flat else 'GROWS WITH ITEMS'} (flat = under {FLAT_MEMORY_MB:.0f} MiB "
        "growth over the whole range)"
    )
    return table, verdict


def open_loop_table(results: list[ScrapeResult]) -> str:
    """Per-server latency of the open loop, from each scrape's scheduled time."""
    rows = [
        [
            r.server, str(r.concurrency), str(r.scrapes), _f(r.p50_ms), _f(r.p99_ms),
            _f(r.max_ms), f"{r.throughput_per_second:.0f}", _f(r.cpu_ms_per_scrape),
        ]
        for r in results
        if r.mode == "open"
    ]  # fmt: skip
    return markdown_table(
        ["server", "scrapers", "scrapes", "p50 ms", "p99 ms", "max ms", "scrapes/s",
         "CPU ms/scrape"],
        rows,
    )  # fmt: skip


def scrape_tables(results: list[ScrapeResult]) -> str:
    """Per-server latency and cost, and the ratio at each concurrency (closed loop)."""
    results = [r for r in results if r.mode == "closed"]
    rows = [
        [
            r.server, str(r.concurrency), str(r.scrapes), _f(r.p50_ms), _f(r.p99_ms),
            _f(r.max_ms), f"{r.throughput_per_second:.0f}", _f(r.cpu_ms_per_scrape),
            fmt_bytes(r.body_bytes), str(r.series),
        ]
        for r in results
    ]  # fmt: skip
    table = markdown_table(
        ["server", "scrapers", "scrapes", "p50 ms", "p99 ms", "max ms", "scrapes/s",
         "CPU ms/scrape", "body (gzip)", "series"],
        rows,
    )  # fmt: skip
    by_key = {(r.server, r.concurrency): r for r in results}
    ratio_rows = []
    for (server, concurrency), ours in sorted(by_key.items()):
        alt = by_key.get(("alt", concurrency))
        if server != "ours" or alt is None:
            continue
        cached = by_key.get(("cached", concurrency))
        ratio_rows.append([
            str(concurrency),
            f"{alt.p50_ms / ours.p50_ms:.1f}x",
            f"{alt.p99_ms / ours.p99_ms:.1f}x",
            cpu_ratio(alt.cpu_ms_per_scrape, ours.cpu_ms_per_scrape, ours.cpu_resolution_ms),
            f"{cached.p99_ms:.2f} ms" if cached else "-",
        ])  # fmt: skip
    if not ratio_rows:
        return table
    ratios = markdown_table(
        ["scrapers", "p50 alt/ours", "p99 alt/ours", "CPU per scrape alt/ours",
         "p99 if rendered once (cached)"],
        ratio_rows,
    )  # fmt: skip
    return table + "\n\n" + ratios


def _margin(value: float, goal: float, *, lower_is_better: bool) -> str:
    if lower_is_better:
        if value <= goal:
            return f"{(goal - value) / goal:.0%} headroom"
        ratio = value / goal
        return f"{ratio:.0f}x the goal" if ratio >= 2 else f"over by {ratio - 1:.0%}"
    return (
        f"{value / goal - 1:.0%} above goal"
        if value >= goal
        else (f"short by {1 - value / goal:.0%}")
    )


def targets(
    records: list[dict[str, Any]], scrapes: list[ScrapeResult], args: argparse.Namespace
) -> list[Target]:
    """The performance targets, each evaluated at the largest size this run measured."""
    result: list[Target] = []
    latency = args.headline_latency
    at = f"{latency * 1000:.0f} ms"
    compared = [
        s for s in args.sizes
        if (o := _find(records, "ours", s, latency)) and "wall_seconds" in o
        and (b := _find(records, "baseline", s, latency)) and "wall_seconds" in b
    ]  # fmt: skip
    if compared:
        size = max(compared)
        ours = _find(records, "ours", size, latency)
        base = _find(records, "baseline", size, latency)
        speedup = base["wall_seconds"] / ours["wall_seconds"]
        result.append(Target(
            f"refresh speedup vs baseline, {size:,} items @{at}", f">= {SPEEDUP_TARGET:.0f}x",
            f"{speedup:.2f}x", speedup >= SPEEDUP_TARGET,
            _margin(speedup, SPEEDUP_TARGET, lower_is_better=False),
        ))  # fmt: skip
        # The one request more: the recurring total read again after the item walk, which
        # lets the following polls project hourly accrual instead of walking (exporter.steady).
        result.append(Target(
            f"refresh requests vs baseline, {size:,} items, page {args.page_size}",
            "<= baseline + 1", f"{ours['requests']} vs {base['requests']}",
            ours["requests"] <= base["requests"] + 1,
            f"{base['requests'] + 1 - ours['requests']:+d} requests",
        ))  # fmt: skip
        default = _find(records, "default", size, latency)
        if default and "wall_seconds" in default:
            speedup = base["wall_seconds"] / default["wall_seconds"]
            result.append(Target(
                f"first walk at default settings vs baseline, {size:,} items @{at}",
                f">= {DEFAULT_SPEEDUP_TARGET:.0f}x", f"{speedup:.2f}x",
                speedup >= DEFAULT_SPEEDUP_TARGET,
                _margin(speedup, DEFAULT_SPEEDUP_TARGET, lower_is_better=False),
            ))  # fmt: skip
        floor = request_floor(size, ours["window_invoices"], args.page_size) / args.rate_limit
        distance = ours["wall_seconds"] / floor
        result.append(Target(
            f"refresh vs rate-limit floor, {size:,} items @{at}", f"<= {FLOOR_TARGET}x floor",
            f"{distance:.2f}x ({ours['wall_seconds']:.1f} s vs {floor:.1f} s)",
            distance <= FLOOR_TARGET, _margin(distance, FLOOR_TARGET, lower_is_better=True),
        ))  # fmt: skip
    else:
        result.append(Target("refresh speedup vs baseline", ">= 4x", "not measured", None, "-"))
        result.append(
            Target("refresh requests vs baseline", "<= baseline", "not measured", None, "-")
        )
        result.append(Target("refresh vs rate-limit floor", "<= 1.25x", "not measured", None, "-"))
    scaled = [
        r for r in records
        if r["contender"] == "ours" and "peak_rss_mb" in r and r["items"] in args.scaling_sizes
    ]  # fmt: skip
    if scaled:
        largest = max(scaled, key=lambda r: r["items"])
        rss = largest["peak_rss_mb"]
        result.append(Target(
            f"peak RSS, {largest['items']:,} items", f"< {RSS_TARGET_MB:.0f} MiB", f"{rss:.1f} MiB",
            rss < RSS_TARGET_MB, _margin(rss, RSS_TARGET_MB, lower_is_better=True),
        ))  # fmt: skip
    else:
        result.append(Target("peak RSS", "< 150 MiB", "not measured", None, "-"))
    result.extend(_scrape_targets(scrapes))
    return result


def _scrape_targets(scrapes: list[ScrapeResult]) -> list[Target]:
    result: list[Target] = []
    for mode, label in (("closed", "closed loop"), ("open", "open loop, each once per interval")):
        ours = [s for s in scrapes if s.server == "ours" and s.mode == mode]
        if not ours:
            result.append(Target(f"/metrics p99, {label}", "< 5 ms", "not measured", None, "-"))
            continue
        busiest = max(ours, key=lambda s: s.concurrency)
        where = f"{busiest.concurrency} scrapers, {label}"
        result.append(Target(
            f"/metrics p99, {where}", f"< {P99_TARGET_MS:.0f} ms",
            f"{busiest.p99_ms:.2f} ms", busiest.p99_ms < P99_TARGET_MS,
            _margin(busiest.p99_ms, P99_TARGET_MS, lower_is_better=True),
        ))  # fmt: skip
        result.append(Target(
            f"/metrics max, {where}", f"< {MAX_TARGET_MS:.0f} ms",
            f"{busiest.max_ms:.2f} ms", busiest.max_ms < MAX_TARGET_MS,
            _margin(busiest.max_ms, MAX_TARGET_MS, lower_is_better=True),
        ))  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts, print the tables and targets, optionally write JSON."""
    args = _parse_args(argv)
    started = time.monotonic()
    records = run_refreshes(args)
    scrapes: list[ScrapeResult] = []
    if "scrape" not in args.skip:
        _log(f"scrape benchmark: {args.accounts} accounts x {args.categories} categories")
        scrapes = run_scrape_benchmark(
            ["ours", "alt", "cached"],
            args.scrapers,
            args.scrapes,
            args.accounts,
            args.categories,
            warm_up=not args.quick,
            open_loop=OpenLoop(args.open_scrapers, args.open_interval, args.open_scrapes)
            if args.open_scrapers
            else None,
        )
    steady: list[dict[str, Any]] = []
    if "steady" not in args.skip:
        _log(f"steady state: {', '.join(f'{s:,}' for s in args.steady_sizes)} items")
        steady = run_steady(
            args.steady_sizes,
            invoice_months=args.invoice_months,
            interval_minutes=args.steady_interval,
        )
    isolation: dict[str, Any] = {}
    if "isolation" not in args.skip:
        _log("isolation: a healthy account next to a hanging one and an absurd total")
        isolation = run_isolation(args.isolation_seconds)
    budget: dict[str, Any] = {}
    if "budget" not in args.skip:
        _log("budget: the first walk next to another tool on the same account")
        budget = run_budget(20_000, args.headline_latency, 20.0)
    print(
        "# softlayer-billing-exporter benchmarks "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    )
    print()
    print(
        f"page size {args.page_size}, simulator rate limit {args.rate_limit} req/s, exporter "
        f"max_requests_per_second {args.our_rate:g}, max_concurrent_requests "
        f"{args.our_concurrency}, {args.invoice_months} months of invoices, look-back "
        f"{args.lookback_days:g} days"
    )
    if records and "refresh" not in args.skip:
        print("\n## Refresh: ours vs official client\n")
        print(refresh_tables(records, args))
    if records and "scaling" not in args.skip:
        table, verdict = scaling_table(records, args)
        print(f"\n## Scaling (ours, {args.headline_latency * 1000:.0f} ms latency)\n")
        print(table)
        print()
        print(verdict)
    if scrapes:
        print(f"\n## Scrape: {args.accounts} accounts x {args.categories} categories\n")
        print(scrape_tables(scrapes))
        if any(s.mode == "open" for s in scrapes):
            print(
                f"\nOpen loop: {args.open_scrapers} scrapers, each once every "
                f"{args.open_interval:g} s (latency from the scheduled time)\n"
            )
            print(open_loop_table(scrapes))
    if steady:
        print("\n## Steady state: requests per poll and per day (shipped defaults)\n")
        print(steady_table(steady))
    if isolation:
        print("\n## Isolation: polls completed side by side\n")
        print(isolation_table(isolation))
    if budget:
        print("\n## Request budget shared with another tool\n")
        print(budget_table(budget))
    goals = targets(records, scrapes, args)
    if steady or isolation:
        goals += polling_targets(steady, isolation)
    print("\n## Targets\n")
    print(
        markdown_table(
            ["target", "goal", "measured", "verdict", "margin"], [t.row() for t in goals]
        )
    )
    print(f"\ntotal benchmark time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "arguments": {
                        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    },
                    "refresh": records,
                    "scrape": [asdict(s) for s in scrapes],
                    "steady": steady,
                    "isolation": isolation,
                    "budget": budget,
                    "targets": [{**asdict(t), "verdict": t.verdict} for t in goals],
                },
                indent=2,
                default=str,
            )
        )
    failed = [r for r in records if r["check"] != "ok"]
    for record in failed:
        _log(f"FAILED: {record['contender']} {record['items']} items: {record['check']}")
    steady_failed = [r for r in steady if r.get("check") != "ok"]
    for record in steady_failed:
        _log(f"FAILED: steady state, {record['items']} items: {record.get('check')}")
    return 1 if failed or steady_failed or "error" in isolation else 0


if __name__ == "__main__":
    sys.exit(main())
