"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page at ``/``.

This module only wires things together: the collector renders, the poller polls, and the
app runs the poller as a background task for as long as it serves (aiohttp's
``cleanup_ctx``, so shutdown cancels the poll and closes the HTTP session in order).

Probe semantics: ``/healthz`` fails only when the poller task has died (a restart helps
then); ``/readyz`` turns 200 once the first poll cycle has finished, success or not.
SoftLayer outages show up in ``softlayer_up``, not in the probes: restarting never fixes
an upstream outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import html
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter import __version__
from exporter.logs import redact
from exporter.api_stats import ApiStats as ApiStatsView
from exporter.snapshot import ExporterState
from exporter.webconfig import WebConfig, basic_auth_middleware, headers_middleware

__all__ = [
    "DEFAULT_PORT",
    "POLLER_TASK",
    "STATE",
    "PollerLike",
    "create_app",
    "parse_listen_address",
    "start_server",
]

#: Not in Prometheus' default port allocation list, whose 9100-9999 range is full.
DEFAULT_PORT: Final = 29610
#: Grace for in-flight requests on shutdown (a scrape is rendered from memory: quick).
SHUTDOWN_TIMEOUT_SECONDS: Final = 1.0
#: Grace for the poller to stop on shutdown before its task is cancelled outright.
STOP_GRACE_SECONDS: Final = 2.0

STATE: Final = web.AppKey("state", ExporterState)
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
POLLER_TASK: Final = web.AppKey("poller_task", asyncio.Task[None])
#: Renders of /metrics made in the current event-loop iteration, by (content type, gzip).
API_STATS: Final[web.AppKey[ApiStatsView | None]] = web.AppKey("api_stats")
RENDER_CACHE: Final[web.AppKey[dict[tuple[str, bool], _CachedRender]]] = web.AppKey("render_cache")
#: How old the ``process_*`` metrics in a cached rendering may get. The billing data and the
#: API counters are never served stale: a change to either invalidates the cache at once.
MAX_RENDER_AGE_SECONDS: Final = 1.0


class _CachedRender:
    """One encoded exposition and the content version it was rendered from."""

    __slots__ = ("body", "rendered_at", "version")

    def __init__(self, version: tuple[object, ...], rendered_at: float, body: bytes) -> None:
        self.version = version
        self.rendered_at = rendered_at
        self.body = body

    def serves(self, version: tuple[object, ...], now: float) -> bool:
        """Tell whether this rendering is still exactly what a fresh one would say."""
        if now - self.rendered_at >= MAX_RENDER_AGE_SECONDS or len(version) != len(self.version):
            return False
        # Identity first: a published snapshot mapping is a new object, so `is` settles it
        # without comparing every snapshot field.
        return all(a is b or a == b for a, b in zip(version, self.version, strict=True))


_log = structlog.get_logger()


