"""The /__admin/ HTTP API mirrors the in-process controls, with clear errors."""

from __future__ import annotations

from typing import Any

from exporter.simulator import Scenario, SimulatorServer
from tests.simulator.conftest import Client


async def admin(
    client: Client, method: str, path: str, payload: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": payload}
    async with client.session.request(method, client.sim.admin_url + path, **kwargs) as r:
        return r.status, await r.json()


async def test_index_lists_accounts_and_state(client: Client, scenario: Scenario) -> None:
    """GET /__admin/ lists accounts with credentials, stats, faults, latency and rate limit."""
    status, body = await admin(client, "GET", "")
    assert status == 200
    assert [a["id"] for a in body["accounts"]] == [a.id for a in scenario.accounts]
    assert body["accounts"][0]["api_key"] == scenario.accounts[0].api_key
    assert body["faults"] == []
    assert body["stats"]["total"] == 0


async def test_faults_over_http(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """Faults can be added, listed, removed and cleared; they act on API calls."""
    status, created = await admin(
        client,
        "POST",
        "faults",
        {"kind": "internal_error", "method": "SoftLayer_Account::getInvoices", "times": 1},
    )
    assert status == 201
    _, listed = await admin(client, "GET", "faults")
    assert listed[0]["id"] == created["id"]
    assert listed[0]["kind"] == "internal_error"
    answer = await client.get("SoftLayer_Account/getInvoices.json", scenario.accounts[0])
    assert answer.status == 500
    _, second = await admin(client, "POST", "faults", {"kind": "hang"})
    assert (await admin(client, "DELETE", f"faults/{second['id']}"))[0] == 200
    await admin(client, "POST", "faults", {"kind": "hang"})
    assert (await admin(client, "DELETE", "faults"))[0] == 200
    assert sim.state.faults.items() == []
    assert (await admin(client, "DELETE", f"faults/{second['id']}"))[0] == 404


async def test_bad_admin_input_is_400(client: Client, scenario: Scenario) -> None:
    """Bad bodies and ids answer 400 with an error naming the problem; unknown accounts 404."""
    cases = [
        ("POST", "faults", {"kind": "explode"}, "unknown fault kind"),
        ("POST", "faults", {"kind": "hang", "times": 0}, "times"),
        ("POST", "latency", {"seconds": -1}, "seconds"),
        ("POST", "rate-limit", {"per_second": "lots"}, "per_second"),
        ("DELETE", "faults/abc", None, "fault id"),
        ("POST", "accounts/abc/pay-pending-invoice", None, "account id"),
        (
            "POST",
            f"accounts/{scenario.accounts[0].id}/billing-items",
            {"category_code": "x"},
            "recurring_fee",
        ),
    ]
    for method, path, payload, fragment in cases:
        status, body = await admin(client, method, path, payload)
        assert status == 400, (path, body)
        assert fragment in body["error"], (path, body)
    status, body = await admin(client, "POST", "faults", raw=b"{nope")
    assert status == 400
    assert "not JSON" in body["error"]
    status, body = await admin(client, "GET", "accounts/1/truth")
    assert status == 404
    assert "no simulated account with id 1" in body["error"]


async def test_controls_over_http(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """Latency, rate limit, stats reset and token expiry are reachable over HTTP."""
    assert (await admin(client, "POST", "latency", {"seconds": 0.01}))[1] == {
        "latency_seconds": 0.01
    }
    assert sim.state.latency_seconds == 0.01
    assert (await admin(client, "POST", "rate-limit", {"per_second": 7}))[0] == 200
    assert sim.state.rate_limit_per_second == 7
    await client.get("SoftLayer_Account/getObject.json", scenario.accounts[0])
    _, stats = await admin(client, "GET", "stats")
    assert stats["requests"] == {"SoftLayer_Account::getObject": 1}
    await admin(client, "POST", "stats/reset")
    assert (await admin(client, "GET", "stats"))[1]["total"] == 0
    assert (await admin(client, "POST", "tokens/expire"))[1] == {"expired": 0}


async def test_mutations_over_http(client: Client, scenario: Scenario) -> None:
    """Truth, paying, opening invoices and adding/cancelling items work over HTTP."""
    acct = scenario.accounts[0]
    base = f"accounts/{acct.id}/"
    _, truth = await admin(client, "GET", base + "truth")
    assert truth["account_id"] == acct.id
    assert truth["pending_invoice"]["status_code"] == "OPEN"
    status, paid = await admin(client, "POST", base + "pay-pending-invoice")
    assert status == 200
    assert paid["invoice_id"] == truth["pending_invoice"]["id"]
    status, _ = await admin(client, "POST", base + "pay-pending-invoice")
    assert status == 400
    status, opened = await admin(client, "POST", base + "open-pending-invoice", {"amount": "99.5"})
    assert status == 201
    _, truth = await admin(client, "GET", base + "truth")
    assert truth["pending_invoice"] == {
        **truth["pending_invoice"],
        "id": opened["invoice_id"],
        "total": "99.5",
    }
    status, item = await admin(
        client, "POST", base + "billing-items", {"category_code": "server", "recurring_fee": "100"}
    )
    assert status == 201
    _, after = await admin(client, "GET", base + "truth")
    assert after["next_invoice_item_count"] == truth["next_invoice_item_count"] + 1
    assert (await admin(client, "DELETE", base + f"billing-items/{item['id']}"))[0] == 200
    _, final = await admin(client, "GET", base + "truth")
    assert final["next_invoice_pre_tax"] == truth["next_invoice_pre_tax"]
    status, body = await admin(client, "POST", base + "open-pending-invoice", {"amount": "lots"})
    assert status == 400
    assert "amount" in body["error"]


async def test_billing_clock_over_http(client: Client, scenario: Scenario) -> None:
    """GET/POST /__admin/clock reads, advances (events run) and sets the speed; bad input 400."""
    acct = scenario.accounts[0]
    status, clock = await admin(client, "GET", "clock")
    assert status == 200
    assert (clock["epoch"], clock["speed"]) == (scenario.current_time(), 0.0)
    end = scenario.truth(acct.id).cycle_end
    status, moved = await admin(client, "POST", "clock", {"to": end.isoformat()})
    assert status == 200
    assert moved["epoch"] == int(end.timestamp())
    _, truth = await admin(client, "GET", f"accounts/{acct.id}/truth")
    assert truth["latest_recurring_invoice"]["created"] == end.isoformat()
    status, moved = await admin(client, "POST", "clock", {"advance": "1d12h", "speed": 60})
    assert (status, moved["epoch"], moved["speed"]) == (200, int(end.timestamp()) + 129_600, 60)
    assert scenario.clock.speed == 60
    status, moved = await admin(client, "POST", "clock", {"advance": 30, "speed": 0})
    assert moved["speed"] == 0
    for payload, fragment in (
        ({}, "speed"),
        ({"speed": -1}, "speed"),
        ({"advance": "soon"}, "duration"),
        ({"advance": -5}, ">= 0"),
        ({"to": "yesterday"}, "ISO-8601"),
        ({"to": "2020-01-01T00:00:00"}, "UTC offset"),
        ({"to": "2020-01-01T00:00:00+00:00"}, "forward"),
        ({"tick": 1}, "speed"),
    ):
        status, body = await admin(client, "POST", "clock", payload)
        assert status == 400, payload
        assert fragment in body["error"], (payload, body)


async def test_page_cap_and_page_hooks_over_http(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """The page cap and page hooks are set over HTTP and act on list calls."""
    acct = scenario.accounts[0]
    status, cap = await admin(client, "POST", "page-cap", {"max_items": 4, "total_header": False})
    assert (status, cap) == (200, {"max_items": 4, "total_header": False})
    path = "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
    answer = await client.get(path, acct, objectMask="mask[id]", resultLimit="0,100")
    assert (len(answer.json), answer.total) == (4, None)
    assert (await admin(client, "POST", "page-cap", {"max_items": None}))[0] == 200
    assert sim.state.page_cap is None
    victim = acct.item_id(2)
    hook = {
        "after_pages": 1,
        "account_id": acct.id,
        "method": "SoftLayer_Account::getNextInvoiceTopLevelBillingItems",
        "action": {"cancel_item": victim},
    }
    status, created = await admin(client, "POST", "page-hooks", hook)
    assert (status, created["seen"], created["fired"]) == (201, 0, False)
    listed = (await admin(client, "GET", "page-hooks"))[1]
    assert listed[0]["action"] == f'{{"cancel_item": {victim}}}'
    first = await client.get(path, acct, objectMask="mask[id]")
    second = await client.get(path, acct, objectMask="mask[id]")
    assert victim in [row["id"] for row in first.json]
    assert victim not in [row["id"] for row in second.json]
    assert (await admin(client, "GET", "page-hooks"))[1] == []
    added = {**hook, "action": {"add_item": {"category_code": "server", "recurring_fee": "9"}}}
    assert (await admin(client, "POST", "page-hooks", added))[0] == 201
    assert (await admin(client, "DELETE", "page-hooks"))[0] == 200
    assert sim.state.page_hooks == []
    for payload, fragment in (
        ({**hook, "after_pages": 0}, "after_pages"),
        ({**hook, "action": {"explode": 1}}, "unknown action"),
        ({**hook, "action": {"cancel_item": 1, "advance": 2}}, "exactly one"),
        ({**hook, "account_id": None}, "needs an account_id"),
        ({**hook, "method": "getInvoices"}, "method"),
        ({**hook, "extra": 1}, "unknown page hook fields"),
        ({**hook, "action": {"add_item": {"category_code": "x"}}}, "recurring_fee"),
        ({"after_pages": 1, "action": {"advance": "later"}}, "duration"),
        ({"max_items": 0}, None),
    ):
        target = "page-cap" if fragment is None else "page-hooks"
        status, body = await admin(client, "POST", target, payload)
        assert status == 400, payload
        assert fragment is None or fragment in body["error"], (payload, body)
    status, _ = await admin(client, "POST", "page-hooks", {**hook, "account_id": 1})
    assert status == 404
