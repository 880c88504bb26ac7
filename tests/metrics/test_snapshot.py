"""The snapshot records (exporter.snapshot): immutable, assembled from a poll's outcomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from exporter.snapshot import (
    UNKNOWN_CODE,
    AccountSnapshot,
    BillingCycle,
    CategoryTotals,
    ExporterState,
    Failed,
    Fetched,
    PendingInvoice,
    Source,
    SourceStatus,
    assemble,
)
from exporter.snapshot import code_label as label_of
from tests.helpers import builders as b

NOW = 1_800_000_000.0


def fetched_latest(value: Any) -> Fetched[Any]:
    return Fetched(
        Source.LATEST_RECURRING_INVOICE, value, AccountSnapshot.with_latest_recurring_invoice
    )


def failed(source: Source, cause: str | None = None) -> Failed:
    return Failed(source, "HTTP 500: boom", "server", cause)


def poll(previous: AccountSnapshot, *outcomes: Fetched[Any] | Failed) -> AccountSnapshot:
    return assemble(previous, outcomes, now=NOW, duration=1.5, next_poll=NOW + 60)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (b.full_snapshot(), "summary"),
        (b.full_snapshot().summary, "balance_usd"),
        (b.LATEST, "total_usd"),
        (PendingInvoice(None), "invoice"),
        (b.window(), "counts"),
        (b.full_snapshot().next_invoice, "categories"),
        (CategoryTotals("server", "Server", Decimal(1), 1, 0), "amount_usd"),
        (BillingCycle(b.CYCLE_START, b.CYCLE_END), "end"),
        (SourceStatus(up=True, last_attempt=NOW, last_success=NOW), "up"),
        (failed(Source.ACCOUNT), "error"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_records_are_frozen(record: Any, field: str) -> None:
    """No field of any snapshot record can be assigned after it was built."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


@pytest.mark.parametrize(
    "mapping",
    [
        lambda snap: snap.sources,
        lambda snap: snap.invoices.counts,
        lambda snap: snap.invoices.amounts_usd,
    ],
    ids=["sources", "window counts", "window amounts"],
)
def test_assembled_mappings_are_read_only(mapping: Callable[[AccountSnapshot], Any]) -> None:
    """The mappings inside an assembled snapshot reject item assignment."""
    snapshot = poll(b.full_snapshot())
    with pytest.raises(TypeError):
        mapping(snapshot)[Source.ACCOUNT] = None


def test_a_new_account_snapshot_holds_no_data_and_is_not_up() -> None:
    """Before its first poll an account has a name, no data, no sources and is not up."""
    snapshot = AccountSnapshot(name="prod")
    data = [f.name for f in dataclasses.fields(snapshot) if f.name != "name"]
    assert {name: getattr(snapshot, name) for name in data} == {
        "summary": None,
        "latest_recurring_invoice": None,
        "pending_invoice": None,
        "invoices": None,
        "next_invoice": None,
        "billing": None,
        "history": None,
        "sources": {},
        "poll_duration_seconds": None,
        "next_poll": None,
    }
    assert snapshot.up is False


@pytest.mark.parametrize(
    ("down", "up"), [((), True), ((Source.INVOICES,), False), (tuple(Source), False)]
)
def test_up_only_when_every_source_is_up(down: tuple[Source, ...], up: bool) -> None:
    """An account is up when each of its sources succeeded on its latest attempt."""
    assert b.full_snapshot(down=down).up is up


