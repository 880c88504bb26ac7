"""Billing terms on the wire: currency and exchange rates, discounts, platform services, status,
and the breakdown truth (datacenters, items, invoice categories) that exporters are checked
against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest

from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.simulator.breakdown import datacenters, invoice_categories, ranked_items
from exporter.simulator.scenario import discount_of, exchange_rate
from tests.simulator.conftest import FIXED_NOW, Client

RATE = "rate,effectiveDate,expirationDate,fundingCurrency[keyName],localCurrency[keyName,name]"
BILLING_MASK = (
    "mask[id,accountStatusId,accountStatus[id,name],nextInvoiceTotalAmount,"
    "nextInvoiceTotalRecurringAmount,nextInvoiceTotalOneTimeAmount,"
    "nextInvoiceTotalRecurringAmountBeforeAccountDiscount,"
    "nextInvoiceRecurringAmountEligibleForAccountDiscount,"
    "nextInvoicePlatformServicesTotalAmount,"
    "billingInfo[anniversaryDayOfMonth,paymentTerms,percentDiscountRecurring,"
    f"percentDiscountOnetime,currency[id,keyName,name,currentExchangeRate[{RATE}]]]]"
)


@pytest.fixture
def terms() -> Scenario:
    """A euro account paying on 30-day terms with a 10 % recurring discount and platform
    services, and a plain USD card account."""
    return Scenario.generate(
        seed=5,
        accounts=[
            AccountSpec(
                items=80,
                invoice_months=6,
                currency="EUR",
                payment="invoice",
                payment_terms_days=30,
                recurring_discount_percent=10,
                one_time_discount_percent=5,
                platform_services=Decimal("123.45"),
            ),
            AccountSpec(items=30, invoice_months=4),
        ],
        now=FIXED_NOW,
    )


@pytest.fixture
async def terms_client(terms: Scenario) -> AsyncIterator[Client]:
    async with (
        SimulatorServer(terms, rate_limit_per_second=None) as server,
        aiohttp.ClientSession() as session,
    ):
        yield Client(server, session)


async def test_currency_discount_status_and_platform_services(
    terms: Scenario, terms_client: Client
) -> None:
    """getObject shows the euro currency with this month's rate, the discounts applied to
    the account totals only, platform services on the total, terms and the Active status."""
    acct = terms.accounts[0]
    body = (
        await terms_client.get("SoftLayer_Account/getObject.json", acct, objectMask=BILLING_MASK)
    ).json
    truth = terms.truth(acct.id)
    billing = truth.billing
    assert billing is not None
    assert body["accountStatusId"] == 1001
    assert body["accountStatus"] == {"id": 1001, "name": "Active"}
    info = body["billingInfo"]
    assert info["paymentTerms"] == 30
    assert (info["percentDiscountRecurring"], info["percentDiscountOnetime"]) == (10, 5)
    currency = info["currency"]
    assert (currency["keyName"], currency["name"]) == ("EUR", "Euro")
    rate = currency["currentExchangeRate"]
    assert isinstance(rate["rate"], str)  # a decimal, sent as a string
    assert billing.exchange_rate is not None
    assert Decimal(rate["rate"]) == billing.exchange_rate.rate
    assert rate["fundingCurrency"] == {"keyName": "USD"}
    assert rate["localCurrency"] == {"keyName": "EUR", "name": "Euro"}
    effective = datetime.fromisoformat(rate["effectiveDate"])
    assert effective <= FIXED_NOW < datetime.fromisoformat(rate["expirationDate"])

    # Items carry no discount; the account totals do.
    items = (
        await terms_client.get(
            "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
            acct,
            objectMask="mask[id,nextInvoiceTotalRecurringAmount]",
        )
    ).json
    item_sum = sum((Decimal(str(i["nextInvoiceTotalRecurringAmount"])) for i in items), Decimal(0))
    before = Decimal(str(body["nextInvoiceTotalRecurringAmountBeforeAccountDiscount"]))
    assert before == item_sum == billing.next_invoice_recurring_before_discount
    assert Decimal(str(body["nextInvoiceRecurringAmountEligibleForAccountDiscount"])) == before
    recurring = Decimal(str(body["nextInvoiceTotalRecurringAmount"]))
    assert recurring == truth.next_invoice_recurring
    before_mills = int(before * 1000)
    assert recurring == Decimal(before_mills - discount_of(before_mills, 10)) / 1000
    platform = Decimal(str(body["nextInvoicePlatformServicesTotalAmount"]))
    assert platform == Decimal("123.45") == billing.next_invoice_platform_services
    one_time = Decimal(str(body["nextInvoiceTotalOneTimeAmount"]))
    assert Decimal(str(body["nextInvoiceTotalAmount"])) == recurring + one_time + platform
    assert truth.next_invoice_pre_tax == recurring + one_time + platform


async def test_usd_card_account_has_no_rate_no_terms_no_discount(
    terms: Scenario, terms_client: Client
) -> None:
    """A USD account: currency USD without an exchange rate, null terms (card), no discount,
    and no localCurrencyExchangeRate on its invoices."""
    acct = terms.accounts[1]
    body = (
        await terms_client.get("SoftLayer_Account/getObject.json", acct, objectMask=BILLING_MASK)
    ).json
    info = body["billingInfo"]
    assert info["paymentTerms"] is None
    assert (info["percentDiscountRecurring"], info["percentDiscountOnetime"]) == (0, 0)
    assert info["currency"] == {"id": 1, "keyName": "USD", "name": "US Dollar"}
    assert body["nextInvoicePlatformServicesTotalAmount"] == 0
    assert (
        body["nextInvoiceTotalRecurringAmountBeforeAccountDiscount"]
        == body["nextInvoiceTotalRecurringAmount"]
    )
    invoices = (
        await terms_client.get(
            "SoftLayer_Account/getInvoices.json",
            acct,
            objectMask=f"mask[id,localCurrencyExchangeRate[{RATE}]]",
        )
    ).json
    assert invoices
    assert all("localCurrencyExchangeRate" not in inv for inv in invoices)


async def test_invoices_carry_the_rate_of_their_month_and_the_account_terms(
    terms: Scenario, terms_client: Client
) -> None:
    """Each euro invoice carries the exchange rate of its month; recurring invoices carry the
    discount and the platform services in their totals, not on their lines."""
    acct = terms.accounts[0]
    truth = terms.truth(acct.id)
    invoices = (
        await terms_client.get(
            "SoftLayer_Account/getInvoices.json",
            acct,
            objectMask=f"mask[id,typeCode,createDate,invoiceTotalRecurringAmount,"
            f"invoiceTotalPreTaxAmount,invoiceTotalOneTimeAmount,localCurrencyExchangeRate[{RATE}]]",
        )
    ).json
    rates = set()
    for wire, expected in zip(invoices, truth.invoices, strict=True):
        assert wire["id"] == expected.id
        assert expected.exchange_rate is not None
        assert Decimal(wire["localCurrencyExchangeRate"]["rate"]) == expected.exchange_rate.rate
        assert wire["localCurrencyExchangeRate"]["localCurrency"]["keyName"] == "EUR"
        rate = exchange_rate("EUR", int(datetime.fromisoformat(wire["createDate"]).timestamp()))
        assert rate == expected.exchange_rate
        rates.add(expected.exchange_rate.rate)
        if wire["typeCode"] != "RECURRING":
            continue
        lines = invoice_categories(terms, acct.id, wire["id"])
        line_recurring = sum((c.recurring for c in lines.values()), Decimal(0))
        mills = int(line_recurring * 1000)
        assert Decimal(wire["invoiceTotalRecurringAmount"]) == (
            Decimal(mills - discount_of(mills, 10)) / 1000
        )
        assert Decimal(wire["invoiceTotalPreTaxAmount"]) == (
            Decimal(wire["invoiceTotalRecurringAmount"])
            + Decimal(wire["invoiceTotalOneTimeAmount"])
            + Decimal("123.45")
        )
    assert len(rates) > 1, "rates drift from month to month"


async def test_invoice_top_level_items_add_up_to_the_category_truth(
    scenario: Scenario, client: Client
) -> None:
    """getInvoiceTopLevelItems, paged, summed per categoryCode (children included through
    totalRecurringAmount/totalOneTimeAmount), equals the category truth and the invoice's own
    recurring and one-time totals (no discount on this account)."""
    acct = scenario.accounts[0]
    latest = scenario.truth(acct.id).latest_recurring_invoice
    assert latest is not None
    sums: dict[str, list[Decimal]] = {}
    offset = 0
    while True:
        page = await client.get(
            f"SoftLayer_Billing_Invoice/{latest.id}/getInvoiceTopLevelItems.json",
            acct,
            objectMask="mask[id,categoryCode,totalRecurringAmount,totalOneTimeAmount]",
            resultLimit=f"{offset},25",
        )
        for line in page.json:
            entry = sums.setdefault(line["categoryCode"], [Decimal(0), Decimal(0)])
            entry[0] += Decimal(line["totalRecurringAmount"])
            entry[1] += Decimal(line["totalOneTimeAmount"])
        offset += 25
        if offset >= (page.total or 0):
            break
    truth = invoice_categories(scenario, acct.id, latest.id)
    assert {code: (r, o) for code, (r, o) in sums.items()} == {
        code: (c.recurring, c.one_time) for code, c in truth.items()
    }
    assert sum((c.recurring for c in truth.values()), Decimal(0)) == latest.recurring
    assert sum((c.one_time for c in truth.values()), Decimal(0)) == latest.one_time
    assert sum(c.lines for c in truth.values()) == latest.top_level_item_count


async def test_items_name_their_datacenter_host_and_amount(
    scenario: Scenario, client: Client
) -> None:
    """The next invoice's items on the wire carry the location, hostName and description the
    breakdown truth ranks and sums; every datacenter and category adds up to the same."""
    acct = scenario.accounts[0]
    wire = (
        await client.get(
            "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
            acct,
            objectMask="mask[id,categoryCode,hostName,domainName,description,hourlyFlag,"
            "nextInvoiceTotalRecurringAmount,location[name]]",
        )
    ).json
    ranked = ranked_items(scenario, acct.id)
    by_id = {item.item_id: item for item in ranked}
    assert len(wire) == len(ranked)
    for raw in wire:
        item = by_id[raw["id"]]
        assert raw["categoryCode"] == item.category
        assert raw["location"]["name"] == item.datacenter
        assert raw.get("hostName") == item.host
        assert raw.get("domainName") == item.domain
        assert raw["description"] == item.description
        assert Decimal(str(raw["nextInvoiceTotalRecurringAmount"])) == item.amount
        assert raw["hourlyFlag"] is item.hourly
    amounts = [item.amount for item in ranked]
    assert amounts == sorted(amounts, reverse=True)
    truth = scenario.truth(acct.id)
    by_datacenter = datacenters(scenario, acct.id)
    total = sum((c.amount for c in truth.categories.values()), Decimal(0))
    assert sum((d.amount for d in by_datacenter.values()), Decimal(0)) == total
    assert sum(d.items for d in by_datacenter.values()) == truth.next_invoice_item_count


def test_bad_billing_terms_are_refused() -> None:
    """An unknown currency, a discount outside 0..100 or negative platform services fail at
    generation with a message naming the field."""
    for spec, word in (
        ({"currency": "XXX"}, "currency"),
        ({"recurring_discount_percent": 101}, "recurring_discount_percent"),
        ({"one_time_discount_percent": -1}, "one_time_discount_percent"),
        ({"platform_services": Decimal("-1")}, "platform_services"),
        ({"platform_services": Decimal("0.0001")}, "platform_services"),
    ):
        with pytest.raises(ValueError, match=word):
            AccountSpec(**spec)


def test_the_anniversary_cut_applies_the_account_terms(terms: Scenario) -> None:
    """The recurring invoice the billing clock cuts carries the discount and the platform
    services, like the next invoice's totals said."""
    acct = terms.accounts[0]
    before = terms.truth(acct.id)
    terms.advance_to(before.cycle_end + timedelta(minutes=1))
    cut = terms.truth(acct.id).latest_recurring_invoice
    assert cut is not None
    assert cut.created == before.cycle_end
    lines = invoice_categories(terms, acct.id, cut.id)
    mills = int(sum((c.recurring for c in lines.values()), Decimal(0)) * 1000)
    assert cut.recurring == Decimal(mills - discount_of(mills, 10)) / 1000
    assert cut.pre_tax == cut.recurring + cut.one_time + Decimal("123.45")
