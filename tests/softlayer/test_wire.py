"""Parsing of SoftLayer wire JSON into snapshot records (exporter.wire), on real samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    MAX_UNDOCUMENTED_CODES,
    OTHER_CATEGORY,
    UNKNOWN_CODE,
)
from exporter.wire import (
    CategoryAggregator,
    DecodeError,
    InvoiceWindowAggregator,
    parse_account_summary,
    parse_bool,
    parse_datetime,
    parse_decimal,
    parse_int,
    parse_invoice,
    parse_latest_recurring_invoice,
    parse_pending_invoice,
    project_breakdown,
)

SAMPLES = Path(__file__).parent.parent / "samples"


def sample(name: str) -> Any:
    """Load a sample the way the client decodes bodies: JSON numbers become Decimal."""
    return json.loads((SAMPLES / name).read_text(), parse_float=Decimal)


def full_invoice(**overrides: Any) -> dict[str, Any]:
    """The real pending-invoice capture plus the relational totals our mask asks for."""
    # The capture is a JSON object.
    invoice: dict[str, Any] = sample("billing_invoice_getObject_pendingInvoice.json")
    invoice.update(
        invoiceTotalPreTaxAmount="3000.5",
        invoiceTotalRecurringAmount="2900",
        invoiceTotalOneTimeAmount=".5",
        invoiceTotalOneTimeTaxAmount="0",
        invoiceTotalRecurringTaxAmount="52.37",
        payment=None,
        itemCount=14,
    )
    invoice.update(overrides)
    return invoice


def full_account(**overrides: Any) -> dict[str, Any]:
    """The real `slcli account summary` capture plus the fields of ACCOUNT_MASK."""
    # The capture is a JSON object.
    account: dict[str, Any] = sample("account_getObject_summary_mask.json")
    account.update(
        balance="275246.13",
        nextInvoiceTotalRecurringAmount=Decimal("3100.47"),
        nextInvoiceTotalOneTimeAmount=28,
        nextInvoiceTotalOneTimeTaxAmount="0",
        nextInvoiceTotalRecurringTaxAmount=".25",
        nextInvoiceTopLevelBillingItemCount=55,
        pendingInvoice=full_invoice(),
        latestRecurringInvoice=full_invoice(id=80926000, statusCode="CLOSED"),
    )
    account.update(overrides)
    return account


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (".048", Decimal("0.048")),
        ("0", Decimal(0)),
        ("264111.3", Decimal("264111.3")),
        ("10.00", Decimal("10")),
        ("-12.5", Decimal("-12.5")),
        ("-0", Decimal(0)),
        (16, Decimal(16)),
        (Decimal("3128.47"), Decimal("3128.47")),
        (40.32, Decimal("40.32")),
        ("1.500000000000000", Decimal("1.5")),
    ],
)
def test_decimal_accepts_strings_and_numbers(wire: Any, expected: Decimal) -> None:
    """Amounts arrive as strings (".048", no leading zero) or numbers; both parse exactly."""
    assert parse_decimal(wire, "x") == expected


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        # .024 * 318 computed as a double, as a JSON number field can carry it.
        (Decimal("19.080000000000002"), Decimal("19.08")),
        (0.024 * 318, Decimal("7.632")),
        (Decimal("19.079999999999998"), Decimal("19.08")),
        (0.1 + 0.2, Decimal("0.3")),
        ("0.00000000001", Decimal(0)),
        (Decimal("123456789.12000001"), Decimal("123456789.12")),
        (Decimal("-0.0000001"), Decimal(0)),
        ("0.0000005", Decimal(0)),  # half-even: exactly half a micro-dollar rounds to even
        ("0.0000015", Decimal("0.000002")),
    ],
)
def test_decimal_rounds_float_noise_to_a_micro_dollar(wire: Any, expected: Decimal) -> None:
    """Binary-double noise on a number field is rounded away (6 places), never a failure."""
    parsed = parse_decimal(wire, "x")
    assert parsed == expected
    assert str(parsed) != "-0"


@pytest.mark.parametrize(
    "wire",
    [
        None,
        True,
        "",
        "abc",
        "1,5",
        "NaN",
        "Infinity",
        "1e5",
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        [],
        {},
        "1" * 16,
        10**15,
        Decimal("1E+9999999999"),
    ],
)
def test_decimal_rejects_what_is_not_an_amount(wire: Any) -> None:
    """Anything that is not a finite, sane amount is a DecodeError naming the path."""
    with pytest.raises(DecodeError, match=r"^a\.b: "):
        parse_decimal(wire, "a.b")


def test_integers_flags_and_their_errors() -> None:
    """Ids and counts accept JSON integers (and digit strings), flags accept bools and 0/1."""
    assert parse_int(3317, "n") == 3317
    assert parse_int("87654321", "n") == 87654321
    assert parse_int(Decimal("14.0"), "n") == 14
    assert parse_bool(True, "f") is True
    assert parse_bool(0, "f") is False
    bad: object  # the bad inputs are of every JSON type
    for bad in (True, -1, 1.5, Decimal("1.5"), "x", None, 2**63, Decimal("1E+40")):
        with pytest.raises(DecodeError, match=r"^n: "):
            parse_int(bad, "n")
    for bad in ("true", 2, None, []):
        with pytest.raises(DecodeError, match=r"^f: "):
            parse_bool(bad, "f")


def test_dates_keep_their_offset() -> None:
    """Dates carry varying offsets; the parsed instant is the real one."""
    parsed = parse_datetime("2021-11-24T15:07:42-06:00", "d")
    assert parsed == datetime(2021, 11, 24, 21, 7, 42, tzinfo=UTC)
    assert parse_datetime("2022-04-03T23:10:11-05:00", "d") < parsed + timedelta(days=365)


@pytest.mark.parametrize(
    "wire", ["2021-11-24T15:07:42", "2021-11-24", "yesterday", 1637788062, None]
)
def test_dates_without_offset_or_garbage_are_rejected(wire: Any) -> None:
    """A wall time without offset is ambiguous by hours; it and garbage are DecodeErrors."""
    with pytest.raises(DecodeError, match=r"^d: "):
        parse_datetime(wire, "d")


def test_account_summary_from_real_capture() -> None:
    """The getObject capture parses to exact balance and next-invoice totals (tax summed)."""
    summary = parse_account_summary(full_account())
    assert summary.account_id == 267524
    assert summary.company_name == "IBM Cloud IaaS"
    assert summary.balance_usd == Decimal("275246.13")
    assert summary.next_invoice_pre_tax_usd == Decimal("3128.47")
    assert summary.next_invoice_recurring_usd == Decimal("3100.47")
    assert summary.next_invoice_one_time_usd == Decimal(28)
    assert summary.next_invoice_tax_usd == Decimal("0.25")
    assert summary.next_invoice_item_count == 55


def test_account_summary_missing_field_is_an_error_not_a_zero() -> None:
    """The raw capture lacks `balance`: that is a DecodeError, never a silent 0."""
    with pytest.raises(DecodeError, match=r"^account\.balance: missing"):
        parse_account_summary(sample("account_getObject_summary_mask.json"))


def test_pending_invoice_absent_is_normal() -> None:
    """No `pendingInvoice` key (real capture) means no open invoice, not an error."""
    assert parse_pending_invoice(sample("account_getObject_no_pendingInvoice.json")).invoice is None
    assert parse_pending_invoice({"pendingInvoice": None}).invoice is None
    assert parse_latest_recurring_invoice({"id": 1}) is None


def test_pending_invoice_totals_and_open_balance() -> None:
    """Invoice totals come from the invoice's own fields; null payment means nothing paid."""
    pending = parse_pending_invoice(full_account()).invoice
    assert pending is not None
    assert pending.invoice_id == 80926762
    assert (pending.type_code, pending.status_code) == ("RECURRING", "OPEN")
    assert pending.closed is None
    assert pending.total_usd == Decimal("3052.87")
    assert pending.tax_usd == Decimal("52.37")
    assert pending.payments_usd == 0
    assert pending.open_balance_usd == Decimal("3052.87")
    assert pending.item_count == 14
    paid = parse_invoice(
        full_invoice(payment="3052.87", closedDate="2022-04-04T01:00:00-06:00"), "i"
    )
    assert paid.open_balance_usd == 0
    assert paid.closed == datetime(2022, 4, 4, 7, 0, tzinfo=UTC)


