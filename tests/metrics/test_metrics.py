"""The snapshot collector: every family of docs/metrics.md, value by value."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.config import Thresholds
from exporter.metrics import CACHED, SnapshotCollector, build_registry
from exporter.snapshot import (
    AccountSnapshot,
    ExporterState,
    NextInvoiceBreakdown,
    PendingInvoice,
    Source,
)
from tests.conftest import require_tool
from tests.helpers import builders as b

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
INVOICE_LABELS = {"account", "invoice", "invoice_type"}


def samples(collector: SnapshotCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    result = {}
    for family in collector.collect():
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in result, f"duplicate sample {key}"
            assert sample.timestamp is None, "no sample timestamps"
            result[key] = sample.value
    return result


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


@pytest.fixture(name="values")
def _values() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    thresholds = Thresholds(
        open_invoice_balance_usd=Decimal("500.5"),
        account_balance_usd=None,
        monthly_budget_usd=Decimal("2000"),
        pending_invoice_max_age_seconds=35 * 86400.0,
        forecast_surge_ratio=1.25,
        category_surge_ratio=None,
    )
    collector = SnapshotCollector(
        b.state(b.full_snapshot(down=[Source.INVOICES])),
        b.api_stats(),
        b.config(b.account(thresholds=thresholds)),
    )
    return samples(collector)


class TestValues:
    def test_account(self, values):
        """Account identity and balance come from the account summary."""
        assert (
            values[
                key(
                    "softlayer_account_info",
                    account="prod",
                    account_id="123456",
                    company_name='ACME "Cloud" & Co',
                )
            ]
            == 1
        )
        assert values[key("softlayer_account_balance_usd", account="prod")] == -12.34

    def test_latest_recurring_invoice(self, values):
        """Every invoice gauge of the latest recurring invoice carries its type, no status."""
        labels = {
            "account": "prod",
            "invoice": "latest_recurring",
            "invoice_type": "RECURRING",
        }
        assert b.LATEST.closed is not None
        expected = {
            "softlayer_invoice_total_usd": 1100.10,
            "softlayer_invoice_pre_tax_usd": 1000.0,
            "softlayer_invoice_recurring_usd": 900.0,
            "softlayer_invoice_one_time_usd": 100.0,
            "softlayer_invoice_tax_usd": 100.10,
            "softlayer_invoice_payments_usd": 1100.10,
            "softlayer_invoice_open_balance_usd": 0.0,
            "softlayer_invoice_items": 42,
            "softlayer_invoice_created_timestamp_seconds": b.LATEST.created.timestamp(),
            "softlayer_invoice_closed_timestamp_seconds": b.LATEST.closed.timestamp(),
        }
        for name, value in expected.items():
            assert values[key(name, **labels)] == pytest.approx(value), name
        assert not [k for k in values if k[0].startswith("softlayer_invoice_") and (
            "status" in dict(k[1])) and k[0] != "softlayer_invoice_status"]  # fmt: skip

    def test_invoice_status_is_a_state_set(self, values):
        """One series per documented status, 1 for the current one, 0 for the others."""
        states = {
            (dict(k[1])["invoice"], dict(k[1])["status"]): v
            for k, v in values.items()
            if k[0] == "softlayer_invoice_status"
        }
        assert states == {
            ("latest_recurring", "OPEN"): 0,
            ("latest_recurring", "CLOSED"): 1,
            ("latest_recurring", "CLOSED_FAILED"): 0,
            ("pending", "OPEN"): 1,
            ("pending", "CLOSED"): 0,
            ("pending", "CLOSED_FAILED"): 0,
        }

    def test_undocumented_codes_keep_their_own_code(self):
        """An undocumented status or type is exported under its own code (status 1); a value
        that is not a code shape is exported as UNKNOWN."""
        odd = replace(b.PENDING, status_code="DISPUTED", type_code="free text!")
        snap = replace(b.full_snapshot(), pending_invoice=PendingInvoice(odd))
        window = b.window()
        counts = {**window.counts, ("SURPRISE", "OPEN"): 2}
        amounts = {**window.amounts_usd, ("SURPRISE", "OPEN"): Decimal("3.5")}
        snap = replace(snap, invoices=replace(window, counts=counts, amounts_usd=amounts))
        values = samples(SnapshotCollector(b.state(snap), None, b.config()))
        status = {
            dict(k[1])["status"]: v
            for k, v in values.items()
            if k[0] == "softlayer_invoice_status" and ("invoice", "pending") in k[1]
        }
        assert status == {"OPEN": 0, "CLOSED": 0, "CLOSED_FAILED": 0, "DISPUTED": 1}
        total = key(
            "softlayer_invoice_total_usd", account="prod", invoice="pending", invoice_type="UNKNOWN"
        )
        assert values[total] == 1210.50
        recent = key(
            "softlayer_recent_invoices", account="prod", invoice_type="SURPRISE", status="OPEN"
        )
        assert values[recent] == 2
        assert len([k for k in values if k[0] == "softlayer_recent_invoices"]) == 19

    def test_pending_invoice(self, values):
        """The pending invoice is exported with its open balance and without a closed time."""
        labels = {
            "account": "prod",
            "invoice": "pending",
            "invoice_type": "RECURRING",
        }
        assert values[key("softlayer_invoice_total_usd", **labels)] == 1210.50
        assert values[key("softlayer_invoice_open_balance_usd", **labels)] == 1010.50
        assert values[key("softlayer_invoice_items", **labels)] == 45
        assert key("softlayer_invoice_closed_timestamp_seconds", **labels) not in values
        assert values[key("softlayer_pending_invoice_present", account="prod")] == 1

    def test_no_pending_invoice(self):
        """No pending invoice: present is 0 and no invoice="pending" series exist."""
        values = samples(
            SnapshotCollector(b.state(b.full_snapshot(pending=False)), None, b.config())
        )
        assert values[key("softlayer_pending_invoice_present", account="prod")] == 0
        assert not [k for k in values if ("invoice", "pending") in k[1]]

    def test_window_has_every_type_and_status(self, values):
        """All 6 types x 3 statuses are present, zeros included, with counts and amounts."""
        counts = {k: v for k, v in values.items() if k[0] == "softlayer_recent_invoices"}
        assert len(counts) == 18
        assert (
            values[
                key(
                    "softlayer_recent_invoices",
                    account="prod",
                    invoice_type="RECURRING",
                    status="CLOSED",
                )
            ]
            == 2
        )
        assert (
            values[
                key(
                    "softlayer_recent_invoices",
                    account="prod",
                    invoice_type="REFUND",
                    status="CLOSED_FAILED",
                )
            ]
            == 0
        )
        assert (
            values[
                key(
                    "softlayer_recent_invoices_amount_usd",
                    account="prod",
                    invoice_type="ONE-TIME-CHARGE",
                    status="CLOSED",
                )
            ]
            == 0.048
        )
        assert values[key("softlayer_recent_invoices_window_seconds", account="prod")] == 90 * 86400
        failure = key("softlayer_invoice_last_payment_failure_timestamp_seconds", account="prod")
        assert values[failure] == b.LAST_PAYMENT_FAILURE.timestamp()

    def test_next_invoice(self, values):
        """Next-invoice totals come from the summary, categories from the breakdown."""
        assert values[key("softlayer_next_invoice_pre_tax_usd", account="prod")] == 1500.75
        assert values[key("softlayer_next_invoice_recurring_usd", account="prod")] == 1400.70
        assert values[key("softlayer_next_invoice_one_time_usd", account="prod")] == 100.05
        assert values[key("softlayer_next_invoice_tax_usd", account="prod")] == 150.08
        assert values[key("softlayer_next_invoice_items", account="prod")] == 7
        category = "softlayer_next_invoice_category_usd"
        server = {"account": "prod", "category": "server"}
        assert values[key(category, **server, billing="hourly")] == 200.25
        assert values[key(category, **server, billing="monthly")] == 800.25
        # Both billing series exist for every category, 0 when it has none of that kind.
        assert values[key(category, account="prod", category="guest_core", billing="monthly")] == 0
        projected = "softlayer_next_invoice_category_projected_usd"
        assert values[key(projected, **server)] == 1100.50
        assert values[key("softlayer_next_invoice_projected_pre_tax_usd", account="prod")] == (
            1900.75
        )
        start = key("softlayer_billing_cycle_start_timestamp_seconds", account="prod")
        end = key("softlayer_billing_cycle_end_timestamp_seconds", account="prod")
        assert values[start] == b.CYCLE_START.timestamp()
        assert values[end] == b.CYCLE_END.timestamp()
        assert (
            values[
                key(
                    "softlayer_next_invoice_category_items",
                    account="prod",
                    category="guest_core",
                    billing="hourly",
                )
            ]
            == 3
        )
        assert (
            values[
                key(
                    "softlayer_next_invoice_category_items",
                    account="prod",
                    category="server",
                    billing="monthly",
                )
            ]
            == 2
        )
        assert values[key("softlayer_next_invoice_folded_categories", account="prod")] == 4

    def test_category_info_falls_back_to_code(self, values):
        """A category with an empty name is labelled with its code."""
        assert (
            values[
                key(
                    "softlayer_billing_category_info",
                    account="prod",
                    category="server",
                    category_name="Server",
                )
            ]
            == 1
        )
        assert (
            values[
                key(
                    "softlayer_billing_category_info",
                    account="prod",
                    category="guest_core",
                    category_name="guest_core",
                )
            ]
            == 1
        )

    def test_thresholds(self, values):
        """Configured thresholds are exported; null ones are absent."""
        exported = {
            (name, kind): values.get(
                key(f"softlayer_alert_threshold_{name}", account="prod", kind=kind)
            )
            for name, kind in [
                ("usd", "open_invoice_balance"),
                ("usd", "monthly_budget"),
                ("usd", "account_balance"),
                ("seconds", "pending_invoice_age"),
                ("seconds", "open_invoice_grace"),
                ("ratio", "forecast_surge"),
                ("ratio", "category_surge"),
            ]
        }
        assert exported == {
            ("usd", "open_invoice_balance"): 500.5,
            ("usd", "monthly_budget"): 2000,
            ("usd", "account_balance"): None,
            ("seconds", "pending_invoice_age"): 35 * 86400,
            ("seconds", "open_invoice_grace"): 30 * 86400,
            ("ratio", "forecast_surge"): 1.25,
            ("ratio", "category_surge"): None,
        }

    def test_health(self, values):
        """A failed source is down with its older last success; the account is down."""
        assert values[key("softlayer_up", account="prod")] == 0
        assert values[key("softlayer_source_up", account="prod", source="invoices")] == 0
        assert values[key("softlayer_source_up", account="prod", source="account")] == 1
        assert (
            values[
                key(
                    "softlayer_source_last_success_timestamp_seconds",
                    account="prod",
                    source="invoices",
                )
            ]
            == 1_800_000_000 - 900
        )
        assert (
            values[
                key(
                    "softlayer_source_last_attempt_timestamp_seconds",
                    account="prod",
                    source="invoices",
                )
            ]
            == 1_800_000_000
        )
        assert values[key("softlayer_poll_duration_seconds", account="prod")] == 2.5
        assert values[key("softlayer_next_poll_timestamp_seconds", account="prod")] == 1_800_000_900

    def test_api_stats(self, values):
        """Request and error counters and the latency histogram come from ApiStats."""
        assert (
            values[
                key("softlayer_api_requests_total", account="prod", method="getObject", code="200")
            ]
            == 5
        )
        assert (
            values[
                key(
                    "softlayer_api_requests_total",
                    account="prod",
                    method="getInvoices",
                    code="none",
                )
            ]
            == 1
        )
        assert values[key("softlayer_api_errors_total", account="prod", reason="server")] == 2

    def test_api_errors_start_at_zero_for_every_reason(self, values):
        """Every configured account has an errors series per reason from the start, at 0.

        A counter series born at 1 on the first error is invisible to increase(), so the
        auth and rate-limit alerts would wait for a second error.
        """
        assert values[key("softlayer_api_errors_total", account="prod", reason="timeout")] == 1
        for reason in (
            "auth",
            "permission",
            "rate_limited",
            "client",
            "decode",
            "network",
            "mask",
            "parse",
            "validation",
            "incomplete",
        ):
            assert values[key("softlayer_api_errors_total", account="prod", reason=reason)] == 0
        buckets = {
            le: values[
                key(
                    "softlayer_api_request_duration_seconds_bucket",
                    account="prod",
                    method="getObject",
                    le=le,
                )
            ]
            for le in ("0.1", "+Inf")
        }
        assert buckets == {"0.1": 1, "+Inf": 5}
        count = key(
            "softlayer_api_request_duration_seconds_count", account="prod", method="getObject"
        )
        assert values[count] == 5
        total = key(
            "softlayer_api_request_duration_seconds_sum", account="prod", method="getInvoices"
        )
        assert values[total] == 61.5

    def test_build_info(self, values):
        """Build info carries the package version."""
        names = [k for k in values if k[0] == "softlayer_exporter_build_info"]
        assert len(names) == 1
        assert ("version", __version__) in names[0][1]


class TestLifecycle:
    def test_before_first_poll(self):
        """Before the first poll only thresholds and build info are served: no softlayer_up
        (0 would read as a failure), no source or billing series."""
        state = ExporterState(("prod",))
        values = samples(SnapshotCollector(state, None, b.config()))
        assert not [k for k in values if k[0] == "softlayer_up"]
        assert not [
            k for k in values if k[0].startswith(("softlayer_invoice", "softlayer_account"))
        ]
        assert not [k for k in values if k[0] == "softlayer_source_up"]

    def test_fresh_families_each_scrape(self):
        """A new snapshot is visible on the next collect; a removed category disappears."""
        state = b.state(b.full_snapshot())
        collector = SnapshotCollector(state, None, b.config())
        first = samples(collector)
        server = {"account": "prod", "category": "server", "billing": "monthly"}
        assert key("softlayer_next_invoice_category_usd", **server) in first
        snap = b.full_snapshot()
        state.publish(
            AccountSnapshot(
                **{
                    **{f: getattr(snap, f) for f in snap.__slots__},
                    "next_invoice": NextInvoiceBreakdown((), 0, 0),
                }
            )
        )
        second = samples(collector)
        assert key("softlayer_next_invoice_category_usd", **server) not in second

    def test_several_accounts(self):
        """Each account gets its own series, one failing does not hide the other."""
        state = b.state(b.full_snapshot("a"), b.full_snapshot("b", down=list(Source)))
        values = samples(SnapshotCollector(state, None, b.config(b.account("a"), b.account("b"))))
        assert values[key("softlayer_up", account="a")] == 1
        assert values[key("softlayer_up", account="b")] == 0
        assert values[key("softlayer_account_balance_usd", account="b")] == -12.34

    def test_exposition_formats(self):
        """The registry renders in both text formats, without timestamps or the secret."""
        registry = build_registry(b.state(b.full_snapshot()), b.api_stats(), b.config())
        text = generate_latest(registry).decode()
        assert 'softlayer_account_balance_usd{account="prod"} -12.34' in text
        assert b.PLANTED_KEY not in text
        families = {f.name for f in text_string_to_metric_families(text)}
        assert "process_cpu_seconds" in families
        om = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]  # untyped upstream
        assert "# TYPE softlayer_account info" in om
        assert om.endswith("# EOF\n")
        for line in text.splitlines():
            if line and not line.startswith("#"):
                # name{labels} value, with no trailing timestamp
                assert re.fullmatch(r"\S+(\{.*\})? \S+", line), line


# ----- docs/metrics.md is the contract: compare both ways -------------------------------------


class DocumentedFamily(TypedDict):
    """A metric as docs/metrics.md describes it."""

    type: str
    labels: set[str]
    help: str | None


class ServedFamily(TypedDict):
    """A metric as the collector yields it, with its number of samples."""

    type: str
    labels: set[str]
    help: str
    samples: int


def _documented() -> dict[str, DocumentedFamily]:
    """Parse the metric tables of docs/metrics.md: name -> {type, labels, help}."""
    documented: dict[str, DocumentedFamily] = {}
    header: list[str] = []
    section_labels: set[str] | None = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section_labels = (
                INVOICE_LABELS if "invoice" in line.lower() and "Latest" in line else None
            )
        if not line.startswith("|"):
            header = [] if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "metric":
            header = cells
            continue
        match = re.fullmatch(r"`(softlayer_\w+)`", cells[0]) if cells else None
        if not match or not header:
            continue
        row = dict(zip(header, cells, strict=False))
        if "labels" in row:
            labels = set()
            for part in row["labels"].split(","):
                token = re.search(r"`(\w+)`", part)
                if token:
                    labels.add(token.group(1))
        else:
            labels = set(section_labels or ())
        help_text = row.get("HELP")
        documented[match.group(1)] = {
            "type": row["type"].split()[0],
            "labels": labels,
            "help": None if help_text is None else _normalise_help(help_text),
        }
    return documented


def _normalise_help(text: str) -> str:
    return text.replace("`", "").replace("(cached; ...)", CACHED).replace("\\|", "|")


def _served() -> dict[str, ServedFamily]:
    collector = SnapshotCollector(
        b.state(b.full_snapshot()),
        b.api_stats(),
        b.config(
            b.account(
                thresholds=Thresholds(
                    open_invoice_balance_usd=Decimal(1),
                    account_balance_usd=Decimal(2),
                    monthly_budget_usd=Decimal(3),
                )
            )
        ),
    )
    served: dict[str, ServedFamily] = {}
    for family in collector.collect():
        name = family.name
        kind = family.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name += "_info"
            kind = "gauge"
        labels = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        served[name] = {
            "type": kind,
            "labels": labels,
            "help": family.documentation,
            "samples": len(family.samples),
        }
    return served


class TestDocumentation:
    def test_every_documented_metric_is_served(self):
        """Every metric in docs/metrics.md is yielded by the collector, and vice versa."""
        documented, served = _documented(), _served()
        assert len(documented) > 30  # the parser found the tables
        assert sorted(set(documented) - set(served)) == []
        assert sorted(set(served) - set(documented)) == []

    def test_types_labels_and_help_match(self):
        """Each family has the documented type, label names and HELP text."""
        documented, served = _documented(), _served()
        for name, doc in documented.items():
            got = served[name]
            assert got["samples"], f"{name}: the fixture should populate every family"
            assert got["type"] == doc["type"], name
            assert got["labels"] == doc["labels"], name
            if doc["help"] is not None:
                assert got["help"] == doc["help"], name

    def test_cached_help(self):
        """Every billing metric's HELP says its value is cached from the background poll."""
        for name, got in _served().items():
            health = name.startswith(
                (
                    "softlayer_up",
                    "softlayer_source_",
                    "softlayer_poll_",
                    "softlayer_next_poll",
                    "softlayer_api_",
                    "softlayer_exporter_",
                    "softlayer_alert_",
                    "softlayer_recent_invoices_window",
                )
            )
            assert (CACHED in got["help"]) is not health, name


class TestPromtool:
    def test_promtool_check_metrics(self):
        """promtool check metrics accepts the full exposition (every family populated)."""
        registry = build_registry(b.state(b.full_snapshot()), b.api_stats(), b.config())
        result = subprocess.run(
            [require_tool("promtool"), "check", "metrics"],
            input=generate_latest(registry),
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr).decode()
