"""/metrics bytes: format negotiation, rendering ahead of the scrape, gzip by appending."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from exporter.api_stats import ApiStats
from exporter.exposition import PROCESS_MAX_AGE, Exposition, Format, negotiate
from exporter.metrics import build_registry
from exporter.server import create_app, start_server
from exporter.snapshot import ExporterState
from tests.helpers import builders as b

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
OM, TEXT = Format.OPENMETRICS, Format.TEXT


class TestNegotiate:
    @pytest.mark.parametrize(
        ("accept", "expected"),
        [
            (PROMETHEUS_ACCEPT, OM),
            ("", TEXT),
            ("*/*", TEXT),
            ("text/plain", TEXT),
            ("application/openmetrics-text", OM),
            ("application/openmetrics-text; version=1.0.0; charset=utf-8", OM),
            ("APPLICATION/OpenMetrics-Text;Version=1.0.0", OM),
            # A version we do not produce is not served under another's name.
            ("application/openmetrics-text; version=999", TEXT),
            ("application/openmetrics-text; version=1.0.0abc", TEXT),
            ("application/openmetrics-text; version=0.0.1", TEXT),
            # q=0 means "not this one"; a higher q elsewhere wins whatever the order.
            ("application/openmetrics-text; version=1.0.0; q=0", TEXT),
            ("text/plain;q=0.2, application/openmetrics-text;q=0.9", OM),
            ("application/openmetrics-text;q=0.2, text/plain;q=0.9", TEXT),
            # Malformed weights are no weights: that range is skipped.
            ("application/openmetrics-text; q=2", TEXT),
            ("application/openmetrics-text; q=abc", TEXT),
            ("application/openmetrics-text; q=-1", TEXT),
            ("application/openmetrics-text; q=0.0001", TEXT),
            (";;;,,,===", TEXT),
            ("\x00\xff" * 100, TEXT),
        ],
    )
    def test_format(self, accept, expected):
        """Only formats and versions we produce are chosen, by q; anything else is text."""
        assert negotiate(accept, "")[0] is expected

    @pytest.mark.parametrize(
        ("encoding", "expected"),
        [
            ("gzip", True),
            ("gzip, deflate, br", True),
            ("GZIP;q=0.5", True),
            ("x-gzip", True),
            ("gzip;q=0", False),
            ("gzip;q=0.000", False),
            ("*", True),
            ("*;q=0", False),
            ("gzip;q=0, *", False),
            ("identity", False),
            ("", False),
            ("gzip;q=nonsense", False),
        ],
    )
    def test_gzip(self, encoding, expected):
        """gzip when listed (or covered by *) with q > 0; q=0 refuses it."""
        assert negotiate("", encoding)[1] is expected

    def test_content_types_are_fixed(self):
        """The Content-Type sent is one of two constants, never built from client text."""
        assert OM.content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"
        assert TEXT.content_type == "text/plain; version=0.0.4; charset=utf-8"


class BlockingApiStats(ApiStats):
    """API statistics whose rendering can be held in the render thread."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        if self.hold.is_set():
            self.held.set()
            self.release.wait()
        return super().collect()


@dataclass
class Served:
    url: str
    state: ExporterState
    api_stats: BlockingApiStats
    exposition: Exposition
    session: aiohttp.ClientSession
    now: list[float]


@pytest.fixture(name="served")
async def _served() -> AsyncIterator[Served]:
    state = b.state(b.full_snapshot())
    api_stats = BlockingApiStats()
    now = [1000.0]
    exposition = Exposition(state, api_stats, b.config(), clock=lambda: now[0])
    runner, urls = await start_server(create_app(state, exposition), "127.0.0.1", 0, None)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield Served(urls[0] + "/metrics", state, api_stats, exposition, session, now)
    api_stats.release.set()
    await runner.cleanup()


async def scrape(served: Served, **headers: str) -> tuple[str, str | None, bytes]:
    headers.setdefault("Accept-Encoding", "identity")
    async with served.session.get(served.url, headers=headers) as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], resp.headers.get("Content-Encoding"), await resp.read()


