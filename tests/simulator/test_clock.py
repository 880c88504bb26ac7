"""The billing clock: hourly accrual, the anniversary's invoice, payment terms, on the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from exporter.simulator import AccountSpec, Scenario, SimClock, SimulatorServer
from exporter.simulator.clock import parse_duration
from exporter.simulator.scenario import CARD_SETTLE_SECONDS
from tests.simulator.conftest import FIXED_NOW, Client

ITEM_MASK = "mask[id,hourlyFlag,hoursUsed,hourlyRecurringFee,nextInvoiceTotalRecurringAmount]"
HOUR = 3600


class FakeReal:
    """A real-time source the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sim_clock_speed_advance_and_direction() -> None:
    """Speed scales real time, advance adds, and the clock never runs backwards."""
    real = FakeReal()
    clock = SimClock(1_000.0, real=real)
    real.now += 50
    assert clock.now() == 1_000.0  # speed 0 stands still
    clock.set_speed(3600)
    real.now += 2
    assert clock.time() == 1_000.0 + 7200
    assert clock.advance(30) == 8230.0
    clock.set_speed(0)
    real.now += 1000
    assert clock.now() == 8230.0
    assert clock.advance_to(9000.0) == 9000.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance_to(10.0)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match=">= 0"):
        clock.set_speed(-2)
    assert parse_duration("1d12h") == 36 * HOUR
    assert parse_duration("90s") == 90
    for bad in ("", "12", "3 days", "1x"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def hourly_row(scenario: Scenario) -> int:
    """An hourly item with children on account 0 (its rate covers them too)."""
    acct = scenario.accounts[0]
    return next(r for r in acct.hourly_rows if acct.child_count(r) and not acct.cancel_at[r])


async def item(client: Client, scenario: Scenario, row: int) -> Any:
    acct = scenario.accounts[0]
    answer = await client.get(
        f"SoftLayer_Billing_Item/{acct.item_id(row)}/getObject.json", acct, objectMask=ITEM_MASK
    )
    return answer.json


async def test_hourly_items_accrue_every_simulated_hour(client: Client, scenario: Scenario) -> None:
    """hoursUsed and the month-to-date amount (children included) grow with the clock;
    monthly items stay at their whole month; truth and API agree at each step."""
    acct = scenario.accounts[0]
    row = hourly_row(scenario)
    monthly = next(r for r in range(acct.item_count) if not acct.hourly[r])
    rate = Decimal(acct.hourly_rate(row)) / 1000
    before = await item(client, scenario, row)
    monthly_before = await item(client, scenario, monthly)
    truth_before = scenario.truth(acct.id)
    scenario.advance(timedelta(minutes=59))  # FIXED_NOW is on the hour: nothing yet
    assert (await item(client, scenario, row)) == before
    scenario.advance(timedelta(hours=5, minutes=1))
    after = await item(client, scenario, row)
    assert int(after["hoursUsed"]) == int(before["hoursUsed"]) + 6
    grown = Decimal(str(after["nextInvoiceTotalRecurringAmount"])) - Decimal(
        str(before["nextInvoiceTotalRecurringAmount"])
    )
    assert grown == rate * 6
    assert Decimal(str(after["nextInvoiceTotalRecurringAmount"])) == rate * int(after["hoursUsed"])
    assert await item(client, scenario, monthly) == monthly_before
    truth = scenario.truth(acct.id)
    rates = sum(c.hourly_rate for c in truth.categories.values())
    assert truth.next_invoice_recurring == truth_before.next_invoice_recurring + rates * 6
    total = await client.get("SoftLayer_Account/getNextInvoiceTotalAmount.json", acct)
    assert Decimal(total.body.decode()) == truth.next_invoice_pre_tax


async def test_anniversary_cuts_the_invoice_and_restarts_hourly_items(
    client: Client, scenario: Scenario
) -> None:
    """On nextBillDate the RECURRING invoice is cut OPEN with the cycle's hourly usage and the
    new month of monthly items; hourly items restart at 0; billingInfo moves one month."""
    acct = scenario.accounts[0]
    row = hourly_row(scenario)
    anniversary = scenario.truth(acct.id).cycle_end
    scenario.advance_to(anniversary - timedelta(hours=1))
    scheduled = [r for r in range(acct.item_count) if acct.cancel_at[r]]
    last_hour = scenario.truth(acct.id)
    rates = sum(c.hourly_rate for c in last_hour.categories.values())
    # What those items would bill at the anniversary: one more hour for an hourly one.
    ending = {r: Decimal(acct.rec[r] + acct.hourly_rate(r)) / 1000 for r in scheduled}
    scenario.advance(timedelta(hours=1))
    truth = scenario.truth(acct.id)
    cut = truth.latest_recurring_invoice
    assert cut is not None
    assert cut.created == anniversary
    assert (cut.type_code, cut.status_code, cut.closed) == ("RECURRING", "OPEN", None)
    assert truth.pending_invoice == cut
    # The invoice bills what the forecast said an hour before, plus the last hour's accrual,
    # minus the items scheduled to end with the cycle.
    assert cut.recurring == last_hour.next_invoice_recurring + rates - sum(ending.values())
    assert (await item(client, scenario, row))["hoursUsed"] == "0"
    assert (truth.cycle_start, truth.cycle_end.month) == (anniversary, anniversary.month % 12 + 1)
    assert truth.next_invoice_recurring == sum(
        (c.monthly_amount for c in truth.categories.values()), Decimal(0)
    )
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        acct,
        objectMask="mask[billingInfo[anniversaryDayOfMonth,lastBillDate,nextBillDate,"
        "paymentTerms,currentBillingCycle],latestRecurringInvoice[id,statusCode],"
        "pendingInvoice[id,invoiceTotalAmount]]",
    )
    info = answer.json["billingInfo"]
    assert info["anniversaryDayOfMonth"] == anniversary.day
    assert datetime.fromisoformat(info["lastBillDate"]) == anniversary
    assert datetime.fromisoformat(info["nextBillDate"]) == truth.cycle_end
    # Paid by card: no terms, sent as null like the softlayer-cli getObject captures.
    assert info["paymentTerms"] is None
    assert datetime.fromisoformat(info["currentBillingCycle"]["previousCycleEndDate"]) == (
        anniversary
    )
    assert answer.json["latestRecurringInvoice"] == {"id": cut.id, "statusCode": "OPEN"}
    assert Decimal(answer.json["pendingInvoice"]["invoiceTotalAmount"]) == cut.total
    # The invoice's lines keep the hours at the cut while the new cycle accrues.
    lines = f"SoftLayer_Billing_Invoice/{cut.id}/getInvoiceTopLevelItems.json"
    mask = "mask[totalRecurringAmount]"
    first = await client.get(lines, acct, objectMask=mask)
    assert sum(Decimal(x["totalRecurringAmount"]) for x in first.json) == cut.recurring
    assert len(first.json) == cut.top_level_item_count
    scenario.advance(timedelta(hours=3))
    assert (await client.get(lines, acct, objectMask=mask)).json == first.json


