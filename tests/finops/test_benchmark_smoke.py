"""Keeps ``python -m benchmarks.finops`` working: a tiny run end to end.

Figures are not asserted (goals are benchmark output, not tests). Checked: the baseline runs
the exported revision's code and this tree runs its own, each process polls twice, the item
walk's requests are the same on both sides and the latest invoice's lines are walked on the
first poll only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_comparison_runs_both_trees(tmp_path: Path) -> None:
    """Exit 0; both tables; baseline from the exported tree; lines walked once per process."""
    out = tmp_path / "finops.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.finops", "--items", "300", "--latency", "0.01",
         "--repeat", "1", "--before", "HEAD", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| contender | poll |" in done.stdout
    # The first poll walks the items (3 pages); the steady state reads the end of the list.
    assert "| poll 1 (after a start) | item walk requests | 3 / 3" in done.stdout
    assert "| poll 2 (steady state)  | item walk requests | 1 / 1" in done.stdout
    records = json.loads(out.read_text())
    (before,) = records["before"]
    (after,) = records["after"]
    assert "/finops-before-" in before["exporter_path"]  # the exported revision
    assert after["exporter_path"] == str(ROOT / "exporter")
    assert before["exporter_path"] != after["exporter_path"]
    first, second = after["polls"]
    assert first["requests_by_method"]["getInvoiceTopLevelItems"] >= 1
    assert "getInvoiceTopLevelItems" not in second["requests_by_method"]