class TestServing:
    async def test_unchanged_content_is_rendered_once(self, served):
        """Scrapes with nothing published in between are served from one rendering."""
        first = await scrape(served)
        second = await scrape(served)
        assert first == second
        assert served.exposition.renders["snapshot"] == 1
        assert served.exposition.renders["api"] == 1

    async def test_a_publish_is_served_once_rendered(self, served):
        """A snapshot published by the poller is what /metrics serves after the refresh."""
        await scrape(served)
        snap = served.state.accounts["prod"]
        assert snap.summary is not None
        served.state.publish(
            dataclasses.replace(
                snap, summary=dataclasses.replace(snap.summary, balance_usd=Decimal("777.5"))
            )
        )
        await served.exposition.refreshed()
        body = (await scrape(served))[2].decode()
        assert 'softlayer_account_balance_usd{account="prod"} 777.5' in body
        assert served.exposition.renders["snapshot"] == 2

    async def test_api_counters_render_without_the_snapshots(self, served):
        """A counted request re-renders the API part only, not the billing families."""
        await scrape(served)
        served.api_stats.record_error("prod", "auth")
        await served.exposition.refreshed()
        body = (await scrape(served))[2].decode()
        assert 'softlayer_api_errors_total{account="prod",reason="auth"} 1.0' in body
        assert served.exposition.renders["api"] == 2
        assert served.exposition.renders["snapshot"] == 1

    async def test_no_scrape_waits_for_a_render(self, served):
        """While a render is held in its thread, scrapes are answered from the last one."""
        before = (await scrape(served))[2]
        served.api_stats.hold.set()
        served.api_stats.record_error("prod", "auth")
        refreshing = asyncio.ensure_future(served.exposition.refreshed())
        assert await asyncio.to_thread(served.api_stats.held.wait, 30)
        during = [(await scrape(served))[2] for _ in range(5)]
        assert during == [before] * 5  # served at once, the render still held
        served.api_stats.hold.clear()
        served.api_stats.release.set()
        await refreshing
        after = (await scrape(served))[2].decode()
        assert 'softlayer_api_errors_total{account="prod",reason="auth"} 1.0' in after

    async def test_process_metrics_are_appended_and_refreshed(self, served):
        """process_* is rendered on its own, at most PROCESS_MAX_AGE old, without re-rendering
        the rest; the gzip body is the plain body, compressed."""
        first = await scrape(served, **{"Accept-Encoding": "gzip"})
        assert first[1] == "gzip"
        text = gzip.decompress(first[2]).decode()
        assert "process_cpu_seconds_total" in text
        assert served.exposition.renders["process"] == 1
        served.now[0] += PROCESS_MAX_AGE
        second = await scrape(served, **{"Accept-Encoding": "gzip"})
        plain = await scrape(served)
        assert served.exposition.renders["process"] == 2
        assert served.exposition.renders["snapshot"] == 1
        assert gzip.decompress(second[2]) == plain[2]
        # A strict decoder agrees: one gzip member, CRC and length right, nothing after it.
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert decoder.decompress(second[2]) == plain[2]
        assert decoder.eof
        assert decoder.unused_data == b""

    async def test_each_format_is_complete_and_parses(self, served):
        """Text and OpenMetrics, plain and gzip: all four parse; OpenMetrics ends in one EOF."""
        bodies = {}
        for accept in ("text/plain", "application/openmetrics-text"):
            for encoding in ("identity", "gzip"):
                _, coding, body = await scrape(
                    served, Accept=accept, **{"Accept-Encoding": encoding}
                )
                bodies[accept, encoding] = body if coding is None else gzip.decompress(body)
        om = bodies["application/openmetrics-text", "identity"].decode()
        assert om.endswith("# EOF\n")
        assert om.count("# EOF") == 1
        assert bodies["application/openmetrics-text", "gzip"].decode() == om
        text = bodies["text/plain", "identity"].decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"softlayer_up", "softlayer_api_requests", "process_cpu_seconds"} <= names

    async def test_served_families_equal_the_registry(self, served):
        """The parts together are exactly what the one-registry rendering (--once) says."""
        body = (await scrape(served))[2].decode()
        registry = build_registry(served.state, served.api_stats, b.config())
        expected = generate_latest(registry).decode()

        def families(text: str) -> dict[str, list[tuple[str, tuple[tuple[str, str], ...], float]]]:
            return {
                f.name: sorted(
                    (s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples
                )
                for f in text_string_to_metric_families(text)
                if not f.name.startswith("process_")
            }

        assert families(body) == families(expected)

    async def test_bad_accept_headers_get_text_without_an_error(self, served):
        """Malformed or unknown Accept values get 200 text, a fixed Content-Type, no log."""
        with capture_logs() as logs:
            for accept in (
                "application/openmetrics-text; version=1.0.0abc",
                "application/openmetrics-text; version=999",
                "application/openmetrics-text; q=zzz",
                "x" * 4000,
            ):
                kind, _, body = await scrape(served, Accept=accept)
                assert kind == TEXT.content_type
                assert b"softlayer_up" in body
        assert logs == []
