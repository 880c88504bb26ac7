"""objectFilter: every operator, relational paths, ordering, and failing open."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from exporter.simulator import Scenario
from tests.simulator.conftest import Client


def flt(root: str, body: dict[str, Any]) -> str:
    return json.dumps({root: body})


async def invoices(
    client: Client, scenario: Scenario, body: dict[str, Any] | None, **q: str
) -> Any:
    query = dict(q)
    query.setdefault("objectMask", "mask[invoiceTotalAmount]")
    if body is not None:
        query["objectFilter"] = flt("invoices", body)
    # headers named: a query dict could not then be taken for them
    answer = await client.get(
        "SoftLayer_Account/getInvoices.json", scenario.accounts[0], headers=None, **query
    )
    assert answer.status == 200
    assert answer.total == len(answer.json)
    return answer.json


def truth_invoices(scenario: Scenario) -> list[Any]:
    return scenario.truth(scenario.accounts[0].id).invoices


async def test_equality_and_not_equal(client: Client, scenario: Scenario) -> None:
    """A bare value is equality; `!=` excludes."""
    every = truth_invoices(scenario)
    opened = await invoices(client, scenario, {"statusCode": {"operation": "OPEN"}})
    not_recurring = await invoices(client, scenario, {"typeCode": {"operation": "!= RECURRING"}})
    assert {i["id"] for i in opened} == {i.id for i in every if i.status_code == "OPEN"}
    assert opened
    assert {i["id"] for i in not_recurring} == {i.id for i in every if i.type_code != "RECURRING"}


async def test_integer_operation_is_equality(client: Client, scenario: Scenario) -> None:
    """`{"operation": 123}` matches the id numerically."""
    target = truth_invoices(scenario)[2].id
    found = await invoices(client, scenario, {"id": {"operation": target}})
    assert [i["id"] for i in found] == [target]


@pytest.mark.parametrize(
    ("op", "check"),
    [
        (">", lambda v, t: v > t),
        (">=", lambda v, t: v >= t),
        ("<", lambda v, t: v < t),
        ("<=", lambda v, t: v <= t),
    ],
)
async def test_numeric_comparisons(client: Client, scenario: Scenario, op: str, check: Any) -> None:
    """`>`, `>=`, `<`, `<=` compare numbers numerically (ids and decimal strings)."""
    every = truth_invoices(scenario)
    pivot = every[len(every) // 2].id
    found = await invoices(client, scenario, {"id": {"operation": f"{op} {pivot}"}})
    assert {i["id"] for i in found} == {i.id for i in every if check(i.id, pivot)}
    amount = await invoices(client, scenario, {"invoiceTotalAmount": {"operation": f"{op} 500"}})
    assert {i["id"] for i in amount} == {i.id for i in every if check(i.total, 500)}


@pytest.mark.parametrize(
    ("op", "value", "check"),
    [
        ("*=", "CHARGE", lambda s: "charge" in s.lower()),
        ("^=", "one", lambda s: s.lower().startswith("one")),
        ("$=", "credit", lambda s: s.lower().endswith("credit")),
        ("_=", "recurring", lambda s: s.lower() == "recurring"),
        ("!*=", "CREDIT", lambda s: "credit" not in s.lower()),
        ("~", "^(NEW|REFUND)$", lambda s: s in ("NEW", "REFUND")),
        ("!~", "R", lambda s: "R" not in s),
    ],
)
async def test_string_operators(
    client: Client, scenario: Scenario, op: str, value: str, check: Any
) -> None:
    """Contains, starts, ends, case-insensitive equals, negations and regex on strings."""
    every = truth_invoices(scenario)
    found = await invoices(client, scenario, {"typeCode": {"operation": f"{op} {value}"}})
    expected = {i.id for i in every if check(i.type_code)}
    assert expected
    assert len(expected) < len(every)
    assert {i["id"] for i in found} == expected


async def test_null_operators(client: Client, scenario: Scenario) -> None:
    """`is null` / `not null` test explicit nulls (closedDate of open invoices)."""
    every = truth_invoices(scenario)
    null = await invoices(client, scenario, {"closedDate": {"operation": "is null"}})
    not_null = await invoices(client, scenario, {"closedDate": {"operation": "not null"}})
    assert {i["id"] for i in null} == {i.id for i in every if i.closed is None}
    assert len(null) + len(not_null) == len(every)


async def test_in_operator(client: Client, scenario: Scenario) -> None:
    """`in` with a data option matches any listed value."""
    every = truth_invoices(scenario)
    found = await invoices(
        client,
        scenario,
        {
            "typeCode": {
                "operation": "in",
                "options": [{"name": "data", "value": ["CREDIT", "REFUND"]}],
            }
        },
    )
    assert {i["id"] for i in found} == {i.id for i in every if i.type_code in ("CREDIT", "REFUND")}


async def test_date_operators(client: Client, scenario: Scenario) -> None:
    """betweenDate, greaterThanDate and lessThanDate use MM/DD/YYYY HH:MM:SS values."""
    every = truth_invoices(scenario)
    start, end = every[3].created, every[-3].created

    def fmt(moment: datetime) -> str:
        return moment.strftime("%m/%d/%Y %H:%M:%S")

    between = await invoices(
        client,
        scenario,
        {
            "createDate": {
                "operation": "betweenDate",
                "options": [
                    {"name": "startDate", "value": [fmt(start)]},
                    {"name": "endDate", "value": [fmt(end)]},
                ],
            }
        },
    )
    after = await invoices(
        client,
        scenario,
        {
            "createDate": {
                "operation": "greaterThanDate",
                "options": [{"name": "date", "value": [fmt(start)]}],
            }
        },
    )
    before = await invoices(
        client,
        scenario,
        {
            "createDate": {
                "operation": "lessThanDate",
                "options": [{"name": "date", "value": [fmt(end)]}],
            }
        },
    )
    assert {i["id"] for i in between} == {i.id for i in every if start <= i.created <= end}
    assert {i["id"] for i in after} == {i.id for i in every if i.created > start}
    assert {i["id"] for i in before} == {i.id for i in every if i.created < end}


async def test_order_by_desc_and_sort_order(client: Client, scenario: Scenario) -> None:
    """orderBy sorts; several keys are applied by ascending sortOrder priority."""
    every = truth_invoices(scenario)
    newest_first = await invoices(
        client,
        scenario,
        {"createDate": {"operation": "orderBy", "options": [{"name": "sort", "value": ["DESC"]}]}},
    )
    assert [i["id"] for i in newest_first] == [
        i.id for i in sorted(every, key=lambda i: i.created, reverse=True)
    ]
    two_keys = await invoices(
        client,
        scenario,
        {
            "typeCode": {
                "operation": "orderBy",
                "options": [
                    {"name": "sort", "value": ["ASC"]},
                    {"name": "sortOrder", "value": [1]},
                ],
            },
            "id": {
                "operation": "orderBy",
                "options": [
                    {"name": "sort", "value": ["DESC"]},
                    {"name": "sortOrder", "value": [2]},
                ],
            },
        },
    )
    expected = sorted(sorted(every, key=lambda i: -i.id), key=lambda i: i.type_code)
    assert [i["id"] for i in two_keys] == [i.id for i in expected]


async def test_filter_and_paging_compose(client: Client, scenario: Scenario) -> None:
    """The header counts filtered items; resultLimit pages the filtered, sorted list."""
    every = truth_invoices(scenario)
    body = {
        "typeCode": {"operation": "RECURRING"},
        "id": {"operation": "orderBy", "options": [{"name": "sort", "value": ["DESC"]}]},
    }
    answer = await client.get(
        "SoftLayer_Account/getInvoices.json",
        scenario.accounts[0],
        objectFilter=flt("invoices", body),
        resultLimit="1,2",
    )
    recurring = sorted((i.id for i in every if i.type_code == "RECURRING"), reverse=True)
    assert answer.total == len(recurring)
    assert [i["id"] for i in answer.json] == recurring[1:3]


async def test_relational_path(client: Client, scenario: Scenario) -> None:
    """Nested objects walk relations: category.categoryCode on billing items."""
    acct = scenario.accounts[0]
    answer = await client.get(
        "SoftLayer_Account/getAllTopLevelBillingItems.json",
        acct,
        objectFilter=flt(
            "allTopLevelBillingItems", {"category": {"categoryCode": {"operation": "guest_core"}}}
        ),
        objectMask="mask[id,categoryCode]",
    )
    truth = scenario.truth(acct.id).categories["guest_core"]
    assert answer.total == truth.hourly_items + truth.monthly_items
    assert {i["categoryCode"] for i in answer.json} == {"guest_core"}


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        json.dumps(["invoices"]),
        json.dumps({"somethingElse": {"statusCode": {"operation": "OPEN"}}}),
        json.dumps({"invoices": {"bogusProperty": {"operation": "OPEN"}}}),
        json.dumps(
            {
                "invoices": {
                    "createDate": {
                        "operation": "greaterThanDate",
                        "options": [{"name": "date", "value": "01/01/2020"}],
                    }
                }
            }
        ),
        json.dumps(
            {
                "invoices": {
                    "createDate": {
                        "operation": "betweenDate",
                        "options": [{"name": "startDate", "value": ["not a date"]}],
                    }
                }
            }
        ),
        json.dumps(
            {
                "invoices": {
                    "id": {
                        "operation": "orderBy",
                        "options": [{"name": "sort", "value": ["SIDEWAYS"]}],
                    }
                }
            }
        ),
        json.dumps({"invoices": {"statusCode": "OPEN"}}),
        json.dumps({"invoices": {"statusCode": {"operation": ["OPEN"]}}}),
        json.dumps({"invoices": {"typeCode": {"operation": "~ ("}}}),
        json.dumps({"invoices": {"items": {"id": {"operation": 1}}}}),
    ],
)
async def test_malformed_or_misrooted_filter_is_ignored(
    client: Client, scenario: Scenario, raw: str
) -> None:
    """A filter SoftLayer cannot use is ignored: all invoices come back, in default order."""
    answer = await client.get(
        "SoftLayer_Account/getInvoices.json", scenario.accounts[0], objectFilter=raw
    )
    every = truth_invoices(scenario)
    assert answer.status == 200
    assert answer.total == len(every)
    assert [i["id"] for i in answer.json] == [i.id for i in every]


async def test_softlayer_python_root_id_order_is_accepted(
    client: Client, scenario: Scenario
) -> None:
    """softlayer-python's root-level {"id": orderBy} on getInvoiceTopLevelItems is harmless."""
    acct = scenario.accounts[0]
    invoice = scenario.truth(acct.id).latest_recurring_invoice
    assert invoice is not None
    answer = await client.get(
        f"SoftLayer_Billing_Invoice/{invoice.id}/getInvoiceTopLevelItems.json",
        acct,
        objectFilter=json.dumps(
            {"id": {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}}
        ),
        resultLimit="0,100",
    )
    assert answer.status == 200
    assert answer.total == invoice.top_level_item_count


