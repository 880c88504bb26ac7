"""The "what changed" dashboard on a real Prometheus: every panel against the simulator's truth.

1. The simulator serves a euro account (terms, discount, platform services) and a USD card
   account with more than a year of invoices, its clock standing still at the wall clock's now.
2. The backfill mode writes their last 13 months; Debian's ``promtool`` turns them into blocks.
3. A ``softlayer-billing-exporter`` process polls the simulator every 2 s (``top_items: 5``).
4. Debian's ``prometheus`` starts on the backfilled blocks and scrapes the exporter every second.
5. Every target of every panel of ``softlayer-billing-changes.json`` runs as Grafana runs it
   (variables substituted; "now" panels instant, the year panel a range query at its 1h
   minimum interval) and is compared with the truth: categories next vs latest, datacenters,
   top items and the rest, billing terms, exchange rate, the last invoices, and the latest
   recurring invoice over the year, whose past months come from the backfill and whose
   present comes from the live exporter, joined by ``max by (account)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.finops.backfill import HEAD_MARGIN_SECONDS, BackfillOptions, run_backfill
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.simulator.breakdown import datacenters, invoice_categories, ranked_items
from exporter.simulator.scenario import InvoiceTruth
from tests.conftest import require_tool
from tests.grafana import artifacts
from tests.helpers.finops_truth import item_label
from tests.helpers.prometheus import PrometheusServer
from tests.helpers.simapi import make_config

pytestmark = pytest.mark.prometheus

DASHBOARD = artifacts.GRAFANA / "dashboards" / "softlayer-billing-changes.json"
JOB = "softlayer"
TOP_ITEMS = 5
MONTHS = 13
TOLERANCE = Decimal("0.000001")
#: Projections move with the exporter's real clock between polls: cents per minute at most.
PROJECTION_TOLERANCE = Decimal("0.05")


@dataclass
class Exporter:
    """The exporter process, stopped by pid."""

    process: subprocess.Popen[bytes]
    log: Path

    def read(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def url(self) -> str | None:
        for line in self.read().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "listening":
                    return str(record["urls"][0]).rstrip("/")
        return None


def start_exporter(tmp_path: Path, sim: SimulatorServer, scenario: Scenario) -> Exporter:
    """Start the console script on a config polling every account of the scenario."""
    env = dict(os.environ)
    accounts = []
    for index, acct in enumerate(scenario.accounts):
        env[f"FINOPS_KEY_{index}"] = acct.api_key
        accounts.append(
            {
                "name": f"acct{index}",
                "endpoint": sim.endpoint,
                "auth": {
                    "method": "classic",
                    "username": acct.username,
                    "api_key_env": f"FINOPS_KEY_{index}",
                },
            }
        )
    config = tmp_path / "exporter.yaml"
    settings = {"poll_interval": "2s", "poll_jitter": 0, "top_items": TOP_ITEMS}
    config.write_text(yaml.safe_dump({**settings, "accounts": accounts}), encoding="utf-8")
    script = Path(sys.executable).parent / "softlayer-billing-exporter"
    argv = [str(script), "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"]
    log = tmp_path / "exporter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--log.format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    return Exporter(process, log)


def stop(exporter: Exporter) -> None:
    if exporter.process.poll() is None:
        exporter.process.send_signal(signal.SIGTERM)
        try:
            exporter.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            exporter.process.kill()
            exporter.process.wait(timeout=20)


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.generate(
        seed=41,
        accounts=[
            AccountSpec(
                items=150,
                invoice_months=15,
                currency="EUR",
                payment="invoice",
                payment_terms_days=10,
                recurring_discount_percent=8,
                platform_services=Decimal("75"),
            ),
            AccountSpec(items=40, invoice_months=14, pending_invoice=False),
        ],
    )


@pytest.fixture
async def sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(scenario, rate_limit_per_second=None) as server:
        yield server


class Board:
    """The dashboard's targets, run against the Prometheus server as Grafana would."""

    def __init__(self, server: PrometheusServer) -> None:
        self.server = server
        self.panels = {
            panel["title"]: panel
            for panel in artifacts.query_panels(artifacts.load_dashboard(DASHBOARD))
        }
        self.variables = {
            "datasource": "prometheus",
            "job": JOB,
            "instance": ".+",
            "account": ".+",
            "__interval": "1h",
            "__rate_interval": "4h",
            "__range": "400d",
        }
        self.seen: set[tuple[str, str]] = set()

    def expr(self, title: str, ref: str) -> str:
        (target,) = [t for t in self.panels[title]["targets"] if t["refId"] == ref]
        self.seen.add((title, ref))
        return artifacts.substitute(target["expr"], self.variables)

    async def now(self, title: str, ref: str = "A") -> dict[tuple[str, ...], Decimal]:
        """Run an instant target; return ``{label values (sorted by name): value}``."""
        result = await self.server.query(self.expr(title, ref))
        return {
            tuple(v for _, v in sorted(s["metric"].items())): Decimal(s["value"][1]) for s in result
        }