@pytest.mark.parametrize(
    ("setter", "field", "value"),
    [
        (AccountSnapshot.with_summary, "summary", b.full_snapshot().summary),
        (AccountSnapshot.with_latest_recurring_invoice, "latest_recurring_invoice", b.PENDING),
        (AccountSnapshot.with_pending_invoice, "pending_invoice", PendingInvoice(None)),
        (AccountSnapshot.with_invoices, "invoices", b.window()),
        (AccountSnapshot.with_next_invoice, "next_invoice", b.full_snapshot().next_invoice),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_setter_returns_a_copy_with_only_its_field_replaced(
    setter: Callable[[AccountSnapshot, Any], AccountSnapshot], field: str, value: Any
) -> None:
    """A ``with_*`` setter replaces its own field in a copy; the original is unchanged."""
    original = AccountSnapshot(name="prod")
    copy = setter(original, value)
    assert getattr(copy, field) is value
    assert getattr(original, field) is None
    others = [f.name for f in dataclasses.fields(original) if f.name != field]
    assert [getattr(copy, n) for n in others] == [getattr(original, n) for n in others]


def test_assemble_stores_fetched_data_and_marks_the_source_up() -> None:
    """A fetched source's value lands in its field and its status is up at the poll's time."""
    snapshot = poll(AccountSnapshot(name="prod"), fetched_latest(b.LATEST))
    assert snapshot.latest_recurring_invoice is b.LATEST
    assert dict(snapshot.sources) == {
        Source.LATEST_RECURRING_INVOICE: SourceStatus(up=True, last_attempt=NOW, last_success=NOW)
    }
    assert (snapshot.poll_duration_seconds, snapshot.next_poll) == (1.5, NOW + 60)


def test_assemble_keeps_the_last_good_data_of_a_failed_source() -> None:
    """A failed source keeps its previous data and the time of its last success."""
    previous = b.full_snapshot()
    snapshot = poll(previous, failed(Source.LATEST_RECURRING_INVOICE))
    assert snapshot.latest_recurring_invoice is previous.latest_recurring_invoice
    assert snapshot.sources[Source.LATEST_RECURRING_INVOICE] == SourceStatus(
        up=False,
        last_attempt=NOW,
        last_success=previous.sources[Source.LATEST_RECURRING_INVOICE].last_success,
        last_error="HTTP 500: boom",
        last_error_reason="server",
    )


def test_a_source_that_never_succeeded_has_no_last_success() -> None:
    """Failing on the first poll leaves the field empty and ``last_success`` None."""
    snapshot = poll(AccountSnapshot(name="prod"), failed(Source.PENDING_INVOICE))
    assert snapshot.pending_invoice is None
    assert snapshot.sources[Source.PENDING_INVOICE].last_success is None
    assert snapshot.up is False


def test_assemble_lists_only_the_polled_sources_in_source_order() -> None:
    """Sources not polled this time are absent from ``sources``; the rest are in enum order."""
    snapshot = poll(b.full_snapshot(), failed(Source.PENDING_INVOICE), fetched_latest(None))
    assert list(snapshot.sources) == [Source.LATEST_RECURRING_INVOICE, Source.PENDING_INVOICE]


def test_assemble_leaves_the_previous_snapshot_untouched() -> None:
    """Assembling builds a new snapshot; the one a scrape may still hold does not change."""
    previous = b.full_snapshot()
    before = dataclasses.replace(previous)
    poll(previous, fetched_latest(None), failed(Source.ACCOUNT))
    assert previous == before
    assert previous.latest_recurring_invoice is b.LATEST


def test_publish_replaces_one_account_and_keeps_the_old_view_intact() -> None:
    """A reader holding ``accounts`` keeps its view; the new mapping changes one account."""
    state = ExporterState(("prod", "dev"))
    assert state.accounts == {"prod": AccountSnapshot("prod"), "dev": AccountSnapshot("dev")}
    held = state.accounts
    published = b.full_snapshot("prod")
    state.publish(published)
    assert held["prod"] == AccountSnapshot("prod")
    assert state.accounts["prod"] is published
    assert state.accounts["dev"] is held["dev"]
    with pytest.raises(TypeError):
        state.accounts["dev"] = published  # type: ignore[index]


def test_hours_left_counts_to_the_cycle_end_and_never_below_zero() -> None:
    """Hours to the end of the cycle from a unix time; zero once the cycle is over."""
    cycle = BillingCycle(b.CYCLE_START, b.CYCLE_END)
    ten_hours_before = b.CYCLE_END.timestamp() - 36_000
    assert cycle.hours_left(ten_hours_before) == Decimal(10)
    assert cycle.hours_left(b.CYCLE_END.timestamp() + 1) == Decimal(0)


def test_derived_amounts_come_from_the_reported_figures() -> None:
    """Open balance is total minus payments; a category's monthly part is amount minus hourly."""
    assert b.PENDING.open_balance_usd == Decimal("1010.50")
    category = CategoryTotals("server", "Server", Decimal("10.5"), 1, 1, Decimal("2.25"))
    assert category.monthly_usd == Decimal("8.25")


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("RECURRING", "RECURRING"),
        ("ONE-TIME-CHARGE", "ONE-TIME-CHARGE"),
        ("CLOSED_FAILED", "CLOSED_FAILED"),
        ("recurring", UNKNOWN_CODE),
        ("", UNKNOWN_CODE),
        ("Paid in full", UNKNOWN_CODE),
        ("A" * 41, UNKNOWN_CODE),
    ],
)
def test_code_label_keeps_only_code_shaped_values(code: str, label: str) -> None:
    """A value shaped like a SoftLayer code is its own label; anything else is UNKNOWN."""
    assert label_of(code) == label


@pytest.mark.parametrize(("cause", "group"), [(None, "HTTP 500: boom"), ("timeout", "timeout")])
def test_a_failure_is_grouped_by_its_cause_else_its_message(cause: str | None, group: str) -> None:
    """Failures that share a cause are listed under it; without one, under their message."""
    assert failed(Source.ACCOUNT, cause).group == group
