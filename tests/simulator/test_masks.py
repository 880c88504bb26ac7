"""objectMask: every accepted syntax, SoftLayer's projection rule, and its errors."""

from __future__ import annotations

import json

import pytest

from exporter.simulator import Scenario
from exporter.simulator.masks import MaskError, parse_mask
from tests.simulator.conftest import Client


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("", {}),
        ("mask[]", {}),
        ("mask[id]", {"id": {}}),
        ("mask[id,companyName]", {"id": {}, "companyName": {}}),
        ("[id,companyName]", {"id": {}, "companyName": {}}),
        ("mask(SoftLayer_Account)[id]", {"id": {}}),
        ("filteredMask[id]", {"id": {}}),
        (
            "mask[id,pendingInvoice[id,invoiceTotalAmount],invoices]",
            {"id": {}, "pendingInvoice": {"id": {}, "invoiceTotalAmount": {}}, "invoices": {}},
        ),
        (
            "mask[\n    nextInvoiceTotalAmount,\n    pendingInvoice[invoiceTotalAmount]\n]",
            {"nextInvoiceTotalAmount": {}, "pendingInvoice": {"invoiceTotalAmount": {}}},
        ),
        ("mask[pendingInvoice.invoiceTotalAmount]", {"pendingInvoice": {"invoiceTotalAmount": {}}}),
        ("mask.pendingInvoice.invoiceTotalAmount", {"pendingInvoice": {"invoiceTotalAmount": {}}}),
        ("id;createDate;typeCode", {"id": {}, "createDate": {}, "typeCode": {}}),
        (
            "datacenter;operatingSystem.passwords;networkComponents",
            {"datacenter": {}, "operatingSystem": {"passwords": {}}, "networkComponents": {}},
        ),
        ("mask[resource(SoftLayer_Hardware)[id]]", {"resource": {"id": {}}}),
        ("mask[a.b, a.c]", {"a": {"b": {}, "c": {}}}),
    ],
)
def test_parse_accepted_forms(text: str | None, expected: dict[str, object]) -> None:
    """Every mask syntax SoftLayer documents parses into the same property tree."""
    assert parse_mask(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("mask[id", "Expected ']', got 'end of input'"),
        ("mask[id,]", "Expected PROPERTY, got ']'"),
        ("mask[,id]", "Expected PROPERTY, got ','"),
        ("mask[id]]", "Expected end of mask, got ']'"),
        ("mask[1id]", "Expected PROPERTY, got '1'"),
        ("mask(SoftLayer_Account[id]", "Expected ')'"),
        ("mask id", "Expected '['"),
    ],
)
def test_parse_errors_name_the_position(text: str, fragment: str) -> None:
    """Syntax errors are SoftLayer_Exception_Common_Parser with line/column."""
    with pytest.raises(MaskError) as caught:
        parse_mask(text)
    assert caught.value.code == "SoftLayer_Exception_Common_Parser"
    assert caught.value.message.startswith("Error on line 1 at column ")
    assert fragment in caught.value.message


def test_parse_error_on_a_later_line() -> None:
    """A multi-line mask reports the line of the error."""
    with pytest.raises(MaskError) as caught:
        parse_mask("mask[\n  id,\n  ,x]")
    assert caught.value.message.startswith("Error on line 3 at column 3")


def test_duplicate_property_is_an_error() -> None:
    """Naming a property twice at one level fails like SoftLayer ('already been defined')."""
    with pytest.raises(MaskError) as caught:
        parse_mask("mask[note,note]")
    assert caught.value.code == "SoftLayer_Exception_WebService_ObjectMask"
    assert caught.value.message == "Property 'note' has already been defined."


async def test_local_property_drops_other_locals(client: Client, scenario: Scenario) -> None:
    """Selecting a local property returns only the selected locals at that level."""
    acct = scenario.accounts[0]
    answer = await client.get(
        "SoftLayer_Account/getObject.json", acct, objectMask="mask[id,nextInvoiceTotalAmount]"
    )
    assert set(answer.json) == {"id", "nextInvoiceTotalAmount"}


async def test_relational_only_mask_keeps_all_locals(client: Client, scenario: Scenario) -> None:
    """A mask naming only relational properties returns every local plus those."""
    acct = scenario.accounts[0]
    plain = await client.get("SoftLayer_Account/getObject.json", acct)
    masked = await client.get(
        "SoftLayer_Account/getObject.json", acct, objectMask="mask[nextInvoiceTotalAmount]"
    )
    assert set(masked.json) == set(plain.json) | {"nextInvoiceTotalAmount"}
    assert "nextInvoiceTotalAmount" not in plain.json
    assert "pendingInvoice" not in plain.json