def close(got: dict[Any, Decimal], want: dict[Any, Decimal], tolerance: Decimal) -> None:
    assert got.keys() == want.keys(), set(got) ^ set(want)
    for key, value in want.items():
        assert abs(got[key] - value) <= tolerance, (key, got[key], value)


def newest_recurring(scenario: Scenario, account_id: int) -> list[InvoiceTruth]:
    invoices = [i for i in scenario.truth(account_id).invoices if i.type_code == "RECURRING"]
    return sorted(invoices, key=lambda i: i.created, reverse=True)


async def test_every_panel_of_the_changes_dashboard_equals_truth(
    sim: SimulatorServer, scenario: Scenario, tmp_path: Path
) -> None:
    """Each target of the "what changed" dashboard answers the simulator's truth."""
    promtool = require_tool("promtool")
    prometheus = require_tool("prometheus")
    backfilled_at = time.time()
    await run_backfill(
        make_config(sim, scenario), BackfillOptions(months=MONTHS), str(tmp_path / "h.om")
    )
    blocks = tmp_path / "data"
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
         str(tmp_path / "h.om"), str(blocks)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    exporter = start_exporter(tmp_path, sim, scenario)
    try:
        url = await listening(exporter)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [url.split("://", 1)[1]]}]}
            ],
        }
        async with PrometheusServer(prometheus, tmp_path, storage=blocks, config=config) as server:

            async def scraped() -> bool | None:
                up = await server.query(f'softlayer_up{{job="{JOB}"}} == 1')
                history = await server.query("softlayer_invoice_history_total_usd")
                return True if len(up) == 2 and len(history) == 2 * MONTHS else None

            await server.until("both accounts polled and scraped", scraped)
            board = Board(server)
            await check_now_panels(board, scenario)
            await check_the_year(board, scenario, backfilled_at - HEAD_MARGIN_SECONDS)
            untested = {
                (title, t["refId"]) for title, p in board.panels.items() for t in p["targets"]
            } - board.seen
            assert not untested, f"panel targets without a check: {sorted(untested)}"
    finally:
        await asyncio.to_thread(stop, exporter)


