"""The official `softlayer` Python client (6.x) against the simulator gets exactly the truth.

The client is synchronous, so the simulator runs on its own event loop in a background thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

# The official client ships neither type hints nor stubs (as in benchmarks/baseline.py).
import SoftLayer  # type: ignore[import-untyped]
from SoftLayer.managers.account import AccountManager  # type: ignore[import-untyped]

from exporter.simulator import AccountSpec, Scenario, SimulatorServer, ThreadedSimulator
from tests.simulator.conftest import FIXED_NOW


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Scenario, SimulatorServer]]:
    scenario = Scenario.generate(
        seed=11,
        accounts=[AccountSpec(items=260, pending_invoice=True, invoice_months=6)],
        now=FIXED_NOW,
    )
    with ThreadedSimulator(scenario, rate_limit_per_second=None) as server:
        yield scenario, server


def make_client(server: SimulatorServer, username: str, api_key: str) -> SoftLayer.BaseClient:
    return SoftLayer.create_client_from_env(
        username=username, api_key=api_key, endpoint_url=server.endpoint, timeout=30
    )


@pytest.fixture(scope="module")
def client(world: tuple[Scenario, SimulatorServer]) -> SoftLayer.BaseClient:
    scenario, server = world
    acct = scenario.accounts[0]
    return make_client(server, acct.username, acct.api_key)


def test_get_summary(world: tuple[Scenario, SimulatorServer], client: SoftLayer.BaseClient) -> None:
    """AccountManager.get_summary returns the account, next-invoice total and pending invoice."""
    scenario, _ = world
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    summary = AccountManager(client).get_summary()
    assert summary["id"] == acct.id
    assert summary["companyName"] == acct.company_name
    assert Decimal(str(summary["nextInvoiceTotalAmount"])) == truth.next_invoice_pre_tax
    assert truth.pending_invoice is not None
    assert Decimal(summary["pendingInvoice"]["invoiceTotalAmount"]) == truth.pending_invoice.total
    assert summary["virtualGuestCount"] == (
        truth.categories["guest_core"].hourly_items + truth.categories["guest_core"].monthly_items
    )


def test_get_invoices(
    world: tuple[Scenario, SimulatorServer], client: SoftLayer.BaseClient
) -> None:
    """get_invoices returns OPEN invoices newest first; with closed and get_all, every one."""
    scenario, _ = world
    truth = scenario.truth(scenario.accounts[0].id)
    manager = AccountManager(client)
    open_only = manager.get_invoices()
    everything = manager.get_invoices(limit=4, closed=True, get_all=True)
    assert [i["id"] for i in open_only] == [
        i.id for i in reversed(truth.invoices) if i.status_code == "OPEN"
    ]
    assert sorted(i["id"] for i in everything) == sorted(i.id for i in truth.invoices)
    by_id = {i.id: i for i in truth.invoices}
    for invoice in everything:
        expected = by_id[invoice["id"]]
        assert Decimal(invoice["invoiceTotalAmount"]) == expected.total
        assert invoice["itemCount"] == expected.item_count
        assert invoice["typeCode"] == expected.type_code
        assert invoice["statusCode"] == expected.status_code


def test_get_billing_items_of_invoice(
    world: tuple[Scenario, SimulatorServer], client: SoftLayer.BaseClient
) -> None:
    """get_billing_items(invoice) pages all top-level items; parent+children add up to the total."""
    scenario, _ = world
    truth = scenario.truth(scenario.accounts[0].id)
    invoice = max(
        (i for i in truth.invoices if i.type_code == "RECURRING"),
        key=lambda i: i.top_level_item_count,
    )
    assert invoice.top_level_item_count > 100  # several pages of 100
    items = AccountManager(client).get_billing_items(invoice.id)
    assert len(items) == invoice.top_level_item_count
    assert len({i["id"] for i in items}) == len(items)
    summed = sum(
        Decimal(i["recurringAfterTaxAmount"])
        + Decimal(i["oneTimeAfterTaxAmount"])
        + sum(
            Decimal(c["recurringAfterTaxAmount"]) + Decimal(c["oneTimeAfterTaxAmount"])
            for c in i["children"]
        )
        for i in items
    )
    assert summed == invoice.total
    assert len(items) + sum(len(i["children"]) for i in items) == invoice.item_count


def test_get_account_billing_items(
    world: tuple[Scenario, SimulatorServer], client: SoftLayer.BaseClient
) -> None:
    """get_account_billing_items lists active items with no cancellation date, in id order."""
    scenario, _ = world
    acct = scenario.accounts[0]
    items = AccountManager(client).get_account_billing_items()
    expected = [acct.item_id(row) for row in range(acct.item_count) if acct.cancel_at[row] == 0]
    assert [i["id"] for i in items] == expected
    assert all(i["cancellationDate"] is None for i in items)
    assert all("orderItem" in i and "location" in i for i in items)


def test_iterating_next_invoice_items(
    world: tuple[Scenario, SimulatorServer], client: SoftLayer.BaseClient
) -> None:
    """client.call(..., iter=True, limit=100) gets every next-invoice item; sums match truth."""
    scenario, server = world
    truth = scenario.truth(scenario.accounts[0].id)
    server.reset_stats()
    items = client.call(
        "Account",
        "getNextInvoiceTopLevelBillingItems",
        mask="mask[id,categoryCode,hourlyFlag,nextInvoiceTotalRecurringAmount]",
        iter=True,
        limit=100,
    )
    assert len(items) == truth.next_invoice_item_count
    pages = -(-truth.next_invoice_item_count // 100)
    assert server.stats.requests["SoftLayer_Account::getNextInvoiceTopLevelBillingItems"] == pages
    amounts: dict[str, Decimal] = {}
    for item in items:
        code = item["categoryCode"]
        amounts[code] = amounts.get(code, Decimal(0)) + Decimal(
            str(item["nextInvoiceTotalRecurringAmount"])
        )
    assert amounts == {code: c.amount for code, c in truth.categories.items()}
    assert sum(amounts.values()) == truth.next_invoice_recurring


def test_bad_key_raises_401(world: tuple[Scenario, SimulatorServer]) -> None:
    """A wrong API key surfaces in the client as SoftLayerAPIError 401 'Invalid API token.'."""
    scenario, server = world
    bad = make_client(server, scenario.accounts[0].username, "0" * 64)
    with pytest.raises(SoftLayer.SoftLayerAPIError) as caught:
        AccountManager(bad).get_summary()
    assert caught.value.faultCode == 401
    assert caught.value.faultString == "Invalid API token."


def test_apikey_user_works(world: tuple[Scenario, SimulatorServer]) -> None:
    """The literal `apikey` username with the IBM Cloud API key authenticates too."""
    scenario, server = world
    acct = scenario.accounts[0]
    iam = make_client(server, "apikey", acct.iam_api_key)
    assert iam.call("Account", "getObject", mask="mask[id]") == {"id": acct.id}


def test_billing_clock_as_the_official_client_sees_it() -> None:
    """billingInfo, hourly accrual and the anniversary's invoice, read with softlayer-python."""
    scenario = Scenario.generate(
        seed=12, accounts=[AccountSpec(items=30, pending_invoice=False)], now=FIXED_NOW
    )
    acct = scenario.accounts[0]
    with ThreadedSimulator(scenario, rate_limit_per_second=None) as server:
        client = make_client(server, acct.username, acct.api_key)
        mask = "mask[billingInfo[anniversaryDayOfMonth,lastBillDate,nextBillDate]]"
        info = client.call("Account", "getObject", mask=mask)["billingInfo"]
        truth = scenario.truth(acct.id)
        assert info["anniversaryDayOfMonth"] == truth.cycle_end.day
        assert info["nextBillDate"] == truth.cycle_end.isoformat()
        items_mask = "mask[id,hourlyFlag,hoursUsed]"
        before = client.call(
            "Account", "getNextInvoiceTopLevelBillingItems", mask=items_mask, iter=True
        )
        scenario.advance(truth.cycle_end - FIXED_NOW - timedelta(hours=2))
        during = client.call(
            "Account", "getNextInvoiceTopLevelBillingItems", mask=items_mask, iter=True
        )
        hours = {row["id"]: int(row["hoursUsed"]) for row in before if row["hourlyFlag"]}
        assert hours
        grown = {row["id"]: int(row["hoursUsed"]) for row in during if row["hourlyFlag"]}
        assert all(grown[i] > hours[i] for i in hours)
        scenario.advance(timedelta(hours=2))
        invoices = AccountManager(client).get_invoices(limit=5)  # OPEN ones, newest first
        assert invoices[0]["typeCode"] == "RECURRING"
        assert invoices[0]["createDate"] == truth.cycle_end.isoformat()