@pytest.mark.parametrize(
    ("payment", "settles_after", "status", "paid"),
    [
        ("card", CARD_SETTLE_SECONDS, "CLOSED", True),
        ("invoice", 10 * 86_400, "CLOSED", True),
        ("card_failed", CARD_SETTLE_SECONDS, "CLOSED_FAILED", False),
    ],
)
def test_payment_terms_close_the_invoice(
    payment: str, settles_after: int, status: str, paid: bool
) -> None:
    """The cut invoice stays OPEN until the account's terms, then closes: paid (CLOSED) or
    not (CLOSED_FAILED, the balance still owed)."""
    spec = AccountSpec(items=20, payment=payment, payment_terms_days=10, pending_invoice=False)
    scenario = Scenario.generate(seed=3, accounts=[spec], now=FIXED_NOW)
    acct = scenario.accounts[0]
    anniversary = scenario.truth(acct.id).cycle_end
    scenario.advance_to(anniversary)
    opened = scenario.truth(acct.id)
    cut = opened.pending_invoice
    assert cut is not None
    assert cut.created == anniversary
    scenario.advance(settles_after - 1)
    assert scenario.truth(acct.id).pending_invoice == cut
    scenario.advance(1)
    closed = scenario.truth(acct.id)
    invoice = next(i for i in closed.invoices if i.id == cut.id)
    assert closed.pending_invoice is None
    assert invoice.status_code == status
    assert invoice.closed == anniversary + timedelta(seconds=settles_after)
    assert invoice.payments == (cut.total if paid else 0)
    assert closed.balance == opened.balance - invoice.payments


