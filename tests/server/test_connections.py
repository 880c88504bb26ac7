"""Connection hygiene over loopback: the request-header deadline and the request bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from exporter.exposition import Exposition
from exporter.server import SERVER_HEADER, create_app, start_server
from tests.helpers import builders as b

from .conftest import run_app

#: Short enough for a test, long enough that "closed before it" would be a real bug.
TIMEOUT = 0.5
DEADLINE = 30.0
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


@dataclass
class Endpoint:
    host: str
    port: int


@pytest.fixture(name="endpoint")
async def _endpoint() -> AsyncIterator[Endpoint]:
    runner, url = await run_app(b.state(b.full_snapshot()), None, header_timeout=TIMEOUT)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    yield Endpoint(host, int(port))
    await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response with a Content-Length body, headers included."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (EOF or reset), with nothing sent."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        data = await asyncio.wait_for(reader.read(), DEADLINE)
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    return loop.time() - started


def holding_app(max_requests: int) -> tuple[web.Application, asyncio.Semaphore, asyncio.Event]:
    """The exporter's app plus a /hold route that waits for ``release``; ``entered`` counts."""
    state = b.state(b.full_snapshot())
    app = create_app(state, Exposition(state, b.api_stats(), b.config()), max_requests=max_requests)
    entered, release = asyncio.Semaphore(0), asyncio.Event()

    async def hold(_request: web.Request) -> web.Response:
        entered.release()
        await release.wait()
        return web.Response(text="held\n")

    app.router.add_get("/hold", hold)
    return app, entered, release


class TestHeaderDeadline:
    async def test_half_a_request_line_is_closed(self, endpoint):
        """A connection that never finishes its request line is closed after the deadline."""
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        writer.write(b"GET /metr")
        elapsed = await closed_after(reader)
        writer.close()
        assert elapsed >= TIMEOUT * 0.9  # the deadline, not an error at once

    async def test_silent_connection_is_closed(self, endpoint):
        """A connection that sends nothing at all is closed after the deadline too."""
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        await closed_after(reader)
        writer.close()

    async def test_idle_kept_alive_connection_stays_and_next_headers_get_a_deadline(self, endpoint):
        """Between requests an idle connection is kept (Prometheus reuses it); once the next
        request starts, its headers have the deadline again."""
        idle_reader, idle = await asyncio.open_connection(endpoint.host, endpoint.port)
        idle.write(HEALTHZ)
        assert b" 200 " in await read_response(idle_reader)
        again_reader, again = await asyncio.open_connection(endpoint.host, endpoint.port)
        again.write(HEALTHZ)
        assert b" 200 " in await read_response(again_reader)
        # Another connection's deadline passing proves both have been idle longer than it.
        probe_reader, probe = await asyncio.open_connection(endpoint.host, endpoint.port)
        probe.write(b"GET /")
        await closed_after(probe_reader)
        probe.close()
        idle.write(HEALTHZ)
        assert b" 200 " in await read_response(idle_reader)
        again.write(b"GET /healthz HTT")
        assert await closed_after(again_reader) >= TIMEOUT * 0.9
        idle.close()
        again.close()

    async def test_complete_requests_are_served_meanwhile(self, endpoint):
        """Dozens of stalled connections do not keep a real request from being answered."""
        stalled = [await asyncio.open_connection(endpoint.host, endpoint.port) for _ in range(50)]
        for _, writer in stalled:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{endpoint.host}:{endpoint.port}/metrics") as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Server"] == SERVER_HEADER
        for reader, writer in stalled:
            await closed_after(reader)
            writer.close()


class TestRequestBound:
    async def test_requests_over_the_bound_get_503_and_probes_do_not(self):
        """With the bound reached, /metrics answers 503 at once, /healthz still 200; once a
        request ends, /metrics is served again."""
        app, entered, release = holding_app(2)
        runner, urls = await start_server(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:

                async def get(path: str) -> tuple[int, str]:
                    async with session.get(urls[0] + path) as resp:
                        return resp.status, await resp.text()

                held = [asyncio.ensure_future(get("/hold")) for _ in range(2)]
                for _ in held:
                    await asyncio.wait_for(entered.acquire(), DEADLINE)
                status, text = await get("/metrics")
                assert (status, text) == (
                    503,
                    "Limit of concurrent requests reached (2), try again later.\n",
                )
                assert (await get("/healthz"))[0] == 200
                release.set()
                assert [await h for h in held] == [(200, "held\n")] * 2
                assert (await get("/metrics"))[0] == 200
        finally:
            release.set()
            await runner.cleanup()

    async def test_zero_means_no_bound(self):
        """--web.max-requests 0: any number of requests are served at once."""
        app, entered, release = holding_app(0)
        runner, urls = await start_server(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:

                async def get(path: str) -> int:
                    async with session.get(urls[0] + path) as resp:
                        await resp.read()
                        return resp.status

                held = [asyncio.ensure_future(get("/hold")) for _ in range(60)]
                for _ in held:
                    await asyncio.wait_for(entered.acquire(), DEADLINE)
                assert await get("/metrics") == 200
                release.set()
                assert {await h for h in held} == {200}
        finally:
            release.set()
            await runner.cleanup()