async def test_relative_sysdate_filter(client: Client, scenario: Scenario) -> None:
    """`> sysdate - N` compares dates against the scenario clock minus N days."""
    every = truth_invoices(scenario)
    found = await invoices(client, scenario, {"createDate": {"operation": "> sysdate - 60"}})
    now = scenario.current_time()
    expected = {i.id for i in every if i.created.timestamp() > now - 60 * 86400}
    assert expected
    assert len(expected) < len(every)
    assert {i["id"] for i in found} == expected


async def test_or_and_operations(client: Client, scenario: Scenario) -> None:
    """`or`/`and` combine data values that are themselves operations."""
    every = truth_invoices(scenario)
    either = await invoices(
        client,
        scenario,
        {
            "typeCode": {
                "operation": "or",
                "options": [{"name": "data", "value": ["NEW", "^= REF"]}],
            }
        },
    )
    pivot = every[len(every) // 2].id
    both = await invoices(
        client,
        scenario,
        {
            "id": {
                "operation": "and",
                "options": [{"name": "data", "value": [f"> {every[1].id}", f"<= {pivot}"]}],
            }
        },
    )
    assert {i["id"] for i in either} == {i.id for i in every if i.type_code in ("NEW", "REFUND")}
    assert {i["id"] for i in both} == {i.id for i in every if every[1].id < i.id <= pivot}
