"""The driver's side of the polling benchmarks: steady state, isolation, a shared budget.

Each measurement runs in its own process (:mod:`benchmarks.steady` per account size,
:mod:`benchmarks.isolation` and :mod:`benchmarks.budget` once); this module turns their JSON
lines into the printed tables and targets.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import run_json_child
from benchmarks.report import Target, markdown_table

__all__ = [
    "UNCHANGED_POLL_TARGET",
    "budget_table",
    "isolation_table",
    "polling_targets",
    "run_budget",
    "run_isolation",
    "run_steady",
    "steady_table",
]

#: Requests an unchanged account's poll may cost, at any size.
UNCHANGED_POLL_TARGET = 5


def _run_once(module: str, argv: list[str]) -> dict[str, Any]:
    """Run one measurement in its own process; a failed run is ``{"error": ...}``."""
    try:
        result, _, _ = run_json_child(module, argv)
    except RuntimeError as error:
        return {"error": str(error)}
    return result


def run_steady(sizes: list[int], *, invoice_months: int, interval_minutes: float) -> list[Any]:
    """Measure every size in its own process."""
    records = []
    for items in sizes:
        argv = [
            "--items", str(items), "--invoice-months", str(invoice_months),
            "--interval-minutes", str(interval_minutes),
        ]  # fmt: skip
        try:
            result, usage, wall = run_json_child("benchmarks.steady", argv)
        except RuntimeError as error:
            result = {"items": items, "check": str(error)}
        else:
            result.update(process_wall_seconds=wall, process_peak_rss_mb=usage.peak_rss_mb)
        records.append(result)
    return records


def steady_table(records: list[dict[str, Any]]) -> str:
    """Requests per poll and per day, steady state against walking every poll."""
    rows = []
    for r in records:
        if "day_requests" not in r:
            rows.append([f"{r['items']:,}", *["-"] * 9, r.get("check", "failed")])
            continue
        before_day = r["walk_every_poll"] * r["day_polls"]
        rows.append([
            f"{r['items']:,}", str(r["first_walk"]), str(r["unchanged_same_hour"]),
            str(r["unchanged_next_hour"]), str(r["after_a_change"]),
            f"{r['day_requests']:,} ({r['day_item_walks']} walks)",
            str(r["walk_every_poll"]), f"{before_day:,}", f"{before_day / r['day_requests']:.1f}x",
            f"{r['process_peak_rss_mb']:.0f} MiB", r["check"],
        ])  # fmt: skip
    polls = next((r["day_polls"] for r in records if "day_polls" in r), 0)
    return markdown_table(
        ["items", "first walk", "unchanged poll", "next hour (accrual)", "after a change",
         f"per day ({polls} polls)", "before: per poll", "before: per day", "per day before/now",
         "process peak RSS (simulator in it)", "served vs truth"],
        rows,
    )  # fmt: skip


def run_isolation(seconds: float) -> dict[str, Any]:
    """Three accounts (healthy, hanging, absurd total) polled side by side for ``seconds``."""
    return _run_once("benchmarks.isolation", ["--seconds", str(seconds)])


def isolation_table(result: dict[str, Any]) -> str:
    """Polls each account completed while the others hung or walked for ever."""
    if "polls" not in result:
        return f"not measured: {result.get('error')}"
    polls = result["polls"]
    rows = [
        ["healthy", str(polls.get("healthy", 0)), str(result["healthy_expected"])],
        ["hanging getObject (cut at the poll deadline)", str(polls.get("hanging", 0)), "-"],
        ["SoftLayer-Total-Items 10^9 (incomplete)", str(polls.get("huge", 0)), "-"],
    ]
    header = (
        f"{result['seconds']:g} s, poll interval {result['interval']:g} s, "
        f"poll_timeout {result['poll_timeout']:g} s\n\n"
    )
    return header + markdown_table(["account", "polls completed", "its interval allows"], rows)


def polling_targets(steady: list[dict[str, Any]], isolation: dict[str, Any]) -> list[Target]:
    """Unchanged polls nearly free at every size; the healthy account on schedule."""
    result = []
    measured = [r for r in steady if "unchanged_same_hour" in r]
    if measured:
        worst = max(measured, key=lambda r: max(r["unchanged_same_hour"], r["unchanged_next_hour"]))
        cost = max(worst["unchanged_same_hour"], worst["unchanged_next_hour"])
        result.append(Target(
            f"requests per unchanged poll, up to {max(r['items'] for r in measured):,} items",
            f"<= {UNCHANGED_POLL_TARGET}", str(cost), cost <= UNCHANGED_POLL_TARGET,
            f"{UNCHANGED_POLL_TARGET - cost:+d} requests",
        ))  # fmt: skip
    else:
        result.append(Target("requests per unchanged poll", "<= 5", "not measured", None, "-"))
    if "polls" in isolation:
        done, expected = isolation["polls"].get("healthy", 0), isolation["healthy_expected"]
        result.append(Target(
            "healthy account's polls while others hang", f">= {expected - 1} of {expected}",
            str(done), done >= expected - 1, f"{done - expected:+d} polls",
        ))  # fmt: skip
    else:
        result.append(Target("healthy account's polls while others hang", "-", "not measured",
                             None, "-"))  # fmt: skip
    return result


def run_budget(items: int, latency: float, neighbour_rate: float) -> dict[str, Any]:
    """The first walk alone and next to another tool using the same account's budget."""
    argv = [
        "--items", str(items), "--latency", str(latency),
        "--neighbour-rate", str(neighbour_rate),
    ]  # fmt: skip
    return _run_once("benchmarks.budget", argv)


def budget_table(result: dict[str, Any]) -> str:
    """Walk time and rejections on both sides, per setting."""
    if "runs" not in result:
        return f"not measured: {result.get('error')}"
    rows = [
        [
            r["setting"], f"{r['wall_seconds']:.2f}", str(r["exporter_rejected"]),
            f"{r['exporter_final_rate']:.1f}", str(r["neighbour_sent"]),
            str(r["neighbour_rejected"]),
        ]
        for r in result["runs"]
    ]  # fmt: skip
    header = (
        f"{result['items']:,} items, {result['latency'] * 1000:.0f} ms per request, "
        f"SoftLayer's 50 requests/s, a neighbour tool sending {result['neighbour_rate']:g}/s\n\n"
    )
    return header + markdown_table(
        ["exporter", "first walk s", "exporter rejected", "its rate after (req/s)",
         "neighbour requests", "neighbour rejected"],
        rows,
    )  # fmt: skip
