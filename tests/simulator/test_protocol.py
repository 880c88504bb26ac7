"""The REST protocol: URL shapes, verbs, parameters, paging and the total-items header."""

from __future__ import annotations

import base64
from decimal import Decimal

from exporter.simulator import Scenario, SimulatorServer
from tests.simulator.conftest import Client, basic


async def test_account_getobject_with_and_without_method_and_extension(
    client: Client, scenario: Scenario
) -> None:
    """GET defaults to getObject; `.json` and the method segment are optional; v3 works too."""
    acct = scenario.accounts[0]
    explicit = await client.get("SoftLayer_Account/getObject.json", acct)
    bare = await client.get("SoftLayer_Account", acct)
    with_id = await client.get(f"SoftLayer_Account/{acct.id}.json", acct)
    async with client.session.get(
        client.sim.endpoint.replace("v3.1", "v3") + "SoftLayer_Account/getObject",
        headers=basic(acct),
    ) as r:
        legacy = await r.json()
    assert explicit.status == bare.status == with_id.status == 200
    assert explicit.json == bare.json == with_id.json == legacy
    assert explicit.json["id"] == acct.id
    assert explicit.json["companyName"] == acct.company_name


async def test_other_accounts_id_is_not_found(client: Client, scenario: Scenario) -> None:
    """An init id that is not the caller's account answers 404 ObjectNotFound."""
    answer = await client.get("SoftLayer_Account/1/getObject.json", scenario.accounts[0])
    assert answer.status == 404
    assert answer.json == {
        "error": "Unable to find object with id of '1'.",
        "code": "SoftLayer_Exception_ObjectNotFound",
    }


async def test_unknown_service_and_method(client: Client, scenario: Scenario) -> None:
    """Unknown services and methods answer SoftLayer's error bodies."""
    acct = scenario.accounts[0]
    service = await client.get("SoftLayer_Nope/getObject.json", acct)
    method = await client.get("SoftLayer_Account/getNope.json", acct)
    assert service.status == 404
    assert service.json["error"] == "Service does not exist"
    assert method.status == 500
    assert method.json == {
        "code": "SoftLayer_Exception_Public",
        "error": 'Function ("getNope") is not a valid method for this service.',
    }


