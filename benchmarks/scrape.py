"""The scrape benchmark's load side: N concurrent scrapers against one server process.

Each scraper is a closed loop (request, read the whole body, request again) on its own
keep-alive connection, sending the headers Prometheus sends (``Accept-Encoding: gzip`` and the
OpenMetrics-first ``Accept``). Latency is measured at the client from sending the request to
the last byte; the server's CPU time is read from /proc before and after and divided by the
number of scrapes it answered.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.harness import ChildProcess, proc_cpu_seconds

__all__ = ["ScrapeResult", "run_scrape_benchmark"]

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
class ScrapeResult:
    """Latency and cost of one (server, concurrency) cell."""

    server: str
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


async def _load(
    url: str, concurrency: int, scrapes: int, *, warm_up: bool
) -> tuple[list[float], float, bytes]:
    latencies: list[float] = []
    remaining = scrapes
    body = b""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, headers=PROMETHEUS_HEADERS
    ) as session:

        async def scraper() -> None:
            nonlocal remaining, body
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.get(url) as response:
                    payload = await response.read()
                    response.raise_for_status()
                latencies.append(time.perf_counter() - started)
                body = body or payload

        # Open every connection once before measuring, like long-running scrapers would.
        if warm_up:
            await asyncio.gather(*(_one(session, url) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(scraper() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, body


async def _one(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as response:
        await response.read()
        response.raise_for_status()


def _series(body: bytes) -> int:
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def run_scrape_benchmark(
    servers: list[str],
    concurrencies: list[int],
    scrapes: int,
    accounts: int,
    categories: int,
    *,
    warm_up: bool = True,
) -> list[ScrapeResult]:
    """Start each server in its own process and load it at every concurrency level.

    Each level makes ``scrapes`` scrapes, at least one per scraper; ``warm_up`` first opens
    every connection with one unmeasured scrape each.
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
                latencies, elapsed, body = asyncio.run(
                    _load(url, concurrency, count, warm_up=warm_up)
                )
                # The warm-up requests are part of the server's CPU time too.
                served = count + (concurrency if warm_up else 0)
                cpu = proc_cpu_seconds(child.pid) - cpu_before
                latencies.sort()
                results.append(
                    ScrapeResult(
                        server=server,
                        concurrency=concurrency,
                        scrapes=count,
                        p50_ms=statistics.median(latencies) * 1000,
                        p99_ms=_percentile(latencies, 0.99) * 1000,
                        max_ms=latencies[-1] * 1000,
                        throughput_per_second=count / elapsed,
                        cpu_ms_per_scrape=cpu / served * 1000,
                        cpu_resolution_ms=1000 / os.sysconf("SC_CLK_TCK") / served,
                        body_bytes=len(body),
                        series=_series(body),
                    )
                )
    return results
