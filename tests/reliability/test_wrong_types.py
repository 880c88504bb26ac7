"""Truly wrong JSON types over the wire: an object where SoftLayer sends an amount.

The simulator's WRONG_TYPES fault swaps numbers and numeric strings, which the real API mixes
and the client reads exactly (see test_process_faults). It has no fault that puts an object
where a number belongs, so a small rewriting proxy between the poller and the simulator does
it: the source goes down with reason ``decode``, the last good value is kept, nothing else is
touched, and the next clean answer recovers it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, RetryConfig, Secret
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState, Source


class CorruptingProxy:
    """Forwards to the simulator; while ``corrupt`` is set, wraps getObject's balance."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.corrupt = False
        self.rewritten = 0

    async def handle(self, request: web.Request) -> web.Response:
        url = self.upstream + request.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, url, headers=headers, data=await request.read()) as up,
        ):
            body = await up.read()
            out_headers = {
                k: v for k, v in up.headers.items() if k.lower() in ("softlayer-total-items",)
            }
            if self.corrupt and request.path.endswith("getObject.json") and up.status == 200:
                data: Any = json.loads(body)
                data["balance"] = {"amount": data["balance"]}
                body = json.dumps(data).encode()
                self.rewritten += 1
            return web.Response(
                body=body, status=up.status, headers=out_headers, content_type="application/json"
            )


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(seed=4, accounts=[AccountSpec(items=5, pending_invoice=True)])


@pytest.fixture(name="proxied")
async def _proxied(
    scenario: Scenario,
) -> AsyncIterator[tuple[SimulatorServer, CorruptingProxy, str]]:
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, latency_seconds=0.0, rate_limit_per_second=50
    ) as sim:
        proxy = CorruptingProxy(sim.base_url)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield sim, proxy, sim.endpoint.replace(sim.base_url, f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()


async def test_object_where_an_amount_belongs_is_a_decode_error(
    scenario: Scenario, proxied: tuple[SimulatorServer, CorruptingProxy, str]
) -> None:
    """An object in place of the balance: account source down (decode), last value kept,
    the forecast it feeds held back (next_invoice_items down with the same reason), the
    invoice sources up, and the next clean cycle recovers."""
    _sim, proxy, endpoint = proxied
    acct = scenario.accounts[0]
    config = Config(
        accounts=(
            AccountConfig(
                "acct",
                endpoint,
                AuthConfig(AuthMethod.CLASSIC, Secret(acct.api_key), username=acct.username),
            ),
        ),
        retry=RetryConfig(attempts=1),
    )
    state = ExporterState(("acct",))
    poller = Poller(config, state)
    try:
        assert await poller.poll_once()
        good = state.accounts["acct"]
        assert good.summary is not None
        assert good.summary.balance_usd == scenario.truth(acct.id).balance

        proxy.corrupt = True
        assert await poller.poll_once() is False
        assert proxy.rewritten == 1
        bad = state.accounts["acct"]
        status = bad.sources[Source.ACCOUNT]
        assert not status.up
        assert status.last_error_reason == "decode"
        assert status.last_error is not None
        assert "balance" in status.last_error
        assert bad.summary == good.summary
        assert bad.sources[Source.INVOICES].up
        assert bad.sources[Source.PENDING_INVOICE].up
        held = bad.sources[Source.NEXT_INVOICE_ITEMS]
        assert (held.up, held.last_error_reason) == (False, "decode")
        assert bad.next_invoice == good.next_invoice
        assert poller.api_stats.errors[("acct", "decode")] == 1

        proxy.corrupt = False
        assert await poller.poll_once()
        assert state.accounts["acct"].up
    finally:
        await poller.aclose()
