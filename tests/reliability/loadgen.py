"""A loopback load generator: N concurrent scrapers hammer one URL for D seconds.

Run as a separate process (``python -m tests.reliability.loadgen URL --concurrency 200
--duration 20``) so the load does not share an event loop with what it measures. With
``--until-eof`` it runs until its stdin closes instead (``--duration`` is then a safety cap),
so a test can end the load on an event. Prints one JSON line: requests, failures (non-200 or
transport error, with the first few reasons) and latency percentiles in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time

import aiohttp


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[max(0, index)]


async def scraper(
    session: aiohttp.ClientSession,
    url: str,
    until: float,
    stop: asyncio.Event,
    latencies: list[float],
    failures: list[str],
) -> None:
    while time.monotonic() < until and not stop.is_set():
        started = time.perf_counter()
        try:
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or not body:
                    failures.append(f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures.append(repr(exc))
        latencies.append(time.perf_counter() - started)


async def stop_at_eof(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches end of file."""
    await asyncio.to_thread(sys.stdin.read)
    stop.set()


async def run(url: str, concurrency: int, duration: float, until_eof: bool) -> dict[str, object]:
    latencies: list[float] = []
    failures: list[str] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(stop_at_eof(stop)) if until_eof else None
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        until = started + duration
        await asyncio.gather(
            *(scraper(session, url, until, stop, latencies, failures) for _ in range(concurrency))
        )
        elapsed = time.monotonic() - started
    if watcher is not None:
        watcher.cancel()
    latencies.sort()
    return {
        "url": url,
        "concurrency": concurrency,
        "duration_seconds": round(elapsed, 3),
        "requests": len(latencies),
        "failures": len(failures),
        "failure_samples": failures[:5],
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_seconds": round(percentile(latencies, 0.50), 4),
        "p99_seconds": round(percentile(latencies, 0.99), 4),
        "max_seconds": round(latencies[-1], 4) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--until-eof", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args.url, args.concurrency, args.duration, args.until_eof))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
