"""The backfill end to end: simulator -> backfill file -> real promtool blocks -> real Prometheus.

The user's steps of docs/metrics.md ("Backfilling the past months"), run for real: the
exporter's backfill mode writes 13 months of two accounts (a euro account paying on terms, a
USD account whose card fails) from the simulator, Debian's ``promtool tsdb
create-blocks-from openmetrics`` turns the file into blocks, and Debian's ``prometheus``,
started on those blocks with a long retention, answers queries at past times with exactly
the simulator's invoices: totals, payments before and after each invoice closed, the status
state set and the categories.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.finops.backfill import (
    HEAD_MARGIN_SECONDS,
    BackfillError,
    BackfillOptions,
    run_backfill,
)
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.simulator.breakdown import invoice_categories
from exporter.simulator.scenario import InvoiceTruth
from tests.conftest import require_tool
from tests.helpers.prometheus import PrometheusServer
from tests.helpers.simapi import make_config

MONTHS = 13
LABELS = 'job="softlayer", instance="backfill"'


@pytest.fixture
def scenario() -> Scenario:
    """Two accounts with more than a year of invoices, generated at the wall clock's now."""
    return Scenario.generate(
        seed=31,
        accounts=[
            AccountSpec(
                items=60,
                invoice_months=15,
                currency="EUR",
                payment="invoice",
                payment_terms_days=10,
            ),
            AccountSpec(items=20, invoice_months=14, pending_invoice=False),
        ],
    )


@pytest.fixture
async def sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(scenario, rate_limit_per_second=None) as server:
        yield server


def newest_recurring(scenario: Scenario, account_id: int) -> list[InvoiceTruth]:
    invoices = scenario.truth(account_id).invoices
    recurring = [inv for inv in invoices if inv.type_code == "RECURRING"]
    return sorted(recurring, key=lambda inv: inv.created, reverse=True)[:MONTHS]


def probes(invoices: list[InvoiceTruth], cutoff: float) -> Iterator[tuple[InvoiceTruth, int]]:
    """For each invoice, the grid hours at which it was the latest, two hours in, and just
    before the next one (or the cutoff): before and after it closed where it did."""
    for index, invoice in enumerate(invoices):
        start = invoice.created.timestamp()
        end = invoices[index - 1].created.timestamp() if index else cutoff
        first = math.ceil(start / 3600) * 3600 + 7200
        last = math.ceil(min(end, cutoff) / 3600) * 3600 - 3600
        for moment in {first, last}:
            if start <= moment < min(end, cutoff):
                yield invoice, int(moment)


@pytest.mark.prometheus
async def test_prometheus_reads_the_backfilled_blocks(
    sim: SimulatorServer, scenario: Scenario, tmp_path: Path
) -> None:
    """promtool accepts the file; Prometheus answers past instants with the truth."""
    promtool = require_tool("promtool")
    prometheus = require_tool("prometheus")
    history = tmp_path / "history.om"
    options = BackfillOptions(months=MONTHS)  # default labels: job=softlayer, instance=backfill
    started = time.time()
    written = await run_backfill(make_config(sim, scenario), options, str(history))
    assert written > 0
    blocks = tmp_path / "data"
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
         str(history), str(blocks)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    async with PrometheusServer(prometheus, tmp_path, storage=blocks) as server:
        checked = 0
        for index, acct in enumerate(scenario.accounts):
            account = f'account="acct{index}", {LABELS}'
            invoices = newest_recurring(scenario, acct.id)
            assert len(invoices) == MONTHS
            for invoice, moment in probes(invoices, started - HEAD_MARGIN_SECONDS):
                await check_instant(server, account, invoice, moment, scenario, acct.id)
                checked += 1
            # Every sample of the file is in the blocks: one per hour of the year per series.
            (count,) = await server.query(
                f"count_over_time(softlayer_invoice_total_usd{{{account}}}[500d])", started
            )
            oldest = invoices[-1].created.timestamp()
            hours = math.ceil((started - HEAD_MARGIN_SECONDS) / 3600) - math.ceil(oldest / 3600)
            assert float(count["value"][1]) == hours
        assert checked >= 4 * MONTHS


async def check_instant(
    server: PrometheusServer,
    account: str,
    invoice: InvoiceTruth,
    moment: int,
    scenario: Scenario,
    account_id: int,
) -> None:
    """At ``moment``, the latest recurring invoice series show ``invoice`` as it was then."""
    closed = invoice.closed is not None and invoice.closed.timestamp() <= moment
    paid = invoice.payments if closed else Decimal(0)
    expected = {
        "softlayer_invoice_total_usd": invoice.total,
        "softlayer_invoice_pre_tax_usd": invoice.pre_tax,
        "softlayer_invoice_tax_usd": invoice.tax,
        "softlayer_invoice_payments_usd": paid,
        "softlayer_invoice_open_balance_usd": invoice.total - paid,
        "softlayer_invoice_items": Decimal(invoice.item_count),
        "softlayer_invoice_created_timestamp_seconds": Decimal(int(invoice.created.timestamp())),
    }
    for metric, value in expected.items():
        (sample,) = await server.query(f"{metric}{{{account}}}", moment)
        assert sample["metric"]["invoice"] == "latest_recurring"
        assert Decimal(sample["value"][1]) == value, (metric, invoice.id, moment)
    status = invoice.status_code if closed else "OPEN"
    (current,) = await server.query(f"softlayer_invoice_status{{{account}}} == 1", moment)
    assert current["metric"]["status"] == status, (invoice.id, moment)
    lines = invoice_categories(scenario, account_id, invoice.id)
    served = await server.query(
        f"sum by (category, charge) (softlayer_invoice_category_usd{{{account}}})", moment
    )
    got = {(s["metric"]["category"], s["metric"]["charge"]): Decimal(s["value"][1]) for s in served}
    want = {(code, "recurring"): part.recurring for code, part in lines.items()}
    want.update({(code, "one_time"): part.one_time for code, part in lines.items()})
    assert got == want, (invoice.id, moment)


async def test_a_failed_backfill_writes_nothing(
    sim: SimulatorServer, scenario: Scenario, tmp_path: Path
) -> None:
    """A permission error on one invoice's lines: a BackfillError naming the account and the
    method; an existing output file stays as it was and no temporary file is left."""
    output = tmp_path / "history.om"
    output.write_text("previous run\n")
    sim.add_fault(
        FaultRule(
            kind=FaultKind.PERMISSION_DENIED,
            method="SoftLayer_Billing_Invoice::getInvoiceTopLevelItems",
            account_id=scenario.accounts[1].id,
        )
    )
    with pytest.raises(BackfillError, match=r"account acct1: .*getInvoiceTopLevelItems"):
        await run_backfill(make_config(sim, scenario), BackfillOptions(months=3), str(output))
    assert output.read_text() == "previous run\n"
    left = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
    assert left == ["history.om"]
