"""The generated data adds up the way SoftLayer's does, and truth() equals what the API says."""

from __future__ import annotations

import re
import tracemalloc
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from exporter.simulator import AccountSpec, Scenario
from exporter.snapshot import INVOICE_STATUSES, INVOICE_TYPES
from tests.simulator.conftest import FIXED_NOW, Client

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[-+]\d{2}:\d{2}$")
DECIMAL_STRING = re.compile(r"^-?(\d+)?(\.\d+)?$")


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


async def fetch_all(client: Client, path: str, acct: Any, mask: str, page: int = 100) -> list[Any]:
    out: list[Any] = []
    while True:
        answer = await client.get(path, acct, objectMask=mask, resultLimit=f"{len(out)},{page}")
        assert answer.status == 200, answer.body
        out.extend(answer.json)
        if len(out) >= (answer.total or 0):
            return out


def test_same_seed_same_data_other_seed_other_data() -> None:
    """Generation is deterministic per seed (and clock) and differs between seeds."""
    specs = [AccountSpec(items=50), AccountSpec(items=3, pending_invoice=False)]
    first = Scenario.generate(seed=5, accounts=specs, now=FIXED_NOW)
    again = Scenario.generate(seed=5, accounts=specs, now=FIXED_NOW)
    other = Scenario.generate(seed=6, accounts=specs, now=FIXED_NOW)
    for a, b in zip(first.accounts, again.accounts, strict=True):
        assert (a.id, a.username, a.api_key) == (b.id, b.username, b.api_key)
        assert first.truth(a.id) == again.truth(b.id)
    assert first.accounts[0].api_key != other.accounts[0].api_key
    assert first.truth(first.accounts[0].id) != other.truth(other.accounts[0].id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"items": -1}, "items"),
        ({"invoice_months": -1}, "invoice_months"),
        ({"invoice_months": 0, "pending_invoice": True}, "pending_invoice"),
        ({"tax_rate": Decimal("1.5")}, "tax_rate"),
        ({"tax_rate": Decimal("0.00001")}, "basis points"),
    ],
)
def test_account_spec_validation(kwargs: dict[str, Any], message: str) -> None:
    """Impossible AccountSpecs are refused with a message naming the field."""
    with pytest.raises(ValueError, match=message):
        AccountSpec(**kwargs)


def test_generate_validation() -> None:
    """generate() needs accounts and an aware clock; unknown account ids are a clear KeyError."""
    with pytest.raises(ValueError, match="at least one"):
        Scenario.generate(seed=1, accounts=[])
    with pytest.raises(ValueError, match="timezone-aware"):
        Scenario.generate(seed=1, accounts=[AccountSpec()], now=FIXED_NOW.replace(tzinfo=None))
    scenario = Scenario.generate(seed=1, accounts=[AccountSpec(items=1)], now=FIXED_NOW)
    with pytest.raises(KeyError, match="no simulated account with id 42"):
        scenario.truth(42)


def test_invoice_history_has_every_type_and_status(scenario: Scenario) -> None:
    """A few months of history contain every invoice type and status; totals are consistent."""
    truth = scenario.truth(scenario.accounts[0].id)
    assert {i.type_code for i in truth.invoices} == set(INVOICE_TYPES)
    assert {i.status_code for i in truth.invoices} == set(INVOICE_STATUSES)
    for inv in truth.invoices:
        assert inv.total == inv.pre_tax + inv.tax
        assert inv.pre_tax == inv.recurring + inv.one_time
        assert (inv.closed is None) == (inv.status_code == "OPEN")
    previous = Decimal(0)
    for inv in truth.invoices:  # the balance runs through the invoices in creation order
        assert inv.starting_balance == previous
        assert inv.ending_balance == inv.starting_balance + inv.total - inv.payments
        previous = inv.ending_balance
    assert truth.balance == previous
    failed = [i.total for i in truth.invoices if i.status_code == "CLOSED_FAILED"]
    settled = [-i.total for i in truth.invoices if i.type_code == "MANUAL_PAYMENT_CREDIT"]
    assert failed == settled  # each failed payment is settled exactly by a manual payment
    assert truth.pending_invoice is not None
    assert truth.pending_invoice == truth.latest_recurring_invoice
    assert truth.next_invoice_pre_tax == truth.next_invoice_recurring + truth.next_invoice_one_time
    assert truth.next_invoice_recurring == sum(c.amount for c in truth.categories.values())


