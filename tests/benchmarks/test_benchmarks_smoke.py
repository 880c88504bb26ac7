"""Keeps ``python -m benchmarks`` working: the quick run end to end, and its argument errors.

The quick run uses the smallest account, 20 ms latency and a few scrapes. Its figures are not
asserted (speed goals are benchmark output, not tests); what is checked is that every part
ran, both contenders agreed with the simulator's ground truth and every target got a verdict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import _parse_args
from benchmarks.report import linear_fit, request_floor

ROOT = Path(__file__).resolve().parents[2]

TARGET_ROWS = (
    "| refresh speedup vs baseline, 1,000 items @20 ms",
    "| refresh requests vs baseline, 1,000 items, page 100",
    "| refresh vs rate-limit floor, 1,000 items @20 ms",
    "| first walk at default settings vs baseline, 1,000 items @20 ms",
    "| peak RSS, 2,000 items",
    "| /metrics p99, 50 scrapers, closed loop",
    "| /metrics max, 50 scrapers, closed loop",
    "| /metrics p99, 10 scrapers, open loop",
    "| /metrics max, 10 scrapers, open loop",
    "| requests per unchanged poll, up to 1,000 items",
    "| healthy account's polls while others hang",
)


@pytest.fixture(scope="module", name="quick_run")
def _quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # The hang guard only; the quick run takes well under a minute.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


def test_quick_run_prints_every_table(quick_run: tuple[str, dict[str, Any]]) -> None:
    """The quick run prints the refresh, ratio, scaling, scrape and target tables."""
    stdout, _ = quick_run
    for heading in (
        "## Refresh: ours vs official client",
        "## Scaling (ours, 20 ms latency)",
        "## Scrape: 5 accounts x 200 categories",
        "## Steady state: requests per poll and per day (shipped defaults)",
        "## Isolation: polls completed side by side",
        "## Targets",
    ):
        assert heading in stdout
    lines = stdout.splitlines()
    for contender in ("ours", "default", "baseline"):
        row = re.compile(rf"^\| 1,000 +\| 20 ms +\| {contender} +\| [0-9.]+ +\| [0-9]+ ")
        assert any(row.match(line) for line in lines), contender
    ratio = re.compile(r"^\| 1,000 +\| 20 ms +\| [0-9.]+x +\|")
    assert any(ratio.match(line) for line in lines)
    for server in ("ours", "alt"):
        for scrapers in (1, 10, 50):
            row = re.compile(rf"^\| {server} +\| {scrapers} +\| [0-9]+ +\| [0-9.]+ +\| [0-9.]+ ")
            assert any(row.match(line) for line in lines), (server, scrapers)
    assert any(line.startswith("Open loop: 10 scrapers, each once every 0.2 s") for line in lines)
    for server in ("ours", "alt"):
        row = re.compile(rf"^\| {server} +\| 10 +\| 40 +\| [0-9.]+ +\| [0-9.]+ ")
        assert sum(1 for line in lines if row.match(line)) == 1, server
    assert any(line.startswith("time: t = ") and "R^2" in line for line in lines)
    assert any(line.startswith("memory: peak RSS") for line in lines)


def test_quick_run_gives_every_target_a_verdict(quick_run: tuple[str, dict[str, Any]]) -> None:
    """Each performance target appears with PASS or MISS, never n/a, in the quick run."""
    stdout, _ = quick_run
    for prefix in TARGET_ROWS:
        row = next((line for line in stdout.splitlines() if line.startswith(prefix)), None)
        assert row is not None, prefix
        assert re.search(r"\| (PASS|MISS) +\|", row), row


def test_quick_run_aggregates_match_ground_truth(quick_run: tuple[str, dict[str, Any]]) -> None:
    """Both contenders' category totals and invoice counts equal the simulator's truth."""
    _, report = quick_run
    contenders = {(r["contender"], r["items"]) for r in report["refresh"]}
    assert {("ours", 1000), ("default", 1000), ("baseline", 1000)} <= contenders
    for record in report["refresh"]:
        assert record["check"] == "ok", record
        assert record["requests"] > 0
        assert record["bytes_sent"] > 0


def test_quick_run_counts_steady_state_requests(quick_run: tuple[str, dict[str, Any]]) -> None:
    """The steady-state run served the truth and counted every poll's requests."""
    _, report = quick_run
    (steady,) = report["steady"]
    assert (steady["items"], steady["check"], steady["check_after_change"]) == (1000, "ok", "ok")
    assert steady["first_walk"] > steady["unchanged_same_hour"] > 0
    assert steady["day_requests"] >= steady["day_polls"] * steady["unchanged_same_hour"]
    assert set(report["isolation"]["polls"]) == {"healthy", "hanging", "huge"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sizes", "1k"], "not a comma-separated list"),
        (["--latencies", "0,0.1"], "need positive values"),
        (["--skip", "everything"], "invalid choice"),
    ],
)
def test_bad_arguments_are_rejected(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed sizes, latencies or parts stop the runner with a usage error naming the value."""
    with pytest.raises(SystemExit) as stopped:
        _parse_args(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_request_floor_counts_pages_and_one_account_call() -> None:
    """The request floor is one getObject plus every item and window-invoice page."""
    assert request_floor(100_000, 3, 100) == 1000 + 1 + 1
    assert request_floor(1, 0, 100) == 3
    assert request_floor(250, 150, 100) == 3 + 2 + 1


def test_linear_fit_recovers_a_line_and_rejects_one_size() -> None:
    """The scaling check fits an exact line perfectly and refuses a single distinct size."""
    fit = linear_fit([1.0, 2.0, 4.0], [3.0, 5.0, 9.0])
    assert fit.slope == pytest.approx(2.0)
    assert fit.intercept == pytest.approx(1.0)
    assert fit.r_squared == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two distinct sizes"):
        linear_fit([5.0, 5.0], [1.0, 2.0])
