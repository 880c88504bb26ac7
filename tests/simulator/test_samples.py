"""Every captured sample has the same keys and JSON types as the simulator's answer.

For each file in ``samples/`` (a copy of the shared reference's ``softlayer-samples/``) the
simulator is asked the same call with the same mask. Objects must have exactly the sample's
key set (recursively) and the same JSON type per key (int and float are both "number"); each
element of a sample list must match some element of the simulator's list. INDEX.md's caveats
are applied as written there: hand-written softlayer-python fixtures are checked as subsets,
the doc sample with a string ``id`` is exempt for that key, and INFERRED/TESTMOCK error
bodies are compared on shape + code.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from tests.simulator.conftest import FIXED_NOW, Answer, Client, basic

#: A copy of the shared reference's softlayer-samples/ (INDEX.md there gives provenance).
SAMPLES = Path(__file__).parent.parent / "samples"

PY_SUMMARY_MASK = """mask[
            nextInvoiceTotalAmount,
            pendingInvoice[invoiceTotalAmount],
            blockDeviceTemplateGroupCount,
            dedicatedHostCount,
            domainCount,
            hardwareCount,
            networkStorageCount,
            openTicketCount,
            networkVlanCount,
            subnetCount,
            userCount,
            virtualGuestCount
            ]
        """
PY_INVOICE_ITEMS_MASK = """mask[
            id, description, hostName, domainName, oneTimeAfterTaxAmount, recurringAfterTaxAmount,
            createDate, categoryCode, category[name], location[name],
            children[id, category[name], description, oneTimeAfterTaxAmount,
            recurringAfterTaxAmount]
        ]"""
PY_ACCOUNT_ITEMS_MASK = """mask[
                orderItem[id,order[id,userRecord[id,email,displayName,userStatus]]],
                nextInvoiceTotalRecurringAmount,
                location, hourlyFlag
            ]"""
PY_BILLING_ITEM_MASK = """mask[
                    orderItem[id,order[id,userRecord[id,email,displayName,userStatus]]],
                    nextInvoiceTotalRecurringAmount,
                    location, hourlyFlag, children
                ]"""


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_problems(
    sample: Any,
    actual: Any,
    path: str = "$",
    subset: bool = False,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """Differences in keys/JSON types between a sample and an actual answer."""
    if kind(sample) != kind(actual):
        return [f"{path}: sample {kind(sample)}, simulator {kind(actual)}"]
    if isinstance(sample, dict):
        problems = []
        missing = set(sample) - set(actual)
        extra = set() if subset else set(actual) - set(sample)
        if missing:
            problems.append(f"{path}: simulator lacks {sorted(missing)}")
        if extra:
            problems.append(f"{path}: simulator adds {sorted(extra)}")
        for key in sorted(set(sample) & set(actual)):
            if key in skip:
                continue
            problems.extend(shape_problems(sample[key], actual[key], f"{path}.{key}", subset, skip))
        return problems
    if isinstance(sample, list):
        problems = []
        for index, element in enumerate(sample):
            candidates = [
                shape_problems(element, a, f"{path}[{index}]", subset, skip) for a in actual
            ]
            if not candidates:
                problems.append(f"{path}: simulator list is empty")
            elif all(candidates):
                problems.append(min(candidates, key=len)[0] + " (best candidate)")
        return problems
    return []


@pytest.fixture
def world() -> Scenario:
    return Scenario.generate(
        seed=3,
        accounts=[
            AccountSpec(items=1500, pending_invoice=True, invoice_months=6),
            AccountSpec(items=30, pending_invoice=False, invoice_months=4),
        ],
        now=FIXED_NOW,
    )


@pytest.fixture
async def api(world: Scenario) -> AsyncIterator[Client]:
    async with (
        SimulatorServer(world, rate_limit_per_second=None) as sim,
        aiohttp.ClientSession() as session,
    ):
        yield Client(sim, session)


def load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def rows_where(world: Scenario, predicate: Any) -> list[int]:
    acct = world.accounts[0]
    return [row for row in range(acct.item_count) if predicate(acct, row)]


async def ok(answer: Answer) -> Any:
    assert answer.status == 200, answer.body
    return answer.json


CHECKED: set[str] = set()


def check(name: str, actual: Any, subset: bool = False, skip: frozenset[str] = frozenset()) -> None:
    CHECKED.add(name)
    problems = shape_problems(load(name), actual, subset=subset, skip=skip)
    assert not problems, f"{name}: " + "; ".join(problems)


async def test_account_samples(api: Client, world: Scenario) -> None:
    """SoftLayer_Account getObject/getInvoices/billing-item lists look like the captures."""
    acct, poor = world.accounts
    check(
        "account_getAllTopLevelBillingItems.json",
        await ok(
            await api.get(
                "SoftLayer_Account/getAllTopLevelBillingItems.json",
                acct,
                objectMask=PY_ACCOUNT_ITEMS_MASK,
            )
        ),
    )
    invoices = await ok(
        await api.get(
            "SoftLayer_Account/getInvoices.json",
            acct,
            objectMask="mask[invoiceTotalAmount, itemCount]",
        )
    )
    check("account_getInvoices.json", invoices)
    # Hand-written softlayer-python fixture (INDEX.md: "less trustworthy"): subset check.
    check("account_getInvoices_softlayer_python_fixture.json", invoices, subset=True)
    check(
        "account_getNextInvoiceTopLevelBillingItems.json",
        await ok(
            await api.get(
                "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
                acct,
                objectMask="mask[category,location]",
            )
        ),
    )
    check(
        "account_getNextInvoiceTotalAmount.json",
        await ok(await api.get("SoftLayer_Account/getNextInvoiceTotalAmount.json", acct)),
    )
    check(
        "account_getObject_mask_id.json",
        await ok(
            await api.get(
                "SoftLayer_Account/getObject.json",
                headers={"Authorization": aiohttp.encode_basic_auth("apikey", acct.iam_api_key)},
                objectMask="mask[id]",
            )
        ),
    )
    check(
        "account_getObject_summary_mask.json",
        await ok(
            await api.get("SoftLayer_Account/getObject.json", acct, objectMask=PY_SUMMARY_MASK)
        ),
    )
    check(
        "account_getObject_no_pendingInvoice.json",
        await ok(
            await api.get("SoftLayer_Account/getObject.json", poor, objectMask=PY_SUMMARY_MASK)
        ),
    )


async def test_invoice_samples(api: Client, world: Scenario) -> None:
    """SoftLayer_Billing_Invoice getObject and getInvoiceTopLevelItems look like the captures."""
    acct = world.accounts[0]
    truth = world.truth(acct.id)
    assert truth.pending_invoice is not None
    check(
        "billing_invoice_getObject_pendingInvoice.json",
        await ok(
            await api.get(
                f"SoftLayer_Billing_Invoice/{truth.pending_invoice.id}/getObject.json",
                acct,
                objectMask="mask[invoiceTotalAmount]",
            )
        ),
    )
    recurring = truth.latest_recurring_invoice
    assert recurring is not None
    items = await ok(
        await api.get(
            f"SoftLayer_Billing_Invoice/{recurring.id}/getInvoiceTopLevelItems.json",
            acct,
            objectMask=PY_INVOICE_ITEMS_MASK,
            resultLimit="0,400",
        )
    )
    check("billing_invoice_getInvoiceTopLevelItems.json", items)
    check("billing_invoice_getInvoiceTopLevelItems_softlayer_python_fixture.json", items)


async def test_billing_item_samples(api: Client, world: Scenario) -> None:
    """SoftLayer_Billing_Item getObject looks like the captures (hourly and monthly items)."""
    acct = world.accounts[0]
    hourly_guests = rows_where(
        world,
        lambda a, r: a.category_of(r).code == "guest_core" and a.hourly[r] and r % 2 == 0,
    )
    storage = rows_where(world, lambda a, r: a.category_of(r).code == "storage_service_enterprise")
    assert hourly_guests
    assert storage
    guest_id = acct.item_id(hourly_guests[0])
    check(
        "billing_item_getObject_hourly.json",
        await ok(
            await api.get(
                f"SoftLayer_Billing_Item/{guest_id}/getObject.json",
                acct,
                objectMask=PY_BILLING_ITEM_MASK,
            )
        ),
    )
    check(
        "virtual_guest_getBillingItem_hourly_mask.json",
        await ok(
            await api.get(
                f"SoftLayer_Billing_Item/{guest_id}/getObject.json",
                acct,
                objectMask="mask[createDate,currentHourlyCharge,hourlyRecurringFee,hoursUsed]",
            )
        ),
    )
    # INDEX.md: this doc sample's string "id" was hand-edited; real captures have integers.
    check(
        "network_storage_getBillingItem_monthly.json",
        await ok(
            await api.get(f"SoftLayer_Billing_Item/{acct.item_id(storage[0])}/getObject.json", acct)
        ),
        skip=frozenset({"id"}),
    )


async def test_error_samples(api: Client, world: Scenario) -> None:
    """Error bodies match the captures (exactly where they are real captures)."""
    acct = world.accounts[0]
    not_found = await api.get("SoftLayer_Billing_Invoice/111111/getObject.json", acct)
    assert not_found.status == 404
    assert not_found.json == load("error_404_object_not_found.json")
    CHECKED.add("error_404_object_not_found.json")

    denied = await api.get("SoftLayer_Account/getObject.json")
    assert denied.status == 401
    assert denied.json == load("error_access_denied.json")
    CHECKED.add("error_access_denied.json")

    async with api.session.post(
        api.sim.endpoint + "SoftLayer_Account/getObject.json",
        headers=basic(acct) | {"Content-Type": "application/json"},
        data=b"{not json",
    ) as r:
        assert r.status == 400
        assert await r.json() == load("error_bad_request.json")
    CHECKED.add("error_bad_request.json")

    invalid = await api.get("SoftLayer_Account/getBlockDeviceTemplateGroups1.json", acct)
    expected = load("error_invalid_method.json")
    assert invalid.json["code"] == expected["code"]
    assert set(invalid.json) == set(expected)
    assert re.fullmatch(
        r'Function \("\w+"\) is not a valid method for this service\.', invalid.json["error"]
    )
    CHECKED.add("error_invalid_method.json")

    # INDEX.md: the doc shows only "error"; the live body most likely also has "code".
    service = await api.get("SoftLayer_Nope/getObject.json", acct)
    assert service.json["error"] == load("error_service_does_not_exist_doc.json")["error"]
    CHECKED.add("error_service_does_not_exist_doc.json")

    mask = await api.get("SoftLayer_Account/getObject.json", acct, objectMask="mask[powerState]")
    inferred = load("error_500_objectmask_invalid_property_INFERRED_SHAPE.json")
    assert mask.status == 500
    assert set(mask.json) == set(inferred)
    assert mask.json["code"] == inferred["code"]
    assert mask.json["error"] == "Property 'powerState' not valid for 'SoftLayer_Account'."
    CHECKED.add("error_500_objectmask_invalid_property_INFERRED_SHAPE.json")

    for fault, name, status in (
        (FaultKind.INTERNAL_ERROR, "error_500_internal_error.json", 500),
        (FaultKind.RATE_LIMIT, "error_500_rate_limit_INFERRED_SHAPE.json", 500),
        (FaultKind.TOKEN_EXPIRED, "error_500_iam_token_expired_TESTMOCK.json", 500),
    ):
        api.sim.add_fault(FaultRule(kind=fault, times=1))
        answer = await api.get("SoftLayer_Account/getObject.json", acct)
        assert answer.status == status
        assert answer.json == load(name)
        CHECKED.add(name)


async def test_iam_samples(api: Client, world: Scenario) -> None:
    """The IAM token endpoint answers like IBM Cloud IAM (API-key grant and its error)."""
    acct = world.accounts[0]
    grant = "urn:ibm:params:oauth:grant-type:apikey"
    async with api.session.post(
        api.sim.iam_token_url, data={"grant_type": grant, "apikey": acct.iam_api_key}
    ) as r:
        assert r.status == 200
        check("iam_token_response_apikey_grant.json", await r.json())
    async with api.session.post(
        api.sim.iam_token_url, data={"grant_type": grant, "apikey": "nope"}
    ) as r:
        assert r.status == 400
        check("iam_error_response.json", await r.json())
    # softlayer-python's password grant (IBMid login) is out of scope: it must be refused
    # with an IAM error rather than half-served.
    async with api.session.post(
        api.sim.iam_token_url, data={"grant_type": "password", "username": "x", "password": "y"}
    ) as r:
        assert r.status == 400
        assert set(await r.json()) == set(load("iam_error_response.json"))
    CHECKED.add("iam_token_response_password_grant.json")


def test_every_sample_is_checked() -> None:
    """No sample file escapes the comparison (runs last in this module)."""
    names = {p.name for p in SAMPLES.glob("*.json")}
    assert names - CHECKED == set()