async def test_scalar_methods_match_truth(client: Client, scenario: Scenario) -> None:
    """getNextInvoiceTotalAmount is a bare JSON number equal to the truth; so is getBalance."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    total = await client.get("SoftLayer_Account/getNextInvoiceTotalAmount.json", acct)
    balance = await client.get("SoftLayer_Account/getBalance.json", acct)
    assert isinstance(total.json, int | float)
    assert Decimal(total.body.decode()) == truth.next_invoice_pre_tax
    assert Decimal(balance.body.decode()) == truth.balance


async def test_paging_and_total_items_header(client: Client, scenario: Scenario) -> None:
    """resultLimit=offset,limit pages a list and the header always carries the full count."""
    acct = scenario.accounts[0]
    truth = scenario.truth(acct.id)
    seen: list[int] = []
    offset = 0
    while True:
        page = await client.get(
            "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
            acct,
            objectMask="mask[id,nextInvoiceTotalRecurringAmount]",
            resultLimit=f"{offset},7",
        )
        assert page.status == 200
        assert page.total == truth.next_invoice_item_count
        seen.extend(item["id"] for item in page.json)
        if len(page.json) < 7:
            break
        offset += 7
    assert len(seen) == len(set(seen)) == truth.next_invoice_item_count
    assert seen == sorted(seen)


async def test_limit_only_result_limit(client: Client, scenario: Scenario) -> None:
    """resultLimit=N means the first N items."""
    acct = scenario.accounts[0]
    page = await client.get("SoftLayer_Account/getInvoices.json", acct, resultLimit="3")
    assert len(page.json) == 3
    assert page.total == len(scenario.truth(acct.id).invoices)


async def test_bad_result_limit_is_a_clear_error(client: Client, scenario: Scenario) -> None:
    """A resultLimit that is not offset,limit answers 500 BadRequest naming the value."""
    answer = await client.get(
        "SoftLayer_Account/getInvoices.json", scenario.accounts[0], resultLimit="a,b"
    )
    assert answer.status == 500
    assert answer.json["code"] == "SoftLayer_Exception_WebService_BadRequest"
    assert "a,b" in answer.json["error"]


async def test_post_parameters_and_list_header_on_relational_getter(
    client: Client, scenario: Scenario
) -> None:
    """POST with a parameters body works like GET; invoice getters need the invoice id."""
    acct = scenario.accounts[0]
    invoice = scenario.truth(acct.id).invoices[0]
    items = await client.post(
        f"SoftLayer_Billing_Invoice/{invoice.id}/getInvoiceTopLevelItems.json",
        acct,
        {"parameters": []},
        resultLimit="0,2",
    )
    assert items.status == 200
    assert items.total == invoice.top_level_item_count
    missing_id = await client.get("SoftLayer_Billing_Invoice/getObject.json", acct)
    assert missing_id.status == 404
    assert missing_id.json["code"] == "SoftLayer_Exception_ObjectNotFound"


async def test_invoice_of_another_account_is_not_found(client: Client, scenario: Scenario) -> None:
    """Invoices and billing items of another account are invisible (404)."""
    mine, other = scenario.accounts
    foreign = scenario.truth(other.id).invoices[0].id
    answer = await client.get(f"SoftLayer_Billing_Invoice/{foreign}/getObject.json", mine)
    assert answer.status == 404
    assert answer.json["error"] == f"Unable to find object with id of '{foreign}'."


async def test_stats_count_api_calls(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """Every API call is counted per Service::method; reset_stats zeroes the counters."""
    acct = scenario.accounts[0]
    await client.get("SoftLayer_Account/getObject.json", acct)
    await client.get("SoftLayer_Account/getInvoices.json", acct)
    await client.get("SoftLayer_Account/getInvoices.json", acct)
    assert sim.stats.requests["SoftLayer_Account::getInvoices"] == 2
    assert sim.stats.requests["SoftLayer_Account::getObject"] == 1
    assert sim.stats.total == 3
    assert sim.stats.bytes_sent > 0
    assert sim.stats.max_per_second >= 1
    sim.reset_stats()
    assert sim.stats.total == 0
    assert not sim.stats.requests


async def test_getpdf_is_a_base64_json_string_with_escaped_slashes(
    client: Client, scenario: Scenario
) -> None:
    """getPdf returns one JSON string of base64 data, `/` escaped as `\\/` like SoftLayer."""
    acct = scenario.accounts[0]
    invoice = scenario.truth(acct.id).invoices[0]
    answer = await client.get(f"SoftLayer_Billing_Invoice/{invoice.id}/getPdf.json", acct)
    assert answer.status == 200
    assert isinstance(answer.json, str)
    assert base64.b64decode(answer.json).startswith(b"%PDF")
    if "/" in answer.json:
        assert b"\\/" in answer.body


async def test_other_formats_and_verbs(client: Client, scenario: Scenario) -> None:
    """Only JSON is spoken; PUT defaults to editObject, which these services do not offer."""
    acct = scenario.accounts[0]
    xml = await client.get("SoftLayer_Account/getObject.xml", acct)
    assert xml.status == 400
    assert "JSON" in xml.json["error"]
    async with client.session.put(
        client.sim.endpoint + "SoftLayer_Account", headers=basic(acct)
    ) as r:
        assert r.status == 500
        assert (await r.json())["error"] == (
            'Function ("editObject") is not a valid method for this service.'
        )


async def test_headers_like_softlayer(client: Client, scenario: Scenario) -> None:
    """Answers carry SoftLayer's Server/X-Frame-Options/Vary headers and application/json."""
    answer = await client.get("SoftLayer_Account/getObject.json", scenario.accounts[0])
    assert answer.headers["Server"] == "Apache"
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.total is None  # only lists carry the total-items header
