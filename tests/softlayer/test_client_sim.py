"""SoftLayerClient directly against the simulator: pages, token lifetime, backoff, errors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.errors import ErrorReason
from exporter.simulator import FaultKind, FaultRule, Scenario, SimulatorServer
from exporter.softlayer import SoftLayerClient, SoftLayerError
from tests.helpers.simapi import make_config


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_iam_token_is_exchanged_again_before_it_expires(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """Past 90% of the token's lifetime the next call exchanges the key again first."""
    config = make_config(sim, scenario, method=AuthMethod.IAM)
    stats = ApiStats()
    clock = FakeClock()
    client = SoftLayerClient(config.accounts[0], config, session, stats, clock=clock)
    await client.call("SoftLayer_Account", "getObject", mask="mask[id]")
    clock.now = 3600 * 0.85  # sim tokens live 3600 s: not yet due
    await client.call("SoftLayer_Account", "getObject", mask="mask[id]")
    assert stats.requests[("acct0", "iam_token", "200")] == 1
    clock.now = 3600 * 0.95
    page = await client.call("SoftLayer_Account", "getObject", mask="mask[id]")
    assert stats.requests[("acct0", "iam_token", "200")] == 2
    assert page.body == {"id": scenario.accounts[0].id}


async def test_wrong_iam_key_is_auth_and_not_retried(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """An API key IAM does not know fails the exchange as auth, once, without the key in it."""
    config = make_config(sim, scenario, method=AuthMethod.IAM)
    planted = "planted-key-0123456789abcdef"
    bad = replace(
        config.accounts[0],
        auth=AuthConfig(
            method=AuthMethod.IAM, api_key=Secret(planted), iam_token_url=sim.iam_token_url
        ),
    )
    stats = ApiStats()
    client = SoftLayerClient(bad, config, session, stats)
    with pytest.raises(SoftLayerError) as caught:
        await client.call("SoftLayer_Account", "getObject", mask="mask[id]")
    assert caught.value.reason is ErrorReason.AUTH
    assert planted not in str(caught.value)
    assert sum(n for (_, method, _), n in stats.requests.items() if method == "iam_token") == 1
    assert client.api_requests == 0


async def test_wrong_classic_key_is_auth(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """A wrong classic key gets HTTP 401 from the API: reason auth, one attempt."""
    config = make_config(sim, scenario)
    bad = replace(
        config.accounts[0],
        auth=AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret("nope-" * 8), username="someone"),
    )
    client = SoftLayerClient(bad, config, session, ApiStats())
    with pytest.raises(SoftLayerError) as caught:
        await client.call("SoftLayer_Account", "getObject", mask="mask[id]")
    assert caught.value.reason is ErrorReason.AUTH
    assert caught.value.status == 401
    assert "nope-" not in str(caught.value)
    assert client.api_requests == 1


def distinct_ids(seen: dict[int, Any]) -> Callable[[list[Any]], int]:
    """A consume() that deduplicates by id, as fetch_pages requires, counting new rows."""

    def consume(page: list[Any]) -> int:
        before = len(seen)
        seen.update((row["id"], row) for row in page)
        return len(seen) - before

    return consume


async def test_fetch_pages_hands_over_every_record(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """Paging with a stable id order yields every item; overlapping pages repeat a few rows
    (the first ones of each page), which consume() deduplicates by id."""
    config = make_config(sim, scenario, page_size=3)
    client = SoftLayerClient(config.accounts[0], config, session, ApiStats())
    seen: list[Any] = []
    await client.fetch_pages(
        "SoftLayer_Account",
        "getNextInvoiceTopLevelBillingItems",
        mask="mask[id]",
        object_filter={
            "nextInvoiceTopLevelBillingItems": {
                "id": {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}
            }
        },
        consume=seen.extend,
    )
    ids = [row["id"] for row in seen]
    items = scenario.truth(scenario.accounts[0].id).next_invoice_item_count
    assert len(set(ids)) == items
    assert ids == sorted(ids) or len(ids) > items  # pages arrive in any order, overlapping
    # 3 new rows per page after the first (which has 3 + 2 overlap), each re-reading 2.
    assert len(ids) - items == 2 * (-(-(items - 5) // 3))


async def test_failing_page_cancels_the_others_and_propagates(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """A page that cannot be decoded fails the whole fetch with reason decode."""
    config = make_config(sim, scenario, page_size=5)
    client = SoftLayerClient(config.accounts[0], config, session, ApiStats())
    sim.add_fault(
        FaultRule(
            kind=FaultKind.MALFORMED_JSON,
            method="SoftLayer_Account::getNextInvoiceTopLevelBillingItems",
            times=None,
        )
    )
    with pytest.raises(SoftLayerError) as caught:
        await client.fetch_pages(
            "SoftLayer_Account",
            "getNextInvoiceTopLevelBillingItems",
            mask="mask[id]",
            consume=lambda page: None,
        )
    assert caught.value.reason is ErrorReason.DECODE


def test_backoff_is_full_jitter_capped() -> None:
    """Backoff is uniform in [0, min(max, initial * 2^(n-1))] and only for retryable reasons."""
    account = AccountConfig(
        name="a",
        endpoint="http://127.0.0.1:1/",
        auth=AuthConfig(method=AuthMethod.APIKEY, api_key=Secret("k")),
    )
    config = Config(
        accounts=(account,),
        retry=RetryConfig(attempts=5, initial_backoff_seconds=1, max_backoff_seconds=5),
    )
    client = SoftLayerClient(account, config, None, ApiStats(), rng=random.Random(1))  # type: ignore[arg-type]
    for failures, ceiling in ((1, 1), (2, 2), (3, 4), (4, 5), (10, 5)):
        delays = [client._backoff(failures) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole range is used: full jitter
    retryable = {r for r in ErrorReason if SoftLayerError(r, "x", method="m").retryable}
    assert retryable == {
        ErrorReason.RATE_LIMITED,
        ErrorReason.TIMEOUT,
        ErrorReason.SERVER,
        ErrorReason.NETWORK,
    }


async def test_later_page_internal_error_is_split_in_halves(
    sim: SimulatorServer, scenario: Scenario, session: aiohttp.ClientSession
) -> None:
    """A later page answering Internal Error is fetched as two half pages; none is lost."""
    config = make_config(sim, scenario, page_size=8, max_concurrent_requests=1)
    client = SoftLayerClient(config.accounts[0], config, session, ApiStats())
    method = "getNextInvoiceTopLevelBillingItems"
    seen: dict[int, Any] = {}
    count_new = distinct_ids(seen)

    def consume(page: list[Any]) -> int:
        if not seen:  # after the first page: break exactly the next request
            sim.add_fault(
                FaultRule(
                    kind=FaultKind.INTERNAL_ERROR, method=f"SoftLayer_Account::{method}", times=1
                )
            )
        return count_new(page)

    sim.reset_stats()
    await client.fetch_pages("SoftLayer_Account", method, mask="mask[id]", consume=consume)
    items = scenario.truth(scenario.accounts[0].id).next_invoice_item_count
    acct = scenario.accounts[0]
    assert sorted(seen) == [acct.item_id(row) for row in acct.active_rows()]
    assert len(seen) == items
    assert client.page_size("SoftLayer_Account", method) == 4
    # Pages of 8 + 2 overlap, 8 apart: 1 + ceil((N - 10) / 8); one of them failed once and
    # came back as two overlapping halves.
    assert sim.stats.requests[f"SoftLayer_Account::{method}"] == 1 + -(-(items - 10) // 8) + 2


async def test_remaining_pages_run_concurrently_within_the_bound(
    sim: SimulatorServer, scenario: Scenario
) -> None:
    """After the first page, pages overlap in flight, but never more than the configured bound."""
    in_flight = 0
    peak = 0

    async def started(*_: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    async def ended(*_: Any) -> None:
        nonlocal in_flight
        in_flight -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(ended)
    sim.set_latency(0.02)  # keeps requests in flight long enough to overlap
    config = make_config(sim, scenario, page_size=2, max_concurrent_requests=3)
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = SoftLayerClient(config.accounts[0], config, traced, ApiStats())
        seen: dict[int, Any] = {}
        await client.fetch_pages(
            "SoftLayer_Account",
            "getNextInvoiceTopLevelBillingItems",
            mask="mask[id]",
            consume=distinct_ids(seen),
        )
    assert len(seen) == scenario.truth(scenario.accounts[0].id).next_invoice_item_count
    assert peak == 3
