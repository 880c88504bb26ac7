"""/metrics renders once per change of what it shows, and never serves a stale change."""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.api_stats import ApiStats
from exporter.metrics import build_registry
from exporter.server import create_app, start_server
from exporter.snapshot import ExporterState

from . import builders as b


class CountingCollector(Collector):
    """Counts how often the registry is rendered."""

    def __init__(self) -> None:
        self.renders = 0

    def collect(self) -> Iterator[Metric]:
        self.renders += 1
        yield GaugeMetricFamily("test_renders", "Renders so far.", value=self.renders)


@dataclass
class Served:
    url: str
    state: ExporterState
    api_stats: ApiStats
    counter: CountingCollector
    session: aiohttp.ClientSession


@pytest.fixture(name="served")
async def _served() -> AsyncIterator[Served]:
    state = b.state(b.full_snapshot())
    api_stats = ApiStats()
    registry = build_registry(state, api_stats, b.config(), process_metrics=False)
    counter = CountingCollector()
    registry.register(counter)
    app = create_app(state, registry, api_stats=api_stats)
    runner, urls = await start_server(app, "127.0.0.1", 0, None)
    async with aiohttp.ClientSession() as session:
        yield Served(urls[0] + "/metrics", state, api_stats, counter, session)
    await runner.cleanup()


async def scrape(served: Served, **headers: str) -> bytes:
    async with served.session.get(served.url, headers=headers) as resp:
        assert resp.status == 200
        return await resp.read()


async def test_unchanged_content_is_rendered_once(served):
    """Scrapes with nothing published in between get the same bytes from one render."""
    first = await scrape(served)
    second = await scrape(served)
    assert first == second
    assert served.counter.renders == 1


async def test_a_publish_shows_in_the_very_next_scrape(served):
    """A snapshot published by the poller is served by the next scrape, not a cached one."""
    await scrape(served)
    snap = served.state.accounts["prod"]
    assert snap.summary is not None
    served.state.publish(
        dataclasses.replace(
            snap, summary=dataclasses.replace(snap.summary, balance_usd=Decimal("777.5"))
        )
    )
    body = (await scrape(served)).decode()
    assert 'softlayer_account_balance_usd{account="prod"} 777.5' in body
    assert served.counter.renders == 2


async def test_an_api_counter_change_shows_in_the_very_next_scrape(served):
    """A request counted by the client invalidates the cached rendering at once."""
    await scrape(served)
    served.api_stats.record_error("prod", "auth")
    body = (await scrape(served)).decode()
    assert 'softlayer_api_errors_total{account="prod",reason="auth"} 1.0' in body


async def test_each_encoding_is_cached_separately_and_gzip_matches_plain(served):
    """Plain, gzip and OpenMetrics renderings are kept apart; gzip decodes to the plain body."""
    plain = await scrape(served, **{"Accept-Encoding": "identity"})
    async with served.session.get(
        served.url, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        zipped = await resp.read()
    openmetrics = await scrape(
        served,
        Accept="application/openmetrics-text; version=1.0.0",
        **{"Accept-Encoding": "identity"},
    )
    assert openmetrics.endswith(b"# EOF\n")
    assert not plain.endswith(b"# EOF\n")
    # The counting collector's own value differs per rendering; everything else matches.
    strip = lambda body: [ln for ln in body.splitlines() if not ln.startswith(b"test_renders")]  # noqa: E731
    assert strip(gzip.decompress(zipped)) == strip(plain)
    assert served.counter.renders == 3
