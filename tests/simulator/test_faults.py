"""Fault injection: every FaultKind, rule matching and counting, and the real rate limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.simulator import FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.simulator.faults import parse_fault_spec
from tests.simulator.conftest import Client, basic

INVOICES = "SoftLayer_Account::getInvoices"
NEXT_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"


async def get_invoices(client: Client, scenario: Scenario, **q: str) -> Any:
    # headers named: a query dict could not then be taken for them
    return await client.get(
        "SoftLayer_Account/getInvoices.json", scenario.accounts[0], headers=None, **q
    )


def test_every_fault_kind_is_tested() -> None:
    """This module has a test for each FaultKind (guards against untested new kinds)."""
    source = Path(__file__).read_text()
    for kind in FaultKind:
        assert f"FaultKind.{kind.name}" in source, kind


async def test_internal_error_500_and_200(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """INTERNAL_ERROR answers 500, INTERNAL_ERROR_HTTP200 the same body with HTTP 200."""
    body = {"error": "Internal Error", "code": "SoftLayer_Exception_Public"}
    sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR, method=INVOICES, times=1))
    first = await get_invoices(client, scenario)
    sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR_HTTP200, method=INVOICES, times=1))
    second = await get_invoices(client, scenario)
    third = await get_invoices(client, scenario)
    assert (first.status, first.json) == (500, body)
    assert (second.status, second.json) == (200, body)
    assert third.status == 200
    assert isinstance(third.json, list)


async def test_rate_limit_fault(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """RATE_LIMIT answers HTTP 500 SoftLayer_Exception_WebService_RateLimitExceeded."""
    sim.add_fault(FaultRule(kind=FaultKind.RATE_LIMIT, times=1))
    answer = await get_invoices(client, scenario)
    assert answer.status == 500
    assert answer.json["code"] == "SoftLayer_Exception_WebService_RateLimitExceeded"


async def test_body_faults(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """MALFORMED_JSON, TRUNCATED_JSON and EMPTY_BODY answer HTTP 200 with undecodable bodies."""
    real = await get_invoices(client, scenario)
    for kind in (FaultKind.MALFORMED_JSON, FaultKind.TRUNCATED_JSON, FaultKind.EMPTY_BODY):
        sim.add_fault(FaultRule(kind=kind, method=INVOICES, times=1))
        answer = await get_invoices(client, scenario)
        assert answer.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(answer.body)
        if kind is FaultKind.TRUNCATED_JSON:
            assert real.body.startswith(answer.body)
            assert 0 < len(answer.body) < len(real.body)
        if kind is FaultKind.EMPTY_BODY:
            assert answer.body == b""


async def test_missing_total_items(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """MISSING_TOTAL_ITEMS serves the real list without the SoftLayer-Total-Items header."""
    sim.add_fault(FaultRule(kind=FaultKind.MISSING_TOTAL_ITEMS, method=INVOICES, times=1))
    answer = await get_invoices(client, scenario, resultLimit="0,2")
    assert answer.status == 200
    assert len(answer.json) == 2
    assert answer.total is None


async def test_unauthorized_not_found_token_expired(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """UNAUTHORIZED is 401, NOT_FOUND 404, TOKEN_EXPIRED 500 AccessTokenValidation."""
    expected = {
        FaultKind.UNAUTHORIZED: (401, "SoftLayer_Exception_InvalidLegacyToken"),
        FaultKind.NOT_FOUND: (404, "SoftLayer_Exception_ObjectNotFound"),
        FaultKind.TOKEN_EXPIRED: (
            500,
            "SoftLayer_Exception_Account_Authentication_AccessTokenValidation",
        ),
    }
    for kind, (status, code) in expected.items():
        sim.add_fault(FaultRule(kind=kind, times=1))
        answer = await get_invoices(client, scenario)
        assert (answer.status, answer.json["code"]) == (status, code)


async def test_request_defects_are_http_500_with_their_code(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """Mask, parse, validation and permission errors come as HTTP 500 with their own code."""
    expected = {
        FaultKind.MASK_ERROR: "SoftLayer_Exception_WebService_ObjectMask",
        FaultKind.PARSE_ERROR: "SoftLayer_Exception_Common_Parser",
        FaultKind.INVALID_VALUE: "SoftLayer_Exception_InvalidValue",
        FaultKind.PERMISSION_DENIED: "SoftLayer_Exception_PermissionDenied",
    }
    for kind, code in expected.items():
        sim.add_fault(FaultRule(kind=kind, times=1))
        answer = await get_invoices(client, scenario)
        assert (answer.status, answer.json["code"]) == (500, code)
        assert answer.json["error"]
    assert (await get_invoices(client, scenario)).status == 200


async def test_wrong_types(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """WRONG_TYPES swaps numbers and numeric strings in an otherwise real answer."""
    sim.add_fault(FaultRule(kind=FaultKind.WRONG_TYPES, method=INVOICES, times=1))
    swapped = await get_invoices(client, scenario, objectMask="mask[invoiceTotalAmount]")
    real = await get_invoices(client, scenario, objectMask="mask[invoiceTotalAmount]")
    assert swapped.status == 200
    assert isinstance(real.json[0]["id"], int)
    assert isinstance(swapped.json[0]["id"], str)
    assert isinstance(real.json[0]["invoiceTotalAmount"], str)
    assert isinstance(swapped.json[0]["invoiceTotalAmount"], int | float)


async def test_bare_object(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """BARE_OBJECT sends a one-element list page as the object itself (header kept)."""
    sim.add_fault(FaultRule(kind=FaultKind.BARE_OBJECT, method=INVOICES))
    single = await get_invoices(client, scenario, resultLimit="0,1")
    several = await get_invoices(client, scenario, resultLimit="0,2")
    assert isinstance(single.json, dict)
    assert single.json["id"] == scenario.truth(scenario.accounts[0].id).invoices[0].id
    assert single.total == len(scenario.truth(scenario.accounts[0].id).invoices)
    assert isinstance(several.json, list)


async def test_large_page_error(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """LARGE_PAGE_ERROR fails next-invoice item pages above max_page_size, repeatably."""
    sim.add_fault(FaultRule(kind=FaultKind.LARGE_PAGE_ERROR, max_page_size=10))
    acct = scenario.accounts[0]
    path = "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
    big = await client.get(path, acct, resultLimit="0,11")
    again = await client.get(path, acct, resultLimit="0,50")
    unpaged = await client.get(path, acct)
    small = await client.get(path, acct, resultLimit="0,10")
    other = await get_invoices(client, scenario, resultLimit="0,50")
    assert big.status == again.status == unpaged.status == 500
    assert big.json == {"error": "Internal Error", "code": "SoftLayer_Exception_Public"}
    assert small.status == 200
    assert len(small.json) == 10
    assert other.status == 200


async def test_connection_reset(client: Client, sim: SimulatorServer, scenario: Scenario) -> None:
    """CONNECTION_RESET drops the connection without an HTTP answer.

    aiohttp retries an idempotent request once when the connection drops, so the rule fires
    for two attempts.
    """
    sim.add_fault(FaultRule(kind=FaultKind.CONNECTION_RESET, times=2))
    with pytest.raises(aiohttp.ClientError):
        await get_invoices(client, scenario)
    assert sim.stats.requests[INVOICES] == 2
    assert (await get_invoices(client, scenario)).status == 200


async def test_hang_until_client_gives_up(scenario: Scenario) -> None:
    """HANG never answers; the client times out and the server still stops promptly."""
    async with SimulatorServer(scenario, faults=[FaultRule(kind=FaultKind.HANG, times=1)]) as sim:
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.get(
                    sim.endpoint + "SoftLayer_Account/getObject.json",
                    headers=basic(scenario.accounts[0]),
                ) as r:
                    await r.read()
            async with session.get(
                sim.endpoint + "SoftLayer_Account/getObject.json",
                headers=basic(scenario.accounts[0]),
            ) as r:
                assert r.status == 200


async def test_hanging_request_does_not_block_shutdown(scenario: Scenario) -> None:
    """Stopping the server releases a request that is still hanging."""
    sim = SimulatorServer(scenario, faults=[FaultRule(kind=FaultKind.HANG)])
    await sim.start()
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(
                sim.endpoint + "SoftLayer_Account/getObject.json",
                headers=basic(scenario.accounts[0]),
            )
        )
        await sim.state.hang_started.wait()
        await sim.stop()
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_latency_fault_then_real_answer(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """LATENCY delays and then the next matching rule (or the real answer) applies."""
    sim.add_fault(FaultRule(kind=FaultKind.LATENCY, latency_seconds=0.01, times=1))
    sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR, times=1))
    delayed = await get_invoices(client, scenario)
    sim.add_fault(FaultRule(kind=FaultKind.LATENCY, latency_seconds=0.01, times=1))
    plain = await get_invoices(client, scenario)
    assert delayed.status == 500
    assert plain.status == 200
    assert sim.state.faults.items() == []


async def test_global_latency_setting(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """set_latency applies to every call and rejects negative values."""
    sim.set_latency(0.01)
    assert (await get_invoices(client, scenario)).status == 200
    with pytest.raises(ValueError, match=">= 0"):
        sim.set_latency(-1)


async def test_times_method_and_account_matching(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """A rule fires `times` times for its method and account only; None fires until removed."""
    mine, other = scenario.accounts
    sim.add_fault(
        FaultRule(kind=FaultKind.INTERNAL_ERROR, method=INVOICES, account_id=mine.id, times=2)
    )
    path = "SoftLayer_Account/getInvoices.json"
    statuses = [
        (await client.get(path, mine)).status,
        (await client.get("SoftLayer_Account/getObject.json", mine)).status,
        (await client.get(path, other)).status,
        (await client.get(path, mine)).status,
        (await client.get(path, mine)).status,
    ]
    assert statuses == [500, 200, 200, 500, 200]
    forever = sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR))
    assert [(await client.get(path, mine)).status for _ in range(3)] == [500, 500, 500]
    sim.remove_fault(forever)
    assert (await client.get(path, mine)).status == 200
    sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR))
    sim.clear_faults()
    assert (await client.get(path, mine)).status == 200
    with pytest.raises(KeyError):
        sim.remove_fault(forever)


async def test_real_rate_limit_per_account(scenario: Scenario) -> None:
    """Past rate_limit_per_second calls in a second an account gets 500 RateLimitExceeded."""
    now = [100.0]
    async with (
        SimulatorServer(scenario, rate_limit_per_second=3) as sim,
        aiohttp.ClientSession() as s,
    ):
        sim.state.clock = lambda: now[0]  # a pinned clock: every call lands in the same second
        client = Client(sim, s)
        mine, other = scenario.accounts
        path = "SoftLayer_Account/getObject.json"
        statuses = [(await client.get(path, mine)).status for _ in range(4)]
        limited = await client.get(path, mine)
        other_status = (await client.get(path, other)).status
        now[0] += 1.5
        later = (await client.get(path, mine)).status
    assert statuses == [200, 200, 200, 500]
    assert limited.json == {
        "error": "Rate limit of 3 requests for every 1 second(s) exceeded.",
        "code": "SoftLayer_Exception_WebService_RateLimitExceeded",
    }
    assert other_status == 200
    assert later == 200
    assert sim.stats.max_per_second == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": 0}, "times"),
        ({"method": "getInvoices"}, "SoftLayer_Account::getInvoices"),
        ({"latency_seconds": -1}, "latency_seconds"),
        ({"max_page_size": 0}, "max_page_size"),
    ],
)
def test_fault_rule_validation(kwargs: dict[str, Any], message: str) -> None:
    """Nonsense FaultRules are refused with a message naming the field."""
    with pytest.raises(ValueError, match=message):
        FaultRule(kind=FaultKind.INTERNAL_ERROR, **kwargs)


def test_fault_spec_parsing() -> None:
    """The CLI form KIND[:METHOD][:TIMES] parses; unknown kinds are a clear error."""
    assert parse_fault_spec("hang") == FaultRule(kind=FaultKind.HANG)
    assert parse_fault_spec("internal_error:3") == FaultRule(kind=FaultKind.INTERNAL_ERROR, times=3)
    assert parse_fault_spec("internal_error:SoftLayer_Account::getInvoices") == FaultRule(
        kind=FaultKind.INTERNAL_ERROR, method=INVOICES
    )
    assert parse_fault_spec("empty_body:SoftLayer_Account::getInvoices:2") == FaultRule(
        kind=FaultKind.EMPTY_BODY, method=INVOICES, times=2
    )
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        parse_fault_spec("explode")


def test_fault_rule_json_round_trip() -> None:
    """FaultRule.from_json(to_json()) is the identity; bad JSON names the problem."""
    rule = FaultRule(kind=FaultKind.LARGE_PAGE_ERROR, method=NEXT_ITEMS, times=4, max_page_size=50)
    assert FaultRule.from_json(rule.to_json()) == rule
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule.from_json({"kind": "nope"})
    with pytest.raises(ValueError, match="unknown fault fields: colour"):
        FaultRule.from_json({"kind": "hang", "colour": "red"})
    with pytest.raises(ValueError, match="times must be an integer"):
        FaultRule.from_json({"kind": "hang", "times": "2"})
    with pytest.raises(ValueError, match="JSON object"):
        FaultRule.from_json([])


async def test_float_noise_and_absurd_total_faults(
    client: Client, sim: SimulatorServer, scenario: Scenario
) -> None:
    """FLOAT_NOISE moves every non-integral number one ulp; ABSURD_TOTAL_ITEMS claims 1e9."""
    acct = scenario.accounts[0]
    mask = "mask[balance,nextInvoiceTotalAmount,nextInvoiceTotalRecurringAmount,id]"
    clean = (await client.get("SoftLayer_Account/getObject.json", acct, objectMask=mask)).json
    sim.add_fault(FaultRule(kind=FaultKind.FLOAT_NOISE, times=1))
    noisy = (await client.get("SoftLayer_Account/getObject.json", acct, objectMask=mask)).json
    assert noisy["id"] == clean["id"]
    for key in ("balance", "nextInvoiceTotalAmount", "nextInvoiceTotalRecurringAmount"):
        if isinstance(clean[key], float):
            assert noisy[key] != clean[key]
            assert abs(noisy[key] - clean[key]) < 1e-9
            assert len(repr(noisy[key])) > len(repr(clean[key]))
    sim.add_fault(FaultRule(kind=FaultKind.ABSURD_TOTAL_ITEMS, times=1))
    path = "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
    absurd = await client.get(path, acct, resultLimit="0,5", objectMask="mask[id]")
    assert (absurd.total, len(absurd.json)) == (1_000_000_000, 5)