async def listening(exporter: Exporter, deadline: float = 60.0) -> str:
    """Wait for the exporter's ``listening`` event; fail with its log if it exits or hangs."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if exporter.process.poll() is not None:
            pytest.fail(f"exporter exited with {exporter.process.returncode}:\n{exporter.read()}")
        url = exporter.url()
        if url is not None:
            return url
        await asyncio.sleep(0.2)  # polling period, not a synchronisation point
    pytest.fail(f"the exporter did not listen:\n{exporter.read()[-3000:]}")


async def check_now_panels(board: Board, scenario: Scenario) -> None:
    """Categories, totals, datacenters, items, billing terms and the last invoices."""
    names = {acct.id: f"acct{i}" for i, acct in enumerate(scenario.accounts)}
    latest_categories: dict[tuple[str, ...], Decimal] = {}
    projected: dict[tuple[str, ...], Decimal] = {}
    pre_tax_latest: dict[tuple[str, ...], Decimal] = {}
    pre_tax_next: dict[tuple[str, ...], Decimal] = {}
    sites: dict[tuple[str, ...], Decimal] = {}
    top: dict[tuple[str, ...], Decimal] = {}
    rest: dict[tuple[str, ...], Decimal] = {}
    terms: dict[str, dict[tuple[str, ...], Decimal]] = {ref: {} for ref in "ABCDEF"}
    rates: dict[tuple[str, ...], Decimal] = {}
    history: dict[str, dict[tuple[str, ...], Decimal]] = {ref: {} for ref in "ABCD"}
    now = time.time()
    for acct in scenario.accounts:
        name = names[acct.id]
        truth = scenario.truth(acct.id)
        latest = truth.latest_recurring_invoice
        assert latest is not None
        for code, part in invoice_categories(scenario, acct.id, latest.id).items():
            latest_categories[(name, code)] = part.recurring
        hours_left = truth.hours_left(now)
        for code, category in truth.categories.items():
            projected[(name, code)] = category.projected(hours_left)
        pre_tax_latest[(name,)] = latest.pre_tax
        pre_tax_next[(name,)] = truth.projected_pre_tax(now)
        for site in datacenters(scenario, acct.id).values():
            sites[(name, site.name)] = site.amount
        ranked = ranked_items(scenario, acct.id)
        for item in ranked[:TOP_ITEMS]:
            labels = {
                "account": name,
                "billing": "hourly" if item.hourly else "monthly",
                "category": item.category,
                "datacenter": item.datacenter,
                "item_id": str(item.item_id),
                "name": item_label(item.host, item.domain, item.description),
            }
            top[tuple(v for _, v in sorted(labels.items()))] = item.amount
        rest[(name,)] = sum((i.amount for i in ranked[TOP_ITEMS:]), Decimal(0))
        billing = truth.billing
        assert billing is not None
        terms["A"][(name, billing.account_status, billing.currency)] = Decimal(1)
        terms["B"][(name,)] = Decimal(truth.anniversary_day)
        if billing.payment_terms is not None:
            terms["C"][(name,)] = Decimal(billing.payment_terms)
        terms["D"][(name,)] = Decimal(billing.recurring_discount_percent) / 100
        terms["E"][(name,)] = billing.next_invoice_platform_services
        terms["F"][(name,)] = billing.next_invoice_recurring_before_discount
        if billing.exchange_rate is not None:
            rates[(name, "USD", billing.exchange_rate.local)] = billing.exchange_rate.rate
        for months_ago, invoice in enumerate(newest_recurring(scenario, acct.id)[:MONTHS]):
            key = (name, str(months_ago))
            history["A"][key] = Decimal(int(invoice.created.timestamp()) * 1000)
            history["B"][key] = invoice.total
            history["C"][key] = invoice.tax
            history["D"][key] = invoice.payments
    title = "Categories: next invoice vs latest recurring invoice"
    close(await board.now(title, "A"), latest_categories, TOLERANCE)
    close(await board.now(title, "B"), projected, PROJECTION_TOLERANCE)
    change = {
        k: projected[k] - latest_categories[k] for k in projected.keys() & latest_categories.keys()
    }
    close(await board.now(title, "C"), change, PROJECTION_TOLERANCE)
    close(await board.now("Pre-tax totals", "A"), pre_tax_latest, TOLERANCE)
    close(await board.now("Pre-tax totals", "B"), pre_tax_next, PROJECTION_TOLERANCE)
    close(await board.now("Next invoice by datacenter"), sites, TOLERANCE)
    close(await board.now("Most expensive items"), top, TOLERANCE)
    close(await board.now("All other items"), rest, TOLERANCE)
    for ref, want in terms.items():
        close(await board.now("Billing terms", ref), want, TOLERANCE)
    close(await board.now("Exchange rate"), rates, TOLERANCE)
    assert rates, "the euro account has a rate"
    for ref, want in history.items():
        close(await board.now("Last recurring invoices", ref), want, TOLERANCE)


async def check_the_year(board: Board, scenario: Scenario, cutoff: float) -> None:
    """The year panel: backfilled months at their invoices' values, the present live."""
    now = time.time()
    start = math.floor((now - 400 * 86400) / 3600) * 3600
    end = math.floor(now / 3600) * 3600 + 3600
    title = "Latest recurring invoice over the year"
    checked = 0
    for ref, field in (("A", "total"), ("B", "payments")):
        matrix = await board.server.query_range(board.expr(title, ref), start, end, 3600)
        lines = {
            s["metric"]["account"]: {int(t): Decimal(v) for t, v in s["values"]} for s in matrix
        }
        for index, acct in enumerate(scenario.accounts):
            values = lines[f"acct{index}"]
            invoices = newest_recurring(scenario, acct.id)[:MONTHS]
            for position, invoice in enumerate(invoices):
                created = invoice.created.timestamp()
                until = invoices[position - 1].created.timestamp() if position else cutoff
                for moment in sampled_hours(created, min(until, cutoff)):
                    closed = invoice.closed is not None and invoice.closed.timestamp() <= moment
                    want = (
                        invoice.total
                        if field == "total"
                        else (invoice.payments if closed else Decimal(0))
                    )
                    assert values[moment] == want, (acct.id, invoice.id, moment, field)
                    checked += 1
        # The present is the live exporter's, on the same line (the backfill stops 3h ago).
        present = {
            s["metric"]["account"]: Decimal(s["value"][1])
            for s in await board.server.query(board.expr(title, ref))
        }
        for index, acct in enumerate(scenario.accounts):
            latest = newest_recurring(scenario, acct.id)[0]
            live = latest.total if field == "total" else latest.payments
            assert present[f"acct{index}"] == live
    # Both lines, both accounts, at least the twelve fully past months each.
    assert checked >= 2 * 2 * (MONTHS - 1)


def sampled_hours(start: float, end: float) -> Iterator[int]:
    """Three grid hours inside ``[start, end)``: its first, its middle, its last."""
    first = math.ceil(start / 3600) * 3600
    last = math.ceil(end / 3600) * 3600 - 3600
    if last < first:
        return
    middle = first + (last - first) // 7200 * 3600
    yield from sorted({first, middle, last})
