"""Keeps ``python -m benchmarks.finops`` working: a tiny run end to end.

Figures are not asserted (goals are benchmark output, not tests). Checked: the baseline runs
the exported revision's code and this tree runs its own, each process polls twice, the item
walk's requests are the same on both sides and the latest invoice's lines are walked once,
in the background after the first poll (serving mode), not in either poll.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_comparison_runs_both_trees(tmp_path: Path) -> None:
    """Exit 0; both tables; baseline from the exported tree; lines walked once per process,
    after the first poll."""
    out = tmp_path / "finops.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.finops", "--items", "300", "--latency", "0.01",
         "--repeat", "1", "--before", "HEAD", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\| contender +\| poll +\|", done.stdout, re.MULTILINE)
    assert re.search(r"^\| after +\| background walk after 1 +\|", done.stdout, re.MULTILINE)
    # The first poll walks the items (3 pages); the steady state reads the end of the list.
    assert re.search(r"\| poll 1 \(after a start\) +\| item walk requests +\| 3 / 3 ", done.stdout)
    assert re.search(r"\| poll 2 \(steady state\) +\| item walk requests +\| 1 / 1 ", done.stdout)
    records = json.loads(out.read_text())
    (before,) = records["before"]
    (after,) = records["after"]
    assert "/finops-before-" in before["exporter_path"]  # the exported revision
    assert after["exporter_path"] == str(ROOT / "exporter")
    assert before["exporter_path"] != after["exporter_path"]
    first, second = after["polls"]
    assert after["serving"] is True
    assert first["background"]["requests_by_method"]["getInvoiceTopLevelItems"] >= 1
    for walked in (first, second, second["background"]):
        assert "getInvoiceTopLevelItems" not in walked["requests_by_method"]
