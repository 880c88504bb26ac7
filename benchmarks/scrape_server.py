"""One /metrics server over prebuilt snapshots in its own process.

``python -m benchmarks.scrape_server ours|alt`` serves on an ephemeral loopback port, prints
``{"url": ...}`` and runs until stdin closes. ``ours`` is the exporter's own aiohttp app with
its SnapshotCollector; ``alt`` is the usual exporter: Gauges set once in a registry and
``prometheus_client.aiohttp.make_aiohttp_handler`` rendering the registry on every scrape.
Running each in its own process lets the driver charge the server's CPU time to its scrapes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from benchmarks.alt_registry import build_registry
from benchmarks.harness import emit
from benchmarks.snapshots import build_config, build_state
from exporter.config import Config
from exporter.snapshot import ExporterState


def _alt_app(state: ExporterState, config: Config) -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(build_registry(state, config)))
    return app


def _ours_app(state: ExporterState, config: Config) -> web.Application:
    raise NotImplementedError("wired once exporter.server lands")


async def _serve(args: argparse.Namespace) -> None:
    config = build_config(args.accounts, args.categories)
    state = build_state(args.accounts, args.categories)
    app = _ours_app(state, config) if args.server == "ours" else _alt_app(state, config)
    # No access log on either side: it would dominate the per-scrape cost of both equally.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    emit({"url": f"http://{host}:{port}/metrics"})
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or '"quit"' in line:
                return
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape_server")
    parser.add_argument("server", choices=["ours", "alt"])
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--categories", type=int, default=200)
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
