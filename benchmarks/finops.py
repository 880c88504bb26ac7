"""``python -m benchmarks.finops``: what the FinOps sources cost a refresh, side by side.

Two contenders poll the same simulated account (same simulator process, latency and rate
limit), each in a fresh process, interleaved:

- *before*: the exporter as it was before the FinOps sources, the ``exporter`` package of a
  git revision (``--before``, default :data:`BEFORE_FINOPS`, the last commit of ``main``
  without them, so that nothing else differs) exported into a temporary directory and put
  first on the child's ``PYTHONPATH`` (the child reports which tree it imported);
- *after*: this tree, every FinOps source on (datacenters and top items in the item walk,
  billing information, invoice history, the latest invoice's lines).

Each process polls twice, as the serving daemon does (``benchmarks.refresh --serving``):
poll 1 is a refresh after a start, poll 2 the steady state every later poll is. *After*
walks the latest recurring invoice's lines (once per invoice and process) in the background
once poll 1 has ended; the child waits for that walk (``Poller.settled()``) before poll 2 and
reports it apart, the "background walk" row. Printed: wall and CPU time per poll and of the
background walk, requests per method, peak RSS, and the ratios after/before with the 10 %
goal for time and memory; the item walk's request count must be identical. Exit 1 when a
refresh failed or the item walk's requests differ.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, ChildProcess, run_json_child
from benchmarks.report import markdown_table

ITEM_WALK = "getNextInvoiceTopLevelBillingItems"
#: The last commit of ``main`` before the FinOps sources were merged (needs a full clone).
BEFORE_FINOPS = "fb8fe2b260508477ce5c71ef9274f391003ecb3a"
GOAL = 1.10


def _export(revision: str, into: Path) -> Path:
    """Extract ``exporter/`` of a git revision into ``into``; return that directory."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "exporter"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _refresh(sim: ChildProcess, args: argparse.Namespace, before: Path | None) -> dict[str, Any]:
    account = sim.hello["account"]
    sim.request("reset")
    argv = [
        "ours",
        "--endpoint", sim.hello["endpoint"],
        "--username", account["username"],
        "--api-key", account["api_key"],
        "--rate", str(args.rate_limit),
        "--concurrency", "20",
        "--polls", "2",
        "--serving",
    ]  # fmt: skip
    # The baseline's exporter first, this tree's benchmarks after it; run from the baseline's
    # directory because ``python -m`` puts the working directory first on sys.path.
    env = None if before is None else {"PYTHONPATH": f"{before}{os.pathsep}{ROOT}"}
    result, usage, _ = run_json_child("benchmarks.refresh", argv, env=env, cwd=before)
    stats = sim.request("stats")
    result["process_peak_rss_mb"] = usage.peak_rss_mb
    result["bytes_sent"] = stats["bytes_sent"]
    return result


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finops", description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rate-limit", type=int, default=50)
    parser.add_argument("--invoice-months", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender (median)")
    parser.add_argument(
        "--before",
        default=BEFORE_FINOPS,
        help=f"git revision of the baseline (default: {BEFORE_FINOPS[:12]}, before FinOps)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    records: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="finops-before-") as tmp:
        before = _export(args.before, Path(tmp))
        simhost_args = [
            "--items", str(args.items), "--invoice-months", str(args.invoice_months),
            "--latency", str(args.latency), "--rate-limit", str(args.rate_limit),
        ]  # fmt: skip
        with ChildProcess("benchmarks.simhost", simhost_args) as sim:
            for run in range(args.repeat):
                for name, path in (("before", before), ("after", None)):
                    record = _refresh(sim, args, path)
                    expected = (
                        str(before / "exporter") if name == "before" else str(ROOT / "exporter")
                    )
                    if record["exporter_path"] != expected:
                        raise SystemExit(f"{name} imported {record['exporter_path']}")
                    records[name].append(record)
                    polls = record["polls"]
                    walk = polls[0].get("background")
                    print(
                        f"[run {run + 1}] {name}: poll 1 {polls[0]['wall_seconds']:.2f} s, "
                        + ("" if walk is None else f"walk {walk['wall_seconds']:.2f} s, ")
                        + f"poll 2 {polls[1]['wall_seconds']:.2f} s, "
                        f"peak {record['process_peak_rss_mb']:.1f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
    print(report(records, args))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2, default=str))
    failed = not all(r["ok"] for rs in records.values() for r in rs)
    walks = {
        name: {p["requests_by_method"].get(ITEM_WALK) for r in rs for p in r["polls"]}
        for name, rs in records.items()
    }
    return 1 if failed or walks["before"] != walks["after"] else 0


def report(records: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The per-poll table and the ratio table (medians over the runs)."""

    def med(name: str, poll: int, key: str) -> float:
        return _median([r["polls"][poll][key] for r in records[name]])

    def background(name: str, poll: int) -> list[dict[str, Any]]:
        """The background walks after ``poll`` that made requests (none: nothing to show)."""
        walks = [r["polls"][poll].get("background") for r in records[name]]
        return [w for w in walks if w is not None and w["requests_by_method"]]

    def row(name: str, label: str, wall: float, cpu: float, requests: dict[str, int]) -> list[str]:
        return [
            name, label, f"{wall:.2f}", f"{cpu:.2f}", str(sum(requests.values())),
            ", ".join(f"{m} {n}" for m, n in sorted(requests.items())),
        ]  # fmt: skip

    rows = []
    for name in ("before", "after"):
        last = records[name][-1]
        for poll in (0, 1):
            requests = last["polls"][poll]["requests_by_method"]
            rows.append(
                row(name, str(poll + 1), med(name, poll, "wall_seconds"),
                    med(name, poll, "cpu_seconds"), requests)
            )  # fmt: skip
            if walks := background(name, poll):
                rows.append(
                    row(name, f"background walk after {poll + 1}",
                        _median([w["wall_seconds"] for w in walks]),
                        _median([w["cpu_seconds"] for w in walks]),
                        walks[-1]["requests_by_method"])
                )  # fmt: skip
    table = markdown_table(
        ["contender", "poll", "wall s", "CPU s", "requests", "requests by method"], rows
    )
    rss = {n: _median([r["process_peak_rss_mb"] for r in rs]) for n, rs in records.items()}
    ratio_rows = []
    for label, poll in (("poll 1 (after a start)", 0), ("poll 2 (steady state)", 1)):
        for key, what in (("wall_seconds", "wall"), ("cpu_seconds", "CPU")):
            ratio = med("after", poll, key) / med("before", poll, key)
            verdict = "within 10%" if ratio <= GOAL else "over 10%"
            ratio_rows.append([label, what, f"{ratio:.3f}", verdict])
        walk = {
            n: records[n][-1]["polls"][poll]["requests_by_method"].get(ITEM_WALK) for n in records
        }
        same = "identical" if walk["before"] == walk["after"] else "DIFFERENT"
        ratio_rows.append(
            [label, "item walk requests", f"{walk['after']} / {walk['before']}", same]
        )
    for name in ("before", "after"):
        for poll in (0, 1):
            if walks := background(name, poll):
                wall = _median([w["wall_seconds"] for w in walks])
                ratio_rows.append([
                    f"background walk after poll {poll + 1} ({name})", "wall, idle time",
                    f"{wall:.2f} s, {sum(walks[-1]['requests_by_method'].values())} requests",
                    "not in the poll",
                ])  # fmt: skip
    memory = rss["after"] / rss["before"]
    ratio_rows.append([
        "process", "peak RSS", f"{memory:.3f} ({rss['after']:.1f} / {rss['before']:.1f} MiB)",
        "within 10%" if memory <= GOAL else "over 10%",
    ])  # fmt: skip
    ratios = markdown_table(["poll", "figure", "after / before", "verdict"], ratio_rows)
    header = (
        f"{args.items:,} items, {args.latency * 1000:.0f} ms latency, {args.rate_limit} req/s, "
        f"{args.invoice_months} months of invoices, before = {args.before}, "
        f"median of {args.repeat} runs each"
    )
    return f"{header}\n\n{table}\n\n{ratios}"


if __name__ == "__main__":
    sys.exit(main())