def test_a_year_of_anniversaries_one_invoice_each() -> None:
    """Twelve months of billing clock: twelve recurring invoices, one per anniversary."""
    scenario = Scenario.generate(
        seed=5, accounts=[AccountSpec(items=15, pending_invoice=False)], now=FIXED_NOW
    )
    acct = scenario.accounts[0]
    before = len(scenario.truth(acct.id).invoices)
    first_cut = scenario.truth(acct.id).cycle_end
    scenario.advance(timedelta(days=366))
    truth = scenario.truth(acct.id)
    cuts = truth.invoices[before:]
    assert len(cuts) == 12
    assert all(inv.type_code == "RECURRING" and inv.status_code == "CLOSED" for inv in cuts)
    assert [inv.created.day for inv in cuts] == [first_cut.day] * 12
    assert truth.cycle_start == cuts[-1].created


async def test_mutations_between_pages_of_one_walk(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """A page hook cancels an item right after the 2nd page: page 2 shows the old list,
    page 3 the new one (shifted by one row)."""
    acct = scenario.accounts[0]
    method = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
    victim = acct.item_id(5)
    hook = sim.mutate_after_pages(
        2,
        lambda sc: sc.cancel_billing_item(acct.id, victim),
        method=method,
        account_id=acct.id,
    )
    path = "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
    pages = []
    for offset in (0, 10, 20):
        answer = await client.get(path, acct, objectMask="mask[id]", resultLimit=f"{offset},10")
        pages.append((answer.total, [row["id"] for row in answer.json]))
    await hook.fired.wait()
    assert hook.seen == 2
    assert sim.state.page_hooks == []
    assert pages[2][0] is not None  # the simulator sends the total header
    assert pages[0][0] == pages[1][0] == pages[2][0] + 1
    assert victim in pages[0][1]
    assert pages[2][1][0] == acct.item_id(21)  # the row at offset 20 moved one place up


async def test_page_cap_with_and_without_the_total_header(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """A capped server answers fewer rows than resultLimit asks, with or without the total."""
    acct = scenario.accounts[0]
    path = "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
    sim.set_page_cap(7)
    capped = await client.get(path, acct, objectMask="mask[id]", resultLimit="0,50")
    assert (len(capped.json), capped.total) == (7, acct.item_count)
    unlimited = await client.get(path, acct, objectMask="mask[id]")
    assert len(unlimited.json) == 7
    sim.set_page_cap(7, total_header=False)
    bare = await client.get(path, acct, objectMask="mask[id]", resultLimit="14,50")
    assert (len(bare.json), bare.total) == (7, None)
    assert bare.json[0]["id"] == acct.item_id(14)
    scalar = await client.get("SoftLayer_Account/getNextInvoiceTotalAmount.json", acct)
    assert scalar.status == 200
    sim.set_page_cap(None)
    assert len((await client.get(path, acct, resultLimit="0,50")).json) == 50
    with pytest.raises(ValueError, match=">= 1"):
        sim.set_page_cap(0)


def test_generation_is_unchanged_by_the_clock() -> None:
    """A scenario whose clock never moves is exactly the generated one (no drift, no events)."""
    one = Scenario.generate(seed=11, accounts=[AccountSpec(items=30)], now=FIXED_NOW)
    two = Scenario.generate(seed=11, accounts=[AccountSpec(items=30)], now=FIXED_NOW)
    acct = one.accounts[0].id
    assert one.truth(acct) == two.truth(acct)
    assert one.current_time() == int(FIXED_NOW.timestamp())
    assert one.clock.speed == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        one.advance_to(datetime(2027, 1, 1))
    assert one.advance_to(datetime(2020, 1, 1, tzinfo=UTC)) == FIXED_NOW  # never backwards
