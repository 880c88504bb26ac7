"""The HTTP server over loopback: /metrics negotiation, probes, landing page, shutdown."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from exporter.exposition import Exposition
from exporter.server import POLLER_TASK, create_app, parse_listen_address, start_server
from exporter.snapshot import AccountSnapshot, ExporterState, Source
from tests.helpers import builders as b

from .conftest import FakePoller, refreshed, run_app


class TestMetrics:
    async def test_plain_text(self, running):
        """/metrics serves the Prometheus text format by default."""
        running.poller.release.set()
        await running.poller.cycle_done.wait()
        async with running.session.get(running.url + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert "softlayer_account_balance_usd" in names
        assert (
            'softlayer_api_requests_total{account="prod",code="200",method="getObject"} 5.0' in text
        )

    async def test_openmetrics(self, running):
        """OpenMetrics is served when Prometheus asks for it."""
        headers = {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
        async with running.session.get(running.url + "/metrics", headers=headers) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await resp.text()
        assert text.endswith("# EOF\n")
        assert "# TYPE softlayer_exporter_build info" in text

    async def test_gzip(self, running):
        """gzip is used when accepted, and the body decompresses to the exposition."""
        headers = {"Accept-Encoding": "gzip"}
        async with running.session.get(
            running.url + "/metrics", headers=headers, auto_decompress=False
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            body = await resp.read()
        assert b"softlayer_exporter_build_info" in gzip.decompress(body)

    async def test_no_gzip_unless_asked(self, running):
        """Without Accept-Encoding: gzip the body is plain."""
        async with running.session.get(
            running.url + "/metrics", headers={"Accept-Encoding": "identity"}
        ) as resp:
            assert "Content-Encoding" not in resp.headers
            assert b"softlayer_up" in await resp.read()


class TestProbes:
    async def test_readyz_after_first_cycle(self, running):
        """/readyz is 503 until the first poll cycle finished and /metrics serves it, then 200."""
        async with running.session.get(running.url + "/readyz") as resp:
            assert resp.status == 503
        running.poller.release.set()
        await running.poller.cycle_done.wait()
        await refreshed(running.runner)
        async with running.session.get(running.url + "/readyz") as resp:
            assert resp.status == 200

    async def test_healthz_alive(self, running):
        """/healthz is 200 while the poller task runs."""
        async with running.session.get(running.url + "/healthz") as resp:
            assert resp.status == 200

    async def test_healthz_poller_died(self):
        """/healthz is 503 once the poller task has died, and the death is logged."""
        state = ExporterState(("prod",))
        poller = FakePoller(state)
        poller.crash = True
        runner, url = await run_app(state, poller)
        try:
            with capture_logs() as logs:
                poller.release.set()
                task = runner.app[POLLER_TASK]
                reported = asyncio.Event()
                # A task's done-callbacks run in the order they were added (each via
                # call_soon): this one runs right after the server's, which logs the death.
                task.add_done_callback(lambda _: reported.set())
                await reported.wait()
            assert [e["event"] for e in logs] == ["poller_failed"]
            assert "poller bug" in logs[0]["error"]
            async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as resp:
                assert resp.status == 503
        finally:
            await runner.cleanup()

    async def test_shutdown_stops_poller_and_closes(self):
        """Cleaning up the app stops the poller task and closes its session."""
        state = ExporterState(("prod",))
        poller = FakePoller(state, b.full_snapshot())
        runner, _ = await run_app(state, poller)
        await runner.cleanup()
        assert poller.stopped.is_set()
        assert poller.closed


class TestLanding:
    async def test_per_account_and_source(self):
        """The landing page lists each source's state, last success, error and next poll."""
        state = b.state(b.full_snapshot("prod", down=[Source.INVOICES]))
        runner, url = await run_app(state, None)
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
                assert resp.status == 200
                assert resp.content_type == "text/html"
                page = await resp.text()
        finally:
            await runner.cleanup()
        assert '<a href="/metrics">' in page
        assert page.count("<tr><td>prod</td>") == len(Source)
        assert "DOWN" in page
        assert "[server]" in page
        assert "2027-01-15 08:15:00 UTC" in page  # next poll 1_800_000_900

    async def test_escapes_everything(self):
        """Account names and error texts are HTML-escaped."""
        snap = b.full_snapshot("prod", down=[Source.ACCOUNT])
        status = snap.sources[Source.ACCOUNT]
        evil = "<script>alert(1)</script>"
        sources = dict(snap.sources)
        sources[Source.ACCOUNT] = type(status)(
            up=False,
            last_attempt=status.last_attempt,
            last_success=None,
            last_error=evil,
            last_error_reason="decode",
        )
        state = b.state(AccountSnapshot(name="a<b>&c", sources=sources))
        runner, url = await run_app(state, None)
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
                page = await resp.text()
        finally:
            await runner.cleanup()
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "a&lt;b&gt;&amp;c" in page

    async def test_not_polled_yet(self):
        """Before the first poll the page says so."""
        runner, url = await run_app(ExporterState(("prod",)), None)
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
                assert "not polled yet" in await resp.text()
        finally:
            await runner.cleanup()


class TestListenAddress:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (":29610", (None, 29610)),
            ("127.0.0.1:0", ("127.0.0.1", 0)),
            ("[::1]:8080", ("::1", 8080)),
        ],
    )
    def test_valid(self, text, expected):
        """[host]:port forms are split into host and port."""
        assert parse_listen_address(text) == expected

    @pytest.mark.parametrize("text", ["29610", "host:", "host:http", ":70000"])
    def test_invalid(self, text):
        """Anything else is a clear error."""
        with pytest.raises(ValueError, match="listen address must be"):
            parse_listen_address(text)

    async def test_reports_bound_port(self):
        """Binding port 0 reports the real port in the URL."""
        state = ExporterState()
        app = create_app(state, Exposition(state, b.api_stats(), b.config()))
        runner, urls = await start_server(app, "127.0.0.1", 0)
        try:
            assert urls[0].startswith("http://127.0.0.1:")
            assert not urls[0].endswith(":0")
        finally:
            await runner.cleanup()
