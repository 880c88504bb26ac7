"""One /metrics server over prebuilt snapshots in its own process.

``python -m benchmarks.scrape_server ours|alt|cached`` serves on an ephemeral loopback port, prints
``{"url": ...}`` and runs until stdin closes. ``ours`` is the exporter's own aiohttp app and
listener serving its Exposition (rendered ahead of the scrape); ``alt`` is the usual
exporter: Gauges set once in a registry and ``prometheus_client.aiohttp.make_aiohttp_handler``
rendering the registry on every scrape (set from our collector's output once, see
:mod:`benchmarks.alt_registry`);
``cached`` is a reference point: our exposition rendered once and served as bytes.
Running each in its own process lets the driver charge the server's CPU time to its scrapes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys

import prometheus_client
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import choose_encoder, gzip_accepted

from benchmarks import alt_registry
from benchmarks.harness import emit
from benchmarks.snapshots import build_api_stats, build_config, build_state
from exporter import metrics, server
from exporter.api_stats import ApiStats
from exporter.config import Config
from exporter.exposition import Exposition
from exporter.snapshot import ExporterState


def _alt_app(state: ExporterState, api_stats: ApiStats, config: Config) -> web.Application:
    # Our collector emits no ``_created`` series; keep the series sets equal.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    app = web.Application()
    ours = metrics.build_registry(state, api_stats, config, process_metrics=False)
    registry = alt_registry.mirror(ours.collect())
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app


def _ours_app(state: ExporterState, api_stats: ApiStats, config: Config) -> web.Application:
    # Exactly what exporter.cli serves, minus the poller: the snapshots are prebuilt.
    return server.create_app(state, Exposition(state, api_stats, config))


def _cached_app(state: ExporterState, api_stats: ApiStats, config: Config) -> web.Application:
    """Reference point, not a contender: our families rendered and gzipped once, then served.

    This is what rendering once per poll (instead of once per scrape) would cost, and so the
    lower bound for an aiohttp server of this exposition size.
    """
    registry = metrics.build_registry(state, api_stats, config, process_metrics=False)
    rendered: dict[str, tuple[bytes, bytes]] = {}

    async def handler(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(",".join(request.headers.getall("Accept", [])))
        if content_type not in rendered:
            body = encoder(registry)
            rendered[content_type] = (body, gzip.compress(body))
        plain, packed = rendered[content_type]
        headers = {"Content-Type": content_type}
        if gzip_accepted(",".join(request.headers.getall("Accept-Encoding", []))):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=packed, headers=headers)
        return web.Response(body=plain, headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


SERVERS = {"ours": _ours_app, "alt": _alt_app, "cached": _cached_app}


async def _serve(args: argparse.Namespace) -> None:
    config = build_config(args.accounts, args.categories)
    state = build_state(args.accounts, args.categories)
    api_stats = build_api_stats(args.accounts)
    app = SERVERS[args.server](state, api_stats, config)
    if args.server == "ours":
        # The exporter's own listener: connection guard, request bound, headers included.
        runner, urls = await server.start_server(app, "127.0.0.1", 0)
        await app[server.EXPOSITION].refreshed()
        url = urls[0] + "/metrics"
    else:
        # No access log on either side: it would dominate the per-scrape cost of both equally.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}/metrics"
    emit({"url": url})
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
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--categories", type=int, default=200)
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