async def test_invoice_items_add_up_to_invoice_totals(client: Client, scenario: Scenario) -> None:
    """getItems sums (fees, taxes, after-tax amounts, count) equal the invoice's own totals."""
    acct = scenario.accounts[0]
    for inv in scenario.truth(acct.id).invoices:
        head = await client.get(
            f"SoftLayer_Billing_Invoice/{inv.id}/getObject.json",
            acct,
            objectMask="mask[invoiceTotalAmount,invoiceTotalPreTaxAmount,invoiceTotalRecurringAmount,"
            "invoiceTotalOneTimeAmount,invoiceTotalRecurringTaxAmount,invoiceTotalOneTimeTaxAmount,"
            "itemCount,invoiceTopLevelItemCount]",
        )
        h = head.json
        assert dec(h["invoiceTotalAmount"]) == inv.total
        assert dec(h["invoiceTotalPreTaxAmount"]) == inv.pre_tax
        assert dec(h["invoiceTotalRecurringAmount"]) == inv.recurring
        assert dec(h["invoiceTotalOneTimeAmount"]) == inv.one_time
        assert (
            dec(h["invoiceTotalRecurringTaxAmount"]) + dec(h["invoiceTotalOneTimeTaxAmount"])
            == inv.tax
        )
        assert (h["itemCount"], h["invoiceTopLevelItemCount"]) == (
            inv.item_count,
            inv.top_level_item_count,
        )
        items = await fetch_all(
            client,
            f"SoftLayer_Billing_Invoice/{inv.id}/getItems.json",
            acct,
            "mask[id,parentId,recurringFee,oneTimeFee,recurringTaxAmount,oneTimeTaxAmount,"
            "recurringAfterTaxAmount,oneTimeAfterTaxAmount]",
        )
        assert len(items) == inv.item_count
        assert sum(dec(i["recurringFee"]) for i in items) == inv.recurring
        assert sum(dec(i["oneTimeFee"]) for i in items) == inv.one_time
        assert (
            sum(dec(i["recurringTaxAmount"]) + dec(i["oneTimeTaxAmount"]) for i in items) == inv.tax
        )
        assert (
            sum(dec(i["recurringAfterTaxAmount"]) + dec(i["oneTimeAfterTaxAmount"]) for i in items)
            == inv.total
        )
        assert sum(1 for i in items if i["parentId"] is None) == inv.top_level_item_count


async def test_top_level_invoice_item_totals_include_children(
    client: Client, scenario: Scenario
) -> None:
    """An invoice item's totalRecurringAmount is its own fee plus its children's."""
    acct = scenario.accounts[0]
    inv = scenario.truth(acct.id).latest_recurring_invoice
    assert inv is not None
    items = await fetch_all(
        client,
        f"SoftLayer_Billing_Invoice/{inv.id}/getInvoiceTopLevelItems.json",
        acct,
        "mask[recurringFee,totalRecurringAmount,children[recurringFee]]",
    )
    assert any(i["children"] for i in items)
    for item in items:
        own = dec(item["recurringFee"]) + sum(dec(c["recurringFee"]) for c in item["children"])
        assert dec(item["totalRecurringAmount"]) == own


