"""The serving exporter walks a new latest invoice's lines after its poll, not inside it.

A real exporter process at debug level (one ``api_request`` event per HTTP attempt) against
the simulator: the poll that first sees the latest recurring invoice logs its ``poll`` event
before any request for that invoice's lines, the lines are walked once, and a later poll
serves the invoice's categories without asking for them again. ``--once`` is the other
mode: it walks the lines inside its one poll (tests/finops/test_history.py covers both
modes in process; this proves the daemon is wired to the deferred one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.simulator import AccountSpec, Scenario, SimulatorServer

from .conftest import ExporterProcess, account_yaml, classic_auth, fast_header, write_config

LINES = "getInvoiceTopLevelItems"


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(seed=23, accounts=[AccountSpec(items=30, invoice_months=4)])


def lines_requests(events: list[dict[str, Any]]) -> list[int]:
    """Positions in the log of the requests for an invoice's lines."""
    return [
        index
        for index, event in enumerate(events)
        if event.get("event") == "api_request" and event.get("method") == LINES
    ]


@pytest.mark.e2e
async def test_serving_exporter_walks_invoice_lines_after_its_poll(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """The first poll's event comes before every request for the latest invoice's lines;
    the lines are walked once; a later poll serves the invoice's categories."""
    acct = scenario.accounts[0]
    config = write_config(
        tmp_path / "config.yaml",
        [account_yaml("acct0", sim.endpoint, classic_auth(acct.username, "SL_KEY"))],
        fast_header(50),
    )
    proc = ExporterProcess(config, {"SL_KEY": acct.api_key}, "--log.level", "debug")
    async with proc, aiohttp.ClientSession() as session:
        await proc.more_polls(["acct0"], 1)
        last = await proc.more_polls(["acct0"], 2)
        samples = await proc.scrape_after(session, last)
        assert await proc.terminate() == 0
    first_poll = next(i for i, e in enumerate(proc.events) if e.get("event") == "poll")
    walked = lines_requests(proc.events)
    assert walked, "the latest invoice's lines were never asked for"
    assert min(walked) > first_poll, "the lines were walked inside the first poll"
    assert proc.events[first_poll]["outcome"] == "ok"
    truth = scenario.truth(acct.id).latest_recurring_invoice
    assert truth is not None
    # Walked once: a page or two for 30 lines, never again while the invoice stays.
    assert len(walked) == -(-truth.top_level_item_count // 100)
    categories = [
        labels
        for (name, labels), _ in samples.items()
        if name == "softlayer_invoice_category_usd" and ("account", "acct0") in labels
    ]
    assert categories, "the latest invoice's categories are not served after the walk"
