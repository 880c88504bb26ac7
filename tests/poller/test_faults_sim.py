"""Fault matrix over loopback: every simulator fault maps to the right reason, keeps the last
good data, touches only its own account and sources, and clears on the next cycle."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import structlog

from exporter.config import AuthMethod
from exporter.poller import Poller
from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.snapshot import Source
from tests.conftest import refused_port
from tests.helpers.simapi import (
    FAST_RETRY,
    PollerFactory,
    assert_matches_truth,
    make_config,
)

GET_OBJECT = "SoftLayer_Account::getObject"
GET_INVOICES = "SoftLayer_Account::getInvoices"
GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
SOURCES_OF = {
    # The forecast (next-invoice totals + items) is published whole or not at all, so a
    # failed getObject holds the item breakdown back too.
    GET_OBJECT: {
        Source.ACCOUNT,
        Source.LATEST_RECURRING_INVOICE,
        Source.PENDING_INVOICE,
        Source.NEXT_INVOICE_ITEMS,
        Source.BILLING_INFO,
    },
    # The recurring-invoice history is a getInvoices too, but cached while the latest
    # recurring invoice of the account object stays the same: no request here.
    GET_INVOICES: {Source.INVOICES},
    GET_ITEMS: {Source.NEXT_INVOICE_ITEMS},
}
FIELD_OF = {
    Source.ACCOUNT: "summary",
    Source.LATEST_RECURRING_INVOICE: "latest_recurring_invoice",
    Source.PENDING_INVOICE: "pending_invoice",
    Source.INVOICES: "invoices",
    Source.NEXT_INVOICE_ITEMS: "next_invoice",
    Source.BILLING_INFO: "billing",
    Source.INVOICE_HISTORY: "history",
}
FAULT_REASONS = [
    (FaultKind.RATE_LIMIT, "rate_limited"),
    (FaultKind.INTERNAL_ERROR, "server"),
    (FaultKind.INTERNAL_ERROR_HTTP200, "server"),
    (FaultKind.MALFORMED_JSON, "decode"),
    (FaultKind.TRUNCATED_JSON, "decode"),
    (FaultKind.EMPTY_BODY, "decode"),
    (FaultKind.CONNECTION_RESET, "network"),
    (FaultKind.HANG, "timeout"),
    (FaultKind.UNAUTHORIZED, "auth"),
    (FaultKind.NOT_FOUND, "client"),
    (FaultKind.TOKEN_EXPIRED, "auth"),  # classic auth has no token to renew
    # SoftLayer sends these defects with HTTP 500; their code says no retry can fix them.
    (FaultKind.MASK_ERROR, "mask"),
    (FaultKind.PARSE_ERROR, "parse"),
    (FaultKind.INVALID_VALUE, "validation"),
    (FaultKind.PERMISSION_DENIED, "permission"),
]
RETRIED = {"rate_limited", "timeout", "server", "network"}
TIMEOUT = 0.25


def attempts_for(kind: FaultKind, reason: str, method: str) -> int:
    """Requests one account makes for a persistently failing call."""
    if reason not in RETRIED:
        return 1
    if kind is FaultKind.CONNECTION_RESET:
        # aiohttp sends a request once more when its connection is reset (the cure for a
        # kept-alive connection closed meanwhile); the exporter counts and rate-limits that.
        return 2 * FAST_RETRY.attempts
    if (
        kind in (FaultKind.INTERNAL_ERROR, FaultKind.INTERNAL_ERROR_HTTP200, FaultKind.HANG)
        and method != GET_OBJECT
    ):
        # Internal Error and a timeout both say "page too big": halved 100 -> 50 -> 25 -> 12,
        # then retried at 12.
        return 3 + FAST_RETRY.attempts
    return FAST_RETRY.attempts


@pytest.mark.parametrize("method", [GET_OBJECT, GET_INVOICES, GET_ITEMS])
@pytest.mark.parametrize(("kind", "reason"), FAULT_REASONS)
async def test_fault_marks_only_its_sources_down_and_keeps_last_good_data(
    sim: SimulatorServer,
    scenario: Scenario,
    make_poller: PollerFactory,
    kind: FaultKind,
    reason: str,
    method: str,
) -> None:
    """Fault on one account's method: its sources down with the right reason, last data kept,
    the other account untouched, exact request count, one log event; next cycle recovers."""
    # Every list walked on every poll: the faults hit the walks (pages halved and all).
    config = make_config(
        sim, scenario, request_timeout_seconds=TIMEOUT, full_walk_interval_seconds=0
    )
    poller = make_poller(config)
    assert await poller.poll_once()
    good = poller.state.accounts["acct0"]
    faulty = scenario.accounts[0]
    sim.add_fault(FaultRule(kind=kind, method=method, account_id=faulty.id))
    sim.reset_stats()
    with structlog.testing.capture_logs() as events:
        assert await poller.poll_once() is False

    snapshot = poller.state.accounts["acct0"]
    down = {source for source, status in snapshot.sources.items() if not status.up}
    assert down == SOURCES_OF[method]
    for source in down:
        status = snapshot.sources[source]
        assert status.last_error_reason == reason
        assert status.last_error
        assert status.last_success == good.sources[source].last_success
        assert status.last_attempt > good.sources[source].last_attempt
        assert getattr(snapshot, FIELD_OF[source]) == getattr(good, FIELD_OF[source])
    for source in set(Source) - down:
        assert snapshot.sources[source].up
    assert poller.api_stats.errors[("acct0", reason)] >= 1
    assert not any(account == "acct1" for account, _ in poller.api_stats.errors)
    assert poller.state.accounts["acct1"].up
    assert_matches_truth(poller.state.accounts["acct1"], scenario, scenario.accounts[1].id)
    # acct1 made its single page/call; acct0 made exactly the attempts the policy allows.
    assert sim.stats.requests[method] == 1 + attempts_for(kind, reason, method)

    polls = [e for e in events if e["event"] == "poll"]
    assert [(e["account"], e["outcome"]) for e in polls if e["account"] == "acct0"] == [
        ("acct0", "partial")
    ]
    assert sorted(polls[0]["sources_failed"] if polls[0]["account"] == "acct0" else polls[1][
        "sources_failed"]) == sorted(s.value for s in SOURCES_OF[method])  # fmt: skip

    sim.clear_faults()
    assert await poller.poll_once()
    assert_matches_truth(poller.state.accounts["acct0"], scenario, faulty.id)


async def test_missing_total_items_header_pages_on_to_the_end(make_poller: PollerFactory) -> None:
    """Without SoftLayer-Total-Items the pager walks until a short page: nothing is lost."""
    scenario = Scenario.generate(seed=9, accounts=[AccountSpec(items=40, pending_invoice=True)])
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, rate_limit_per_second=10_000
    ) as sim:
        sim.add_fault(FaultRule(kind=FaultKind.MISSING_TOTAL_ITEMS, method=GET_ITEMS))
        poller = make_poller(make_config(sim, scenario, page_size=10))
        sim.reset_stats()
        assert await poller.poll_once()
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)
        items = scenario.truth(scenario.accounts[0].id).next_invoice_item_count
        # Sequential walk: every full page, then the short (possibly empty) last one.
        assert sim.stats.requests[GET_ITEMS] == items // 10 + 1


@pytest.mark.parametrize("method", [GET_OBJECT, GET_INVOICES, GET_ITEMS])
async def test_swapped_number_and_string_encodings_still_give_exact_values(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory, method: str
) -> None:
    """WRONG_TYPES swaps numbers and numeric strings (and flags to 0/1): SoftLayer itself mixes
    these encodings, so they parse to the exact same values and the sources stay up."""
    sim.add_fault(FaultRule(kind=FaultKind.WRONG_TYPES, method=method))
    poller = make_poller(make_config(sim, scenario))
    assert await poller.poll_once()
    for index, acct in enumerate(scenario.accounts):
        assert_matches_truth(poller.state.accounts[f"acct{index}"], scenario, acct.id)
    assert poller.api_stats.errors == {}


async def test_transient_fault_is_retried_within_the_cycle(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """Two rate-limit answers then success: the source stays up, errors are still counted."""
    poller = make_poller(make_config(sim, scenario))
    sim.add_fault(FaultRule(kind=FaultKind.RATE_LIMIT, method=GET_OBJECT, times=2))
    assert await poller.poll_once()
    assert (
        poller.api_stats.errors[("acct0", "rate_limited")]
        + poller.api_stats.errors.get(("acct1", "rate_limited"), 0)
        == 2
    )
    for index, acct in enumerate(scenario.accounts):
        assert_matches_truth(poller.state.accounts[f"acct{index}"], scenario, acct.id)


async def test_latency_below_timeout_is_fine_above_is_timeout(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """A slow API within the per-request timeout succeeds; beyond it, reason is timeout."""
    poller = make_poller(make_config(sim, scenario, request_timeout_seconds=0.3))
    sim.set_latency(0.02)
    assert await poller.poll_once()
    sim.set_latency(0.0)
    sim.add_fault(FaultRule(kind=FaultKind.LATENCY, method=GET_INVOICES, latency_seconds=5.0))
    assert not await poller.poll_once()
    status = poller.state.accounts["acct0"].sources[Source.INVOICES]
    assert status.last_error_reason == "timeout"


async def test_connection_refused_is_network_and_isolated(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """An account whose endpoint refuses connections fails as network; the other is fine."""
    config = make_config(sim, scenario)
    with refused_port() as dead_port:
        dead = replace(config.accounts[0], endpoint=f"http://127.0.0.1:{dead_port}/rest/v3.1/")
        poller = make_poller(replace(config, accounts=(dead, config.accounts[1])))
        assert await poller.poll_once() is False
    snapshot = poller.state.accounts["acct0"]
    assert {s.last_error_reason for s in snapshot.sources.values()} == {"network"}
    assert snapshot.summary is None  # never succeeded: no data, not zeros
    assert poller.api_stats.requests[("acct0", "getObject", "none")] == FAST_RETRY.attempts
    assert poller.state.accounts["acct1"].up


async def test_rate_budget_is_never_exceeded(make_poller: PollerFactory) -> None:
    """Many small pages at a budget of 20/s: the simulator never sees more in any second."""
    scenario = Scenario.generate(seed=4, accounts=[AccountSpec(items=150, pending_invoice=True)])
    async with SimulatorServer(scenario, host="127.0.0.1", port=0, rate_limit_per_second=50) as sim:
        poller = make_poller(
            make_config(
                sim, scenario, page_size=5, max_requests_per_second=20, max_concurrent_requests=8
            )
        )
        assert await poller.poll_once()
        assert sim.stats.total > 25  # enough requests to span more than one second
        assert 0 < sim.stats.max_per_second <= 20
        assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)


async def test_secrets_never_appear_in_errors_or_logs(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """The API keys appear in no source error, log event or stats key, across faults."""
    poller = make_poller(make_config(sim, scenario, request_timeout_seconds=TIMEOUT))
    outputs: list[Any] = []
    with structlog.testing.capture_logs() as events:
        for kind, _ in FAULT_REASONS:
            sim.clear_faults()
            sim.add_fault(FaultRule(kind=kind, method=GET_OBJECT))
            await poller.poll_once()
            outputs.extend(repr(s) for s in poller.state.accounts.values())
    outputs.extend(repr(e) for e in events)
    outputs.append(repr(poller.api_stats.requests))
    outputs.append(repr(poller.config))
    text = "\n".join(outputs)
    for acct in scenario.accounts:
        assert acct.api_key not in text
    assert "HTTP 401" in text  # the errors themselves are there, just without secrets


# -- authentication -----------------------------------------------------------------


@pytest.mark.parametrize("method", [AuthMethod.APIKEY, AuthMethod.IAM])
async def test_other_auth_methods_give_the_same_values(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory, method: AuthMethod
) -> None:
    """`apikey` basic auth and IAM bearer tokens both read the same truth."""
    poller = make_poller(make_config(sim, scenario, method=method))
    assert await poller.poll_once()
    for index, acct in enumerate(scenario.accounts):
        assert_matches_truth(poller.state.accounts[f"acct{index}"], scenario, acct.id)
    exchanges = {k: v for k, v in poller.api_stats.requests.items() if k[1] == "iam_token"}
    if method is AuthMethod.IAM:
        # One exchange per account, shared by its concurrent requests, reused next cycle.
        assert exchanges == {("acct0", "iam_token", "200"): 1, ("acct1", "iam_token", "200"): 1}
        assert await poller.poll_once()
        assert poller.api_stats.requests[("acct0", "iam_token", "200")] == 1
    else:
        assert exchanges == {}


async def token_rejected_after_a_good_poll(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory, **fault: Any
) -> Poller:
    """An IAM poller that polled once; from now on acct0's token is rejected (``times``)."""
    poller = make_poller(make_config(sim, scenario, method=AuthMethod.IAM))
    assert await poller.poll_once()
    sim.add_fault(
        FaultRule(
            kind=FaultKind.TOKEN_EXPIRED,
            method=GET_OBJECT,
            account_id=scenario.accounts[0].id,
            **fault,
        )
    )
    sim.reset_stats()
    return poller