async def test_next_invoice_matches_truth(client: Client, scenario: Scenario) -> None:
    """Account nextInvoiceTotal* and the item list agree with each other and with truth()."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    account = (
        await client.get(
            "SoftLayer_Account/getObject.json",
            acct,
            objectMask="mask[balance,nextInvoiceTotalAmount,nextInvoiceTotalRecurringAmount,"
            "nextInvoiceTotalOneTimeAmount,nextInvoiceTotalRecurringTaxAmount,"
            "nextInvoiceTotalOneTimeTaxAmount,nextInvoiceTopLevelBillingItemCount]",
        )
    ).json
    assert isinstance(account["nextInvoiceTotalAmount"], int | float)
    assert dec(account["balance"]) == truth.balance
    assert dec(account["nextInvoiceTotalAmount"]) == truth.next_invoice_pre_tax
    assert dec(account["nextInvoiceTotalRecurringAmount"]) == truth.next_invoice_recurring
    assert dec(account["nextInvoiceTotalOneTimeAmount"]) == truth.next_invoice_one_time
    assert (
        dec(account["nextInvoiceTotalRecurringTaxAmount"])
        + dec(account["nextInvoiceTotalOneTimeTaxAmount"])
        == truth.next_invoice_tax
    )
    assert account["nextInvoiceTopLevelBillingItemCount"] == truth.next_invoice_item_count
    items = await fetch_all(
        client,
        "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
        acct,
        "mask[categoryCode,hourlyFlag,recurringFee,nextInvoiceTotalRecurringAmount,"
        "nextInvoiceTotalOneTimeAmount,nextInvoiceTotalRecurringTaxAmount,children[recurringFee]]",
        page=25,
    )
    assert len(items) == truth.next_invoice_item_count
    for item in items:
        own = dec(item["recurringFee"]) + sum(dec(c["recurringFee"]) for c in item["children"])
        assert dec(item["nextInvoiceTotalRecurringAmount"]) == own
        assert item["nextInvoiceTotalRecurringTaxAmount"] == 0
    assert (
        sum(dec(i["nextInvoiceTotalRecurringAmount"]) for i in items)
        == truth.next_invoice_recurring
    )
    assert (
        sum(dec(i["nextInvoiceTotalOneTimeAmount"]) for i in items) == truth.next_invoice_one_time
    )
    for code, category in truth.categories.items():
        mine = [i for i in items if i["categoryCode"] == code]
        assert sum(dec(i["nextInvoiceTotalRecurringAmount"]) for i in mine) == category.amount
        assert sum(1 for i in mine if i["hourlyFlag"]) == category.hourly_items
        assert sum(1 for i in mine if not i["hourlyFlag"]) == category.monthly_items


async def test_invoice_getters_match_truth(client: Client, scenario: Scenario) -> None:
    """getLatestRecurringInvoice/getPendingInvoice/getLatestRecurringPendingInvoice follow truth."""
    with_pending, without = scenario.accounts
    truth = scenario.truth(with_pending.id)
    assert truth.pending_invoice is not None
    assert truth.latest_recurring_invoice is not None
    for method, expected in (
        ("getLatestRecurringInvoice", truth.latest_recurring_invoice.id),
        ("getPendingInvoice", truth.pending_invoice.id),
        ("getLatestRecurringPendingInvoice", truth.pending_invoice.id),
    ):
        answer = await client.get(f"SoftLayer_Account/{method}.json", with_pending)
        assert answer.json["id"] == expected
    other = scenario.truth(without.id)
    assert other.pending_invoice is None
    assert other.latest_recurring_invoice is not None
    for method in ("getPendingInvoice", "getLatestRecurringPendingInvoice"):
        answer = await client.get(f"SoftLayer_Account/{method}.json", without)
        assert answer.status == 200
        assert answer.body == b"null"
    latest = await client.get("SoftLayer_Account/getLatestRecurringInvoice.json", without)
    assert latest.json["id"] == other.latest_recurring_invoice.id
    assert latest.json["statusCode"] == "CLOSED"


async def test_wire_types_as_softlayer_sends_them(client: Client, scenario: Scenario) -> None:
    """Fees are decimal strings (".048" style), dates carry offsets, nulls are explicit."""
    acct = scenario.accounts[0]
    items = await fetch_all(
        client, "SoftLayer_Account/getAllTopLevelBillingItems.json", acct, "mask[hourlyFlag]"
    )
    for item in items:
        for key in ("recurringFee", "setupFee", "laborFee", "oneTimeFee", "recurringFeeTaxRate"):
            assert isinstance(item[key], str)
            assert DECIMAL_STRING.match(item[key])
            assert not item[key].startswith("0.")
        for key in ("createDate", "cycleStartDate", "nextBillDate", "lastBillDate"):
            assert DATE.match(item[key])
        assert item["parentId"] is None
        assert "cancellationDate" in item
        if item["hourlyFlag"]:
            assert isinstance(item["hoursUsed"], str)
            assert isinstance(item["hourlyRecurringFee"], str)
        else:
            assert "hoursUsed" not in item
    assert any(i["hourlyRecurringFee"].startswith(".") for i in items if i["hourlyFlag"])
    assert any("hostName" not in i for i in items)
    assert any("hostName" in i for i in items)
    invoices = (await client.get("SoftLayer_Account/getInvoices.json", acct)).json
    assert all(isinstance(i["startingBalance"], str) for i in invoices)
    assert any(i["closedDate"] is None for i in invoices)


@pytest.mark.slow
def test_two_hundred_thousand_items() -> None:
    """200,000 top-level items generate with consistent truth in a few hundred MB at most."""
    tracemalloc.start()
    scenario = Scenario.generate(
        seed=1, accounts=[AccountSpec(items=200_000, invoice_months=24)], now=FIXED_NOW
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    assert acct.item_count == 200_000
    assert truth.next_invoice_item_count == 200_000
    assert truth.next_invoice_recurring == sum(c.amount for c in truth.categories.values())
    assert peak < 300 * 1024 * 1024


@pytest.mark.parametrize("minutes_after_cycle", [1, 5, 14, 60])
def test_dates_never_in_the_future_or_out_of_order(minutes_after_cycle: int) -> None:
    """Even minutes after the billing anniversary, invoices are created before now and closed
    after they are created."""
    # Cycles start at 23:00 Central = 05:00 UTC; FIXED_NOW's Central day is the 22nd.
    now = FIXED_NOW.replace(hour=5, minute=0) + timedelta(minutes=minutes_after_cycle)
    near_anniversary = 0
    for seed in range(150):
        scenario = Scenario.generate(
            seed=seed, accounts=[AccountSpec(items=5, invoice_months=3)], now=now
        )
        acct = scenario.accounts[0]
        near_anniversary += now.timestamp() - acct.cycle_start <= 3600
        for inv in scenario.truth(acct.id).invoices:
            assert inv.created <= now
            assert inv.closed is None or inv.closed > inv.created
    assert near_anniversary  # some seeds put the anniversary right before "now"
