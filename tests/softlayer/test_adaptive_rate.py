"""The adaptive request rate: halves on RateLimitExceeded, grows back, never over the ceiling.

The arithmetic on a fake clock; then against the simulator's own rate limit, which answers
HTTP 500 RateLimitExceeded like SoftLayer: an exporter whose ceiling is above what the
account has left still completes its walk, and settles below the limit.
"""

from __future__ import annotations

import pytest
import structlog

from exporter.poller import Poller
from exporter.ratelimit import ADDITIVE_STEP, FLOOR_RATE, AdaptiveRate, RateLimiter
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState
from tests.helpers.fakeclock import FakeTime
from tests.helpers.simapi import assert_matches_truth, make_config, pages


def adaptive(ceiling: float) -> tuple[FakeTime, AdaptiveRate]:
    fake = FakeTime()
    limiter = RateLimiter(ceiling, clock=fake.clock, sleep=fake.sleep)
    return fake, AdaptiveRate(limiter, ceiling, clock=fake.clock)


def test_starts_at_the_ceiling_and_never_grows_past_it() -> None:
    """Alone on an account the rate is the ceiling from the first request on."""
    _, rate = adaptive(45.0)
    assert rate.rate == 45.0
    for _ in range(100):
        rate.accepted()
    assert rate.rate == 45.0


def test_a_rejection_halves_once_per_second_down_to_the_floor() -> None:
    """Rejections within one second are one event; each later second halves again, down to
    the floor and no further."""
    fake, rate = adaptive(40.0)
    rate.rejected()
    rate.rejected()  # the same second: requests that were already in flight
    assert rate.rate == 20.0
    fake.now += 1.0
    rate.rejected()
    assert rate.rate == 10.0
    for _ in range(10):
        fake.now += 1.0
        rate.rejected()
    assert rate.rate == FLOOR_RATE  # 40 -> 20 -> 10 -> 5 -> 2.5 -> 1.25 -> 1, and stays
    assert rate.rejections == 12  # rejection events: one per second that saw any


def test_accepted_requests_grow_the_rate_by_the_step_per_second() -> None:
    """After a halving, a second's worth of accepted requests adds about ADDITIVE_STEP."""
    _, rate = adaptive(45.0)
    rate.rejected()
    assert rate.rate == 22.5
    for _ in range(22):  # about one second of requests at 22.5/s
        rate.accepted()
    assert rate.rate == pytest.approx(22.5 + ADDITIVE_STEP, abs=0.2)


async def test_a_lower_rate_spaces_the_very_next_request() -> None:
    """set_rate applies to the next request: after halving, starts are 1/rate apart."""
    fake, rate = adaptive(10.0)
    await rate.limiter.acquire()
    rate.rejected()  # 10 -> 5 requests/second
    started = fake.now
    await rate.limiter.acquire()
    assert fake.now - started == pytest.approx(0.2)


async def test_above_the_accounts_limit_the_walk_still_completes() -> None:
    """The simulator allows 20 requests/s, the exporter's ceiling is 45: rejections halve the
    rate, rejected requests are retried after the limit's one-second window, the walk of 60
    pages completes with the exact figures, and the rate ends below the limit."""
    scenario = Scenario.generate(seed=51, accounts=[AccountSpec(items=600)])
    async with SimulatorServer(scenario, rate_limit_per_second=20) as sim:
        config = make_config(
            sim, scenario, page_size=10, max_requests_per_second=45.0, max_concurrent_requests=10
        )
        poller = Poller(config, ExporterState(("acct0",)))
        try:
            with structlog.testing.capture_logs():
                assert await poller.poll_once()
            client = poller.client("acct0")
        finally:
            await poller.aclose()
    assert_matches_truth(poller.state.accounts["acct0"], scenario, scenario.accounts[0].id)
    truth = scenario.truth(scenario.accounts[0].id)
    assert sim.stats.requests["SoftLayer_Account::getNextInvoiceTopLevelBillingItems"] >= pages(
        truth.next_invoice_item_count, 10
    )
    assert poller.api_stats.errors[("acct0", "rate_limited")] > 0
    assert client.rate.rejections > 0
    assert client.rate.rate < 20.0 + ADDITIVE_STEP * 5