async def test_expired_token_is_exchanged_again_and_the_call_retried_once(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """AccessTokenValidation (HTTP 500): one new exchange, one retry, data correct."""
    poller = await token_rejected_after_a_good_poll(sim, scenario, make_poller, times=1)
    assert await poller.poll_once()
    assert poller.api_stats.requests[("acct0", "iam_token", "200")] == 2
    assert poller.api_stats.requests[("acct1", "iam_token", "200")] == 1
    assert poller.api_stats.errors[("acct0", "auth")] == 1
    assert sim.stats.requests[GET_OBJECT] == 3  # acct0: rejected + retried; acct1: one
    assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)


async def test_token_still_rejected_after_renewal_is_auth_failure(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """If the fresh token is rejected too, the call fails as auth after exactly one renewal."""
    poller = await token_rejected_after_a_good_poll(sim, scenario, make_poller)
    assert not await poller.poll_once()
    status = poller.state.accounts["acct0"].sources[Source.ACCOUNT]
    assert status.last_error_reason == "auth"
    assert poller.api_stats.requests[("acct0", "iam_token", "200")] == 2
    assert sim.stats.requests[GET_OBJECT] == 3


async def test_iam_unauthorized_is_auth(
    sim: SimulatorServer, scenario: Scenario, make_poller: PollerFactory
) -> None:
    """A 401 with a bearer token is auth and not retried."""
    poller = make_poller(make_config(sim, scenario, method=AuthMethod.IAM))
    sim.add_fault(FaultRule(kind=FaultKind.UNAUTHORIZED, method=GET_ITEMS))
    sim.reset_stats()
    assert not await poller.poll_once()
    status = poller.state.accounts["acct1"].sources[Source.NEXT_INVOICE_ITEMS]
    assert status.last_error_reason == "auth"
    assert sim.stats.requests[GET_ITEMS] == 2
