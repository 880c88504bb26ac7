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