def test_wrong_type_in_one_invoice_names_its_path() -> None:
    """A wrong type deep in the response is reported with its path."""
    account = full_account(pendingInvoice=full_invoice(invoiceTotalAmount=["3052.87"]))
    with pytest.raises(DecodeError, match=r"^account\.pendingInvoice\.invoiceTotalAmount: "):
        parse_pending_invoice(account)
    # The other parts of the same response are unaffected.
    assert parse_latest_recurring_invoice(account) is not None


def test_category_amount_uses_total_with_children_not_recurring_fee() -> None:
    """A parent's bare recurringFee ("0") is ignored; nextInvoiceTotalRecurringAmount counts."""
    item = sample("billing_item_getObject_hourly.json")
    aggregator = CategoryAggregator()
    aggregator.add_page([item])
    (guest_core,) = aggregator.result(top_n=5).categories
    assert guest_core.code == "guest_core"
    assert guest_core.amount_usd == Decimal("40.32")
    assert (guest_core.hourly_items, guest_core.monthly_items) == (1, 0)


def test_categories_from_real_items_fall_back_to_code_for_names() -> None:
    """Items without a category name are labelled by their code; hourly/monthly split."""
    aggregator = CategoryAggregator()
    aggregator.add_page(sample("account_getAllTopLevelBillingItems.json"))
    result = aggregator.result(top_n=5)
    by_code = {c.code: c for c in result.categories}
    assert by_code["ssl_certificate"].name == "ssl_certificate"
    assert by_code["ssl_certificate"].monthly_items == 1
    assert by_code["dedicated_virtual_hosts"].hourly_items == 1
    assert result.item_count == 2
    assert result.folded_categories == 0