async def test_nested_selection_applies_per_level(client: Client, scenario: Scenario) -> None:
    """Nested masks project each level independently."""
    acct = scenario.accounts[0]
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        acct,
        objectMask="mask[id,pendingInvoice[id,invoiceTotalAmount],latestRecurringInvoice]",
    )
    assert set(answer.json) == {"id", "pendingInvoice", "latestRecurringInvoice"}
    assert set(answer.json["pendingInvoice"]) == {"id", "invoiceTotalAmount"}
    assert "typeCode" in answer.json["latestRecurringInvoice"]
    assert "invoiceTotalAmount" not in answer.json["latestRecurringInvoice"]


async def test_legacy_masks_over_http(client: Client, scenario: Scenario) -> None:
    """Legacy semicolon and dotted masks work over the wire."""
    acct = scenario.accounts[0]
    semicolon = await client.get(
        "SoftLayer_Account/getObject.json", acct, objectMask="id;companyName"
    )
    dotted = await client.get(
        "SoftLayer_Account/getObject.json", acct, objectMask="mask.pendingInvoice.typeCode"
    )
    assert semicolon.json == {"id": acct.id, "companyName": acct.company_name}
    assert set(dotted.json["pendingInvoice"]) == {"typeCode"}
    assert "id" in dotted.json  # only a relational property named at the root


async def test_unknown_property_is_http_500(client: Client, scenario: Scenario) -> None:
    """An unknown property, at any depth, answers 500 SoftLayer_Exception_WebService_ObjectMask."""
    acct = scenario.accounts[0]
    root = await client.get("SoftLayer_Account/getObject.json", acct, objectMask="mask[powerState]")
    nested = await client.get(
        "SoftLayer_Account/getInvoices.json", acct, objectMask="mask[items[bogus]]"
    )
    assert root.status == nested.status == 500
    assert root.json == {
        "error": "Property 'powerState' not valid for 'SoftLayer_Account'.",
        "code": "SoftLayer_Exception_WebService_ObjectMask",
    }
    assert (
        nested.json["error"] == "Property 'bogus' not valid for 'SoftLayer_Billing_Invoice_Item'."
    )


async def test_sub_mask_on_a_scalar_is_an_error(client: Client, scenario: Scenario) -> None:
    """A sub-selection under a non-relational property is rejected with HTTP 500."""
    answer = await client.get(
        "SoftLayer_Account/getObject.json", scenario.accounts[0], objectMask="mask[id[x]]"
    )
    assert answer.status == 500
    assert answer.json["code"] == "SoftLayer_Exception_WebService_ObjectMask"


async def test_mask_syntax_error_over_http(client: Client, scenario: Scenario) -> None:
    """A syntax error answers 500 SoftLayer_Exception_Common_Parser."""
    answer = await client.get(
        "SoftLayer_Account/getObject.json", scenario.accounts[0], objectMask="mask[id"
    )
    assert answer.status == 500
    assert answer.json["code"] == "SoftLayer_Exception_Common_Parser"


async def test_relational_absent_when_none(client: Client, scenario: Scenario) -> None:
    """A masked relation with no value is omitted (no pendingInvoice without one)."""
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        scenario.accounts[1],
        objectMask="mask[id,pendingInvoice,latestRecurringPendingInvoice]",
    )
    assert answer.json == {"id": scenario.accounts[1].id}


async def test_mask_on_list_and_children(client: Client, scenario: Scenario) -> None:
    """Masks apply to each list element, including relational children lists."""
    acct = scenario.accounts[0]
    answer = await client.get(
        "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
        acct,
        objectMask="mask[id,children[id,parentId]]",
        resultLimit="0,20",
    )
    for item in answer.json:
        assert set(item) == {"id", "children"}
        for child in item["children"]:
            assert child == {"id": child["id"], "parentId": item["id"]}
    assert any(item["children"] for item in answer.json)


async def test_filtered_mask_filters_relations(client: Client, scenario: Scenario) -> None:
    """With filteredMask the objectFilter applies to masked list relations of getObject."""
    acct = scenario.accounts[0]
    every = scenario.truth(acct.id).invoices
    object_filter = json.dumps({"invoices": {"typeCode": {"operation": "RECURRING"}}})
    filtered = await client.get(
        "SoftLayer_Account/getObject.json",
        acct,
        objectMask="filteredMask[invoices[id,typeCode]]",
        objectFilter=object_filter,
    )
    plain = await client.get(
        "SoftLayer_Account/getObject.json",
        acct,
        objectMask="mask[invoices[id,typeCode]]",
        objectFilter=object_filter,
    )
    assert [i["id"] for i in filtered.json["invoices"]] == [
        i.id for i in every if i.type_code == "RECURRING"
    ]
    assert len(plain.json["invoices"]) == len(every)
