"""Scenario mutations drive a billing cycle and show up on the next request."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from exporter.simulator import Scenario
from tests.simulator.conftest import Client


async def pending_total(client: Client, scenario: Scenario, index: int = 0) -> dict[str, Any]:
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        scenario.accounts[index],
        objectMask="mask[id,balance,pendingInvoice[id,invoiceTotalAmount,statusCode]]",
    )
    account: dict[str, Any] = answer.json  # getObject answers a JSON object
    return account


async def test_pay_pending_invoice(client: Client, scenario: Scenario) -> None:
    """Paying closes the pending invoice, drops pendingInvoice and lowers the balance."""
    acct = scenario.accounts[0]
    before = scenario.truth(acct.id)
    assert before.pending_invoice is not None
    invoice_id = scenario.pay_pending_invoice(acct.id)
    after = scenario.truth(acct.id)
    account = await pending_total(client, scenario)
    invoice = await client.get(f"SoftLayer_Billing_Invoice/{invoice_id}/getObject.json", acct)
    assert invoice_id == before.pending_invoice.id
    assert after.pending_invoice is None
    assert "pendingInvoice" not in account
    assert Decimal(str(account["balance"])) == before.balance - before.pending_invoice.total
    assert invoice.json["statusCode"] == "CLOSED"
    assert invoice.json["closedDate"] is not None
    assert "endingBalance" in invoice.json
    paid = next(i for i in after.invoices if i.id == invoice_id)
    assert paid.payments == paid.total
    with pytest.raises(ValueError, match="no pending"):
        scenario.pay_pending_invoice(acct.id)


async def test_open_pending_invoice(client: Client, scenario: Scenario) -> None:
    """Opening a pending invoice makes it the account's pendingInvoice with that total."""
    acct = scenario.accounts[1]
    before = scenario.truth(acct.id)
    invoice_id = scenario.open_pending_invoice(acct.id, amount=Decimal("5000"))
    account = await pending_total(client, scenario, 1)
    listed = await client.get("SoftLayer_Account/getInvoices.json", acct)
    items = await client.get(
        f"SoftLayer_Billing_Invoice/{invoice_id}/getInvoiceTopLevelItems.json", acct
    )
    assert account["pendingInvoice"] == {
        "id": invoice_id,
        "invoiceTotalAmount": "5000",
        "statusCode": "OPEN",
    }
    assert Decimal(str(account["balance"])) == before.balance + 5000
    assert listed.json[-1]["id"] == invoice_id
    assert sum(Decimal(i["recurringAfterTaxAmount"]) for i in items.json) == 5000
    assert scenario.truth(acct.id).latest_recurring_invoice is not None
    with pytest.raises(ValueError, match=">= 0"):
        scenario.open_pending_invoice(acct.id, amount=Decimal(-1))
    with pytest.raises(ValueError, match="3 decimal places"):
        scenario.open_pending_invoice(acct.id, amount=Decimal("0.0001"))


async def test_billing_cycle(client: Client, scenario: Scenario) -> None:
    """Pay, then open a new pending invoice: the pending invoice changes identity and amount."""
    acct = scenario.accounts[0]
    scenario.pay_pending_invoice(acct.id)
    new_id = scenario.open_pending_invoice(acct.id, amount=Decimal("1234.56"))
    account = await pending_total(client, scenario)
    assert account["pendingInvoice"]["id"] == new_id
    assert account["pendingInvoice"]["invoiceTotalAmount"] == "1234.56"


