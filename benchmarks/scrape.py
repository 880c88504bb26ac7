"""The scrape benchmark's load side: N concurrent scrapers against one server process.

Two loads, each scraper on its own keep-alive connection, sending the request Prometheus
sends (``Accept-Encoding: gzip`` and the OpenMetrics-first ``Accept``) through a minimal
HTTP/1.1 client (see :class:`_Connection`):

- closed loop: request, read the whole body, request again, no pause; latency from sending
  the request to the last byte;
- open loop, like a fleet of Prometheus servers: each scraper sends one scrape every
  ``interval`` seconds, the scrapers' phases spread evenly over the interval; latency is
  measured from the *scheduled* send time to the last byte, so a server that falls behind
  is charged for the wait too (no coordinated omission).

The server's CPU time is read from /proc before and after and divided by the number of
scrapes it answered.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.harness import ChildProcess, proc_cpu_seconds

__all__ = ["OpenLoop", "ScrapeResult", "run_scrape_benchmark"]

#: What Prometheus 2.x sends on every scrape.
PROMETHEUS_HEADERS = {
    "Accept": (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    ),
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
}


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """An open-loop load: ``scrapers`` scrapers, each once per ``interval`` seconds."""

    scrapers: int
    interval: float
    scrapes: int


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """Latency and cost of one (server, load) cell."""

    server: str
    mode: str  # "closed" or "open"
    concurrency: int
    scrapes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_second: float
    cpu_ms_per_scrape: float
    cpu_resolution_ms: float  # one CPU clock tick spread over the scrapes: the smallest step
    body_bytes: int
    series: int


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends Prometheus' request, byte for byte.

    A minimal client on asyncio streams rather than aiohttp's: in a closed loop of 50
    scrapers the aiohttp client's own CPU time per request was the bottleneck (even the
    pre-rendered reference server then showed p99 ~30 ms), so the benchmark measured the
    load generator. Every server answers with Content-Length (no chunked encoding).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> _Connection:
        parts = urlsplit(url)
        assert parts.hostname is not None
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> bytes:
        """Send the request, read the whole response, return its body."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = -1
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if status != b"200" or length < 0:
            msg = f"unexpected response: {head[:200]!r}"
            raise RuntimeError(msg)
        return await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


def _request(url: str) -> bytes:
    parts = urlsplit(url)
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in PROMETHEUS_HEADERS.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connect(url: str, count: int, *, warm_up: bool) -> list[_Connection]:
    """Open ``count`` connections (like long-running scrapers, they stay open)."""
    connections = [await _Connection.open(url) for _ in range(count)]
    if warm_up:
        request = _request(url)
        await asyncio.gather(*(c.get(request) for c in connections))
    return connections


async def _load(
    url: str, concurrency: int, scrapes: int, *, warm_up: bool
) -> tuple[list[float], float, bytes]:
    latencies: list[float] = []
    remaining = scrapes
    body = b""
    request = _request(url)
    connections = await _connect(url, concurrency, warm_up=warm_up)

    async def scraper(connection: _Connection) -> None:
        nonlocal remaining, body
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            payload = await connection.get(request)
            latencies.append(time.perf_counter() - started)
            body = body or payload

    try:
        started = time.perf_counter()
        await asyncio.gather(*(scraper(c) for c in connections))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return latencies, elapsed, body


async def _open_load(url: str, load: OpenLoop) -> tuple[list[float], float, bytes]:
    latencies: list[float] = []
    body = b""
    rounds = max(1, -(-load.scrapes // load.scrapers))
    request = _request(url)
    connections = await _connect(url, load.scrapers, warm_up=True)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def scraper(index: int, connection: _Connection) -> None:
        nonlocal body
        phase = start + load.interval * index / load.scrapers
        for round_ in range(rounds):
            due = phase + round_ * load.interval
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
            payload = await connection.get(request)
            latencies.append(loop.time() - due)
            body = body or payload

    try:
        started = time.perf_counter()
        await asyncio.gather(*(scraper(i, c) for i, c in enumerate(connections)))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return latencies, elapsed, body


def _series(body: bytes) -> int:
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def _result(
    server: str,
    mode: str,
    concurrency: int,
    measured: tuple[list[float], float, bytes],
    cpu_seconds: float,
    served: int,
) -> ScrapeResult:
    """Summarise one cell; ``served`` counts every request the CPU time paid for."""
    latencies, elapsed, body = measured
    latencies.sort()
    return ScrapeResult(
        server=server,
        mode=mode,
        concurrency=concurrency,
        scrapes=len(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=latencies[-1] * 1000,
        throughput_per_second=len(latencies) / elapsed,
        cpu_ms_per_scrape=cpu_seconds / served * 1000,
        cpu_resolution_ms=1000 / os.sysconf("SC_CLK_TCK") / served,
        body_bytes=len(body),
        series=_series(body),
    )


def run_scrape_benchmark(
    servers: list[str],
    concurrencies: list[int],
    scrapes: int,
    accounts: int,
    categories: int,
    *,
    warm_up: bool = True,
    open_loop: OpenLoop | None = None,
) -> list[ScrapeResult]:
    """Start each server in its own process and load it at every concurrency level.

    Each level makes ``scrapes`` scrapes, at least one per scraper; ``warm_up`` first opens
    every connection with one unmeasured scrape each. ``open_loop`` adds an open-loop load
    after the closed-loop levels, in the same server process.
    """
    results: list[ScrapeResult] = []
    for server in servers:
        with ChildProcess(
            "benchmarks.scrape_server",
            [server, "--accounts", str(accounts), "--categories", str(categories)],
        ) as child:
            url = child.hello["url"]
            # One unmeasured scrape first: imports and first-use costs are not per scrape.
            asyncio.run(_load(url, 1, 1, warm_up=False))
            for concurrency in concurrencies:
                count = max(scrapes, concurrency)
                cpu_before = proc_cpu_seconds(child.pid)
                measured = asyncio.run(_load(url, concurrency, count, warm_up=warm_up))
                # The warm-up requests are part of the server's CPU time too.
                served = count + (concurrency if warm_up else 0)
                cpu = proc_cpu_seconds(child.pid) - cpu_before
                results.append(_result(server, "closed", concurrency, measured, cpu, served))
            if open_loop is not None:
                cpu_before = proc_cpu_seconds(child.pid)
                measured = asyncio.run(_open_load(url, open_loop))
                cpu = proc_cpu_seconds(child.pid) - cpu_before
                served = len(measured[0]) + open_loop.scrapers  # the warm-up scrapes too
                results.append(_result(server, "open", open_loop.scrapers, measured, cpu, served))
    return results