class PollerLike(Protocol):
    """What the server needs of :class:`exporter.poller.Poller`."""

    @property
    def api_stats(self) -> ApiStatsView:
        """Request statistics read by the collector."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP session."""
        ...


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """Split ``host:port`` (``:29610``, ``127.0.0.1:0``, ``[::1]:8080``) into its parts.

    An empty host means every interface (``None`` for aiohttp).

    Raises:
        ValueError: the address is not ``[host]:port`` with a port in 0-65535.

    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        msg = f"listen address must be [host]:port, got {address!r}"
        raise ValueError(msg)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port_text)


def create_app(
    state: ExporterState,
    registry: CollectorRegistry,
    *,
    poller: PollerLike | None = None,
    web_config: WebConfig | None = None,
    clock: Callable[[], float] = time.time,
    api_stats: ApiStatsView | None = None,
) -> web.Application:
    """Build the application; with a ``poller``, it polls in the background while serving.

    /metrics renders once per change of what it shows (a published snapshot, or a move of
    the API counters: ``api_stats``, by default the poller's) and serves the cached bytes
    until the next one, or for at most MAX_RENDER_AGE_SECONDS for the ``process_*`` metrics.
    """
    middlewares: list[Middleware] = []
    if web_config is not None and web_config.users:
        middlewares.append(basic_auth_middleware(web_config.users))
    if web_config is not None and web_config.headers:
        middlewares.append(headers_middleware(web_config.headers))
    app = web.Application(middlewares=middlewares)
    app[STATE] = state
    app[REGISTRY] = registry
    app[API_STATS] = api_stats if api_stats is not None or poller is None else poller.api_stats
    app[RENDER_CACHE] = {}
    if poller is not None:
        app.cleanup_ctx.append(_poller_context(poller))
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _landing(clock))
    return app


def _poller_context(
    poller: PollerLike,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop), name="poller")
        task.add_done_callback(_report_death)
        app[POLLER_TASK] = task
        try:
            yield
        finally:
            # Ask politely first (run() cancels a cycle in flight when stop is set),
            # then cancel outright, then close the session: nothing is left half-open.
            stop.set()
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await poller.aclose()
            _log.info("poller_stopped")

    return context


def _report_death(task: asyncio.Task[None]) -> None:
    # Logged when it happens, not at shutdown: /healthz turns 503 at the same moment.
    if not task.cancelled() and task.exception() is not None:
        _log.error("poller_failed", error=repr(task.exception()))


async def _metrics(request: web.Request) -> web.Response:
    # Same negotiation as prometheus-client's own handlers: OpenMetrics when asked for,
    # gzip when accepted. Rendering reads an in-memory snapshot, so it runs on the loop.
    accept = ",".join(request.headers.getall("Accept", []))
    encoder, content_type = choose_encoder(accept)
    zipped = gzip_accepted(",".join(request.headers.getall("Accept-Encoding", [])))
    headers = {"Content-Type": content_type}
    if zipped:
        headers["Content-Encoding"] = "gzip"
    # Rendering ~4,500 series costs tens of ms of loop time; doing it per scrape starved the
    # poller under many scrapers. Render once per change instead: a publish swaps the
    # snapshot mapping (compared by identity) and every counted request bumps the version.
    api_stats = request.app[API_STATS]
    version = (
        request.app[STATE].accounts,
        None if api_stats is None else api_stats.version,
    )
    now = time.monotonic()
    cache = request.app[RENDER_CACHE]
    entry = cache.get((content_type, zipped))
    if entry is None or not entry.serves(version, now):
        body = encoder(request.app[REGISTRY])
        if zipped:
            body = gzip.compress(body)
        entry = cache[(content_type, zipped)] = _CachedRender(version, now, body)
    return web.Response(body=entry.body, headers=headers)


async def _healthz(request: web.Request) -> web.Response:
    task = request.app.get(POLLER_TASK)
    if task is not None and task.done():
        return web.Response(status=503, text="poller stopped\n")
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    if request.app[STATE].first_cycle_done:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="waiting for the first poll cycle\n")


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "never"
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = int(moment - now)
    relative = f"in {delta}s" if delta >= 0 else f"{-delta}s ago"
    return f"{stamp} ({relative})"


def _landing(clock: Callable[[], float]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def landing(request: web.Request) -> web.Response:
        now = clock()
        esc = html.escape
        rows: list[str] = []
        for snap in request.app[STATE].accounts.values():
            next_poll = esc(_when(snap.next_poll, now))
            if not snap.sources:
                rows.append(
                    f"<tr><td>{esc(snap.name)}</td><td colspan=5>not polled yet</td>"
                    f"<td>{next_poll}</td></tr>"
                )
            for source, status in snap.sources.items():
                error = "" if status.last_error is None else redact(status.last_error)
                if status.last_error_reason:
                    error = f"[{status.last_error_reason}] {error}"
                rows.append(
                    "<tr>"
                    f"<td>{esc(snap.name)}</td><td>{esc(str(source))}</td>"
                    f"<td class={'up' if status.up else 'down'}>"
                    f"{'up' if status.up else 'DOWN'}</td>"
                    f"<td>{esc(_when(status.last_success, now))}</td>"
                    f"<td>{esc(_when(status.last_attempt, now))}</td>"
                    f"<td>{esc(error)}</td><td>{next_poll}</td>"
                    "</tr>"
                )
        body = _PAGE.format(version=esc(__version__), rows="\n".join(rows))
        return web.Response(text=body, content_type="text/html")

    return landing


_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SoftLayer billing exporter</title>
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}
.up{{color:green}}.down{{color:red;font-weight:bold}}</style></head>
<body><h1>SoftLayer billing exporter</h1>
<p>Version {version}. <a href="/metrics">Metrics</a> &middot; <a href="/healthz">healthz</a>
&middot; <a href="/readyz">readyz</a></p>
<p>Billing metrics are cached: a background poller refreshes them every poll interval.</p>
<table><thead><tr><th>account</th><th>source</th><th>state</th><th>last success</th>
<th>last attempt</th><th>last error</th><th>next poll</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


async def start_server(
    app: web.Application, host: str | None, port: int, web_config: WebConfig | None = None
) -> tuple[web.AppRunner, list[str]]:
    """Start serving ``app``; return the runner (``await runner.cleanup()`` to stop) and URLs."""
    # No access log: a line per scrape is noise, and prometheus-async does the same.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    ssl_context = None if web_config is None else web_config.ssl_context
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        # setup() already started the poller: stop it and close its session.
        await runner.cleanup()
        raise
    scheme = "https" if ssl_context is not None else "http"
    urls: list[str] = []
    for address in runner.addresses:
        bound_host, bound_port = address[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        urls.append(f"{scheme}://{shown}:{bound_port}")
    return runner, urls