async def test_add_billing_item(client: Client, scenario: Scenario) -> None:
    """An added item is on the next invoice: totals, counts and its category grow by its fee."""
    acct = scenario.accounts[0]
    before = scenario.truth(acct.id)
    item_id = scenario.add_billing_item(
        acct.id, category_code="guest_core", recurring_fee=Decimal("12.5"), hourly=True
    )
    after = scenario.truth(acct.id)
    item = await client.get(
        f"SoftLayer_Billing_Item/{item_id}/getObject.json",
        acct,
        objectMask="mask[hourlyFlag,nextInvoiceTotalRecurringAmount,children]",
    )
    total = await client.get("SoftLayer_Account/getNextInvoiceTotalAmount.json", acct)
    assert after.next_invoice_pre_tax == before.next_invoice_pre_tax + Decimal("12.5")
    assert after.next_invoice_item_count == before.next_invoice_item_count + 1
    assert (
        after.categories["guest_core"].hourly_items
        == before.categories["guest_core"].hourly_items + 1
    )
    assert after.categories["guest_core"].amount == before.categories[
        "guest_core"
    ].amount + Decimal("12.5")
    assert Decimal(total.body.decode()) == after.next_invoice_pre_tax
    assert item.json["id"] == item_id
    assert item.json["hourlyFlag"] is True
    assert item.json["nextInvoiceTotalRecurringAmount"] == 12.5
    assert item.json["hourlyRecurringFee"] == "12.5"
    assert item.json["children"] == []
    monthly = scenario.add_billing_item(acct.id, "network_vlan", Decimal("25"))
    assert scenario.truth(acct.id).next_invoice_recurring == after.next_invoice_recurring + 25
    assert monthly != item_id


async def test_cancel_billing_item(client: Client, scenario: Scenario) -> None:
    """A cancelled item leaves the next invoice but stays in getAllTopLevelBillingItems."""
    acct = scenario.accounts[0]
    before = scenario.truth(acct.id)
    item_id = acct.item_id(3)
    amount = Decimal(
        str(
            (
                await client.get(
                    f"SoftLayer_Billing_Item/{item_id}/getObject.json",
                    acct,
                    objectMask="mask[nextInvoiceTotalRecurringAmount]",
                )
            ).json["nextInvoiceTotalRecurringAmount"]
        )
    )
    scenario.cancel_billing_item(acct.id, item_id)
    after = scenario.truth(acct.id)
    next_items = await client.get(
        "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json", acct, objectMask="mask[id]"
    )
    all_items = await client.get(
        "SoftLayer_Account/getAllTopLevelBillingItems.json",
        acct,
        objectMask="mask[id,cancellationDate]",
    )
    assert after.next_invoice_item_count == before.next_invoice_item_count - 1
    assert after.next_invoice_recurring == before.next_invoice_recurring - amount
    assert item_id not in {i["id"] for i in next_items.json}
    assert next_items.total == after.next_invoice_item_count
    cancelled = next(i for i in all_items.json if i["id"] == item_id)
    assert cancelled["cancellationDate"] is not None
    assert all_items.total == before.all_top_level_item_count


async def test_filtered_paging_sees_mutations(client: Client, scenario: Scenario) -> None:
    """A filtered list answered from the row cache still reflects a mutation at once."""
    acct = scenario.accounts[0]
    query = {
        "objectFilter": json.dumps(
            {"allTopLevelBillingItems": {"cancellationDate": {"operation": "is null"}}}
        ),
        "objectMask": "mask[id]",
        "resultLimit": "0,5",
    }
    path = "SoftLayer_Account/getAllTopLevelBillingItems.json"
    first = await client.get(path, acct, headers=None, **query)
    again = await client.get(path, acct, headers=None, **query)
    scenario.cancel_billing_item(acct.id, first.json[0]["id"])
    after = await client.get(path, acct, headers=None, **query)
    assert first.total == again.total
    assert after.total == (first.total or 0) - 1
    assert after.json[0]["id"] == first.json[1]["id"]


def test_mutation_errors(scenario: Scenario) -> None:
    """Bad mutations name what is wrong."""
    acct = scenario.accounts[0]
    with pytest.raises(ValueError, match="unknown category_code 'teleporter'"):
        scenario.add_billing_item(acct.id, "teleporter", Decimal(1))
    with pytest.raises(ValueError, match=">= 0"):
        scenario.add_billing_item(acct.id, "guest_core", Decimal(-1))
    with pytest.raises(ValueError, match="no top-level billing item 1"):
        scenario.cancel_billing_item(acct.id, 1)
    child = acct.item_id(0, 1) if acct.child_count(0) else acct.item_id(acct.item_count + 5)
    with pytest.raises(ValueError, match="no top-level billing item"):
        scenario.cancel_billing_item(acct.id, child)
    scenario.cancel_billing_item(acct.id, acct.item_id(0))
    with pytest.raises(ValueError, match="already cancelled"):
        scenario.cancel_billing_item(acct.id, acct.item_id(0))
    with pytest.raises(KeyError, match="no simulated account"):
        scenario.pay_pending_invoice(1)
