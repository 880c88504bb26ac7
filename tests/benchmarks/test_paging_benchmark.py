"""Keeps ``python -m benchmarks.paging`` working: a small run end to end.

Its timings are not asserted (speed is benchmark output, not a test); what is checked is that
every walk agreed with the simulator on an unchanged list and that the table of walks over a
changing list tells the former offset walk's losses from the exporter's refusals.
"""

from __future__ import annotations

import re

import pytest

from benchmarks.paging import main


def test_paging_comparison_runs_and_tells_the_walks_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every walk serves the truth when nothing changes; with a change, only the former
    offset walk serves wrong sets, the exporter's walk refuses, its retry serves the truth."""
    assert main(["--sizes", "300", "--latency", "0", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    for walk in ("offset", "overlap", "keyset"):
        assert re.search(rf"\| 300 \| {walk} \| 3 \| \d+\.\d\d \|", out), out
    rows = dict(re.findall(r"^\| ([a-z +'-]+) \| (\d+ \| \d+ \| \d+ \| \d+) \|", out, re.M))
    assert rows["offset"] == "0 | 0 | 2 | 0"
    assert rows["overlap"] == "0 | 0 | 0 | 2"
    assert rows["overlap + the poller's retry"] == "0 | 2 | 0 | 0"
