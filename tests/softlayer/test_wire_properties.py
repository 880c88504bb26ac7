"""Property-based tests of exporter.wire: any input gives records or a DecodeError.

Two kinds of input: arbitrary JSON values, and real samples with one field replaced by
arbitrary JSON or deleted. Whenever parsing succeeds, every number in the result must equal
what an independent, simple oracle reads from the same wire data: never a wrong number.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.snapshot import INVOICE_STATUSES, INVOICE_TYPES, InvoiceSummary, code_label
from exporter.wire import (
    CategoryAggregator,
    DecodeError,
    InvoiceWindowAggregator,
    parse_account_summary,
    parse_decimal,
    parse_invoice,
    parse_latest_recurring_invoice,
    parse_pending_invoice,
)

SAMPLES = Path(__file__).parent.parent / "samples"
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(), parse_float=Decimal)


def wire_json(text: str) -> Any:
    """Decode like the client: numbers with a fraction become Decimal."""
    return json.loads(text, parse_float=Decimal)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["0", ".048", "-1.5", "264111.3", "2021-11-24T15:07:42-06:00", "1e3", ""])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def oracle_decimal(value: Any) -> Decimal:
    """Independent reading of a wire amount the parser accepted (to the micro-dollar)."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    return exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)


def oracle_int(value: Any) -> int:
    """Independent reading of a wire id or count the parser accepted."""
    return int(Decimal(str(value).strip()))


# -- arbitrary JSON ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(json_values)
def test_arbitrary_json_never_escapes_as_another_exception(value: Any) -> None:
    """Every parser returns a record or raises DecodeError for any JSON value."""
    parsers = (
        parse_account_summary,
        parse_latest_recurring_invoice,
        parse_pending_invoice,
        lambda v: parse_invoice(v, "invoice"),
        lambda v: CategoryAggregator().add_page(v),
        lambda v: InvoiceWindowAggregator(datetime(2020, 1, 1, tzinfo=UTC)).add_page(v),
    )
    errors: list[DecodeError] = []
    for parse in parsers:
        try:
            parse(value)
        except DecodeError as err:
            errors.append(err)
    # Typed errors name the offending path first.
    assert all(err.path and str(err).startswith(err.path) for err in errors)


@PROPERTY_SETTINGS
@given(json_values)
def test_arbitrary_amounts_parse_exactly_or_fail(value: Any) -> None:
    """An accepted amount is exactly the wire value; a rejected one is a DecodeError."""
    try:
        parsed = parse_decimal(value, "amount")
    except DecodeError:
        return
    assert parsed == oracle_decimal(value)
    assert parsed.is_finite()