def test_item_without_total_amount_is_an_error() -> None:
    """The StackOverflow capture has no nextInvoiceTotalRecurringAmount: DecodeError."""
    with pytest.raises(DecodeError, match=r"^items\[0\]\.nextInvoiceTotalRecurringAmount: missing"):
        CategoryAggregator().add_page(sample("account_getNextInvoiceTopLevelBillingItems.json"))


def item(
    item_id: int,
    code: str,
    amount: str,
    *,
    hourly: bool = False,
    name: str = "",
    hours: str | None = "10",
    rate: str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item_id,
        "categoryCode": code,
        "hourlyFlag": hourly,
        "nextInvoiceTotalRecurringAmount": amount,
        "category": {"name": name},
    }
    if hourly and hours is not None:
        row["hoursUsed"] = hours
    if hourly and rate is not None:
        row["hourlyRecurringFee"] = rate
    return row


def test_hourly_and_monthly_money_are_told_apart() -> None:
    """Hourly items are month-to-date with an effective rate (children included); monthly
    items are the whole month; the projection adds rate x hours left."""
    aggregator = CategoryAggregator()
    aggregator.add_page(
        [
            # The softlayer-cli guest fixture: (.036 + .024 RAM child) x 318 h = 19.08,
            # here with the noise a double carries.
            item(1, "guest_core", "19.080000000000002", hourly=True, hours="318"),
            item(2, "guest_core", "25"),
            # No hour used yet this cycle: its own hourlyRecurringFee is the rate.
            item(3, "guest_core", "0", hourly=True, hours="0", rate=".05"),
        ]
    )
    (guest,) = aggregator.result(top_n=5).categories
    assert guest.amount_usd == Decimal("44.08")
    assert guest.hourly_usd == Decimal("19.08")
    assert guest.monthly_usd == Decimal(25)
    assert guest.hourly_rate_usd == Decimal("0.11")
    assert (guest.hourly_items, guest.monthly_items) == (2, 1)
    projected = project_breakdown(
        aggregator.result(top_n=5), pre_tax_usd=Decimal("100"), hours_left=Decimal(100)
    )
    assert projected.categories[0].projected_usd == Decimal("55.08")
    assert projected.projected_pre_tax_usd == Decimal("111")
    # Past the cycle's end nothing more accrues.
    late = project_breakdown(aggregator.result(5), pre_tax_usd=Decimal(1), hours_left=Decimal(-3))
    assert late.categories[0].projected_usd == Decimal("44.08")


def test_hourly_item_without_any_rate_is_an_error() -> None:
    """An hourly item with no hour used and no hourlyRecurringFee has no rate: DecodeError."""
    with pytest.raises(DecodeError, match=r"items\[0\]\.hourlyRecurringFee: missing"):
        CategoryAggregator().add_page([item(1, "guest_core", "0", hourly=True, hours=None)])
    with pytest.raises(DecodeError, match=r"items\[0\]\.hoursUsed: negative"):
        CategoryAggregator().add_page([item(1, "guest_core", "5", hourly=True, hours="-1")])


def test_top_n_folds_the_rest_into_other() -> None:
    """The top-N categories by amount are kept, the rest summed into `other` and counted."""
    aggregator = CategoryAggregator()
    aggregator.add_page(
        [
            item(1, "server", "500", name="Server"),
            item(2, "guest_core", "100", hourly=True),
            item(3, "ram", "10"),
            item(4, "storage", "10"),
            item(5, "vlan", "1.5", hourly=True),
        ]
    )
    aggregator.add_page([item(6, "guest_core", "100.25")])
    result = aggregator.result(top_n=2)
    assert [c.code for c in result.categories] == ["server", "guest_core", OTHER_CATEGORY]
    assert result.categories[0].name == "Server"
    assert result.categories[1].amount_usd == Decimal("200.25")
    other = result.categories[2]
    assert other.amount_usd == Decimal("21.5")
    assert (other.hourly_items, other.monthly_items) == (1, 2)
    assert result.folded_categories == 3
    assert result.item_count == 6
    assert sum(c.amount_usd for c in result.categories) == Decimal("721.75")