@PROPERTY_SETTINGS
@given(
    st.decimals(
        min_value=Decimal("-999999999999.9999999999"),
        max_value=Decimal("999999999999.9999999999"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_every_sane_amount_survives_both_wire_encodings(amount: Decimal) -> None:
    """A string (also ".048" style) or a JSON number decodes to the same exact amount."""
    text = format(amount, "f")
    dropped_zero = text.replace("0.", ".", 1) if text.startswith("0.") else text
    for encoded in (json.dumps(text), json.dumps(dropped_zero), text):
        assert parse_decimal(wire_json(encoded), "amount") == amount


# -- mutated real samples ---------------------------------------------------------------


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a JSON value."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(child, (*prefix, index)))
    return found


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """The sample with one field replaced by arbitrary JSON, or deleted."""
    value = copy.deepcopy(original)
    path = draw(st.sampled_from(paths(value)))
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return value


def complete_invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    invoice = dict(invoice)
    invoice.update(
        invoiceTotalPreTaxAmount="3000.5",
        invoiceTotalRecurringAmount="2900",
        invoiceTotalOneTimeAmount=".5",
        invoiceTotalOneTimeTaxAmount="0",
        invoiceTotalRecurringTaxAmount="52.37",
        payment="10",
        itemCount=14,
    )
    return invoice


ACCOUNT = load("account_getObject_summary_mask.json")
ACCOUNT.update(
    balance="275246.13",
    nextInvoiceTotalRecurringAmount=Decimal("3100.47"),
    nextInvoiceTotalOneTimeAmount=28,
    nextInvoiceTotalOneTimeTaxAmount="0",
    nextInvoiceTotalRecurringTaxAmount=".25",
    nextInvoiceTopLevelBillingItemCount=55,
    pendingInvoice=complete_invoice(ACCOUNT["pendingInvoice"]),
    latestRecurringInvoice=complete_invoice(load("billing_invoice_getObject_pendingInvoice.json")),
)
ITEMS = [
    *load("account_getAllTopLevelBillingItems.json"),
    load("billing_item_getObject_hourly.json"),
]
INVOICES = load("account_getInvoices.json") + load(
    "account_getInvoices_softlayer_python_fixture.json"
)


def check_invoice(parsed: Any, wire: dict[str, Any]) -> None:
    """Oracle: every number of a parsed invoice equals its wire field."""
    assert parsed.total_usd == oracle_decimal(wire["invoiceTotalAmount"])
    assert parsed.pre_tax_usd == oracle_decimal(wire["invoiceTotalPreTaxAmount"])
    assert parsed.recurring_usd == oracle_decimal(wire["invoiceTotalRecurringAmount"])
    assert parsed.one_time_usd == oracle_decimal(wire["invoiceTotalOneTimeAmount"])
    assert parsed.tax_usd == oracle_decimal(wire["invoiceTotalOneTimeTaxAmount"]) + oracle_decimal(
        wire["invoiceTotalRecurringTaxAmount"]
    )
    payment = wire.get("payment")
    assert parsed.payments_usd == (0 if payment is None else oracle_decimal(payment))
    assert parsed.item_count == oracle_int(wire["itemCount"])


def pending_invoice(account: Any) -> InvoiceSummary | None:
    """The open invoice of an account object, None when none is open."""
    return parse_pending_invoice(account).invoice


@PROPERTY_SETTINGS
@given(mutated(ACCOUNT))
def test_mutated_account_object_gives_right_numbers_or_decode_error(account: Any) -> None:
    """Each of the three getObject sources parses exactly what the wire says, or fails typed."""
    try:
        summary = parse_account_summary(account)
    except DecodeError:
        pass
    else:
        assert summary.balance_usd == oracle_decimal(account["balance"])
        assert summary.next_invoice_pre_tax_usd == oracle_decimal(account["nextInvoiceTotalAmount"])
        assert summary.next_invoice_tax_usd == oracle_decimal(
            account["nextInvoiceTotalOneTimeTaxAmount"]
        ) + oracle_decimal(account["nextInvoiceTotalRecurringTaxAmount"])
    for key, parse in (
        ("pendingInvoice", pending_invoice),
        ("latestRecurringInvoice", parse_latest_recurring_invoice),
    ):
        try:
            invoice = parse(account)
        except DecodeError:
            continue
        if invoice is None:
            assert account.get(key) is None
        else:
            check_invoice(invoice, account[key])


@PROPERTY_SETTINGS
@given(mutated(ITEMS))
def test_mutated_items_give_right_category_totals_or_decode_error(items: Any) -> None:
    """Category sums and counts equal a plain recount of the wire items, or DecodeError."""
    aggregator = CategoryAggregator()
    try:
        aggregator.add_page(items)
    except DecodeError:
        return
    result = aggregator.result(top_n=1)
    rows = items if isinstance(items, list) else [items]
    distinct = {oracle_int(row["id"]): row for row in reversed(rows)}
    assert result.item_count == len(distinct)
    expected_total = sum(
        (oracle_decimal(row["nextInvoiceTotalRecurringAmount"]) for row in distinct.values()),
        Decimal(0),
    )
    assert sum((c.amount_usd for c in result.categories), Decimal(0)) == expected_total
    hourly = sum(1 for row in distinct.values() if row["hourlyFlag"])
    assert sum(c.hourly_items for c in result.categories) == hourly
    hourly_usd = sum(
        (
            oracle_decimal(row["nextInvoiceTotalRecurringAmount"])
            for row in distinct.values()
            if row["hourlyFlag"]
        ),
        Decimal(0),
    )
    assert sum((c.hourly_usd for c in result.categories), Decimal(0)) == hourly_usd
    assert sum(c.monthly_items for c in result.categories) == len(distinct) - hourly


@PROPERTY_SETTINGS
@given(mutated(INVOICES))
def test_mutated_invoices_give_right_window_or_decode_error(invoices: Any) -> None:
    """Window counts and sums equal a plain recount of the wire invoices, or DecodeError."""
    since = datetime(2019, 3, 4, 6, 17, 42, tzinfo=UTC)
    window = InvoiceWindowAggregator(since)
    try:
        window.add_page(invoices)
    except DecodeError:
        return
    result = window.result()
    rows = invoices if isinstance(invoices, list) else [invoices]
    kept: dict[int, dict[str, Any]] = {}
    for row in rows:
        row_id = oracle_int(row["id"])
        if datetime.fromisoformat(row["createDate"]) >= since and row_id not in kept:
            kept[row_id] = row
    # Every kept invoice is counted: under its codes, or under UNKNOWN (bounded labels).
    assert sum(result.counts.values()) == len(kept)
    assert sum(result.amounts_usd.values(), Decimal(0)) == sum(
        (oracle_decimal(r["invoiceTotalAmount"]) for r in kept.values()), Decimal(0)
    )
    for type_code, status in result.counts:
        assert type_code in INVOICE_TYPES or code_label(type_code) == type_code
        assert status in INVOICE_STATUSES or code_label(status) == status