def test_top_zero_and_a_real_other_category() -> None:
    """top_n=0 folds everything; a category coded `other` never yields a duplicate label."""
    aggregator = CategoryAggregator()
    aggregator.add_page([item(1, "other", "5"), item(2, "server", "7")])
    assert [c.code for c in aggregator.result(top_n=5).categories] == ["server", "other"]
    everything = aggregator.result(top_n=0)
    assert [(c.code, c.amount_usd) for c in everything.categories] == [("other", Decimal(12))]
    assert everything.folded_categories == 2


def test_an_item_seen_twice_counts_once() -> None:
    """Paging over a changing account may repeat an item; it is counted once."""
    aggregator = CategoryAggregator()
    page = [item(1, "server", "5"), item(2, "server", "7")]
    aggregator.add_page(page)
    aggregator.add_page(page[1:])
    (server,) = aggregator.result(top_n=5).categories
    assert server.amount_usd == 12
    assert server.monthly_items == 2


def test_bare_object_page_is_one_item_and_scalars_are_errors() -> None:
    """A list method may send a bare object; a scalar page is a DecodeError."""
    aggregator = CategoryAggregator()
    aggregator.add_page(item(1, "server", "5"))
    assert aggregator.item_count == 1
    with pytest.raises(DecodeError, match="expected a list"):
        aggregator.add_page("Internal Error")


def test_invoice_window_has_every_type_status_pair() -> None:
    """All 6 x 3 pairs exist with zeros; older invoices (filter failing open) are dropped."""
    window = InvoiceWindowAggregator(datetime(2021, 12, 1, tzinfo=UTC))
    window.add_page(sample("account_getInvoices.json"))  # one before, one after `since`
    window.add_page(
        [
            {"id": 9, "typeCode": "RECURRING", "statusCode": "CLOSED_FAILED",
             "createDate": "2022-01-01T00:00:00-06:00", "invoiceTotalAmount": "19.99"},
            {"id": 10, "typeCode": "SURPRISE", "statusCode": "OPEN",
             "createDate": "2022-01-02T00:00:00-06:00", "invoiceTotalAmount": "1"},
        ]
    )  # fmt: skip
    result = window.result()
    documented = {(t, s) for t in INVOICE_TYPES for s in INVOICE_STATUSES}
    assert set(result.counts) == documented | {("SURPRISE", "OPEN")}
    assert set(result.amounts_usd) == set(result.counts)
    assert result.counts[("NEW", "CLOSED")] == 1
    assert result.counts[("NEW", "OPEN")] == 0  # created 2021-11-24, before the window
    assert result.amounts_usd[("RECURRING", "CLOSED_FAILED")] == Decimal("19.99")
    assert result.counts[("SURPRISE", "OPEN")] == 1
    assert sum(result.counts.values()) == 3
    assert window.undocumented == [("type", "SURPRISE")]
    assert result.last_payment_failure is None  # the failed one has no closedDate


def test_undocumented_codes_are_bounded_and_the_last_failure_is_kept() -> None:
    """Codes that do not look like codes, and those past the cap, count under UNKNOWN; the
    newest CLOSED_FAILED invoice's closedDate is the last payment failure."""
    window = InvoiceWindowAggregator(datetime(2021, 12, 1, tzinfo=UTC))
    codes = ["ODD1", "ODD2", "ODD3", "ODD4", "ODD5", "ODD6", "not a code", ""]
    page = [
        {"id": i, "typeCode": code, "statusCode": "CLOSED",
         "createDate": "2022-01-01T00:00:00-06:00", "invoiceTotalAmount": "1"}
        for i, code in enumerate(codes, start=1)
    ] + [
        {"id": 90 + i, "typeCode": "RECURRING", "statusCode": "CLOSED_FAILED",
         "createDate": "2022-01-01T00:00:00-06:00", "closedDate": closed,
         "invoiceTotalAmount": "2"}
        for i, closed in enumerate(["2022-01-04T00:00:00-06:00", "2022-01-09T00:00:00-06:00"])
    ]  # fmt: skip
    assert window.add_page(page) == len(page)
    result = window.result()
    extra = {k: v for k, v in result.counts.items() if k[0] not in INVOICE_TYPES}
    assert extra == {
        **{(code, "CLOSED"): 1 for code in codes[:MAX_UNDOCUMENTED_CODES]},
        (UNKNOWN_CODE, "CLOSED"): len(codes) - MAX_UNDOCUMENTED_CODES,
    }
    assert result.last_payment_failure == datetime(2022, 1, 9, 6, tzinfo=UTC)
    assert window.add_page(page) == 0  # nothing new the second time


def test_invoice_window_needs_an_aware_start() -> None:
    """A naive window start is a programming error, reported at once."""
    with pytest.raises(ValueError, match="timezone-aware"):
        InvoiceWindowAggregator(datetime(2021, 12, 1))
