"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page at ``/``.

This module wires things together: the exposition (metrics layer) renders, the poller polls,
and the app runs both as background tasks for as long as it serves (aiohttp's
``cleanup_ctx``, so shutdown cancels the poll and closes the HTTP session in order).

Probe semantics: ``/healthz`` fails only when the poller task has died (a restart helps
then); ``/readyz`` turns 200 once the first poll cycle has finished, success or not, and
/metrics serves it. SoftLayer outages show up in ``softlayer_up``, not in the probes:
restarting never fixes an upstream outage.

Connection hygiene, as a Go exporter has it (``net/http`` plus node_exporter's flags):

- a connection that does not finish its request headers within ``header_timeout`` of being
  accepted (or, on a kept-alive connection, of its next request's first byte) is closed;
  the TLS handshake has the same deadline;
- at most ``max_requests`` requests are served at once (``--web.max-requests``, as in
  node_exporter); more get 503 at once, probes excepted;
- the soft limit on open files is raised to the hard limit at start (Go does it itself);
- errors the event loop logs per connection (``accept()`` out of file descriptors, ...) are
  rate-limited, so an attack cannot fill the disk with log lines;
- responses say ``Server: softlayer-billing-exporter`` (no versions) and carry the web
  config's headers, error responses included.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import resource
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter import __version__
from exporter.exposition import Exposition, negotiate
from exporter.logs import redact
from exporter.snapshot import ExporterState
from exporter.webconfig import OPEN_PATHS, BasicAuth, WebConfig

__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_PORT",
    "HEADER_TIMEOUT_SECONDS",
    "POLLER_TASK",
    "SERVER_HEADER",
    "STATE",
    "PollerLike",
    "create_app",
    "parse_listen_address",
    "raise_open_files_limit",
    "start_server",
]

#: Not in Prometheus' default port allocation list, whose 9100-9999 range is full.
DEFAULT_PORT: Final = 29610
#: Grace for in-flight requests on shutdown (a scrape is served from memory: quick).
SHUTDOWN_TIMEOUT_SECONDS: Final = 1.0
#: Grace for the poller to stop on shutdown before its task is cancelled outright.
STOP_GRACE_SECONDS: Final = 2.0
#: Time to send the request headers (and to finish the TLS handshake). Prometheus sends
#: them in one packet; only a broken or hostile client needs more than a few seconds.
HEADER_TIMEOUT_SECONDS: Final = 10.0
#: How long a kept-alive connection may sit idle between requests: longer than the usual
#: scrape intervals (up to a minute), so Prometheus reuses its connection.
IDLE_TIMEOUT_SECONDS: Final = 120.0
#: node_exporter's default for --web.max-requests.
DEFAULT_MAX_REQUESTS: Final = 40
#: The Server header of every response: no product versions for a scanner to match.
SERVER_HEADER: Final = "softlayer-billing-exporter"
#: Lines per message template per window that the event loop's and aiohttp's loggers may
#: write; the rest are counted and reported in one line when the next window opens.
LOG_BURST: Final = 10
LOG_WINDOW_SECONDS: Final = 60.0

STATE: Final = web.AppKey("state", ExporterState)
EXPOSITION: Final = web.AppKey("exposition", Exposition)
POLLER_TASK: Final = web.AppKey("poller_task", asyncio.Task[None])
_GUARDS: Final = web.AppKey("connection_guards", dict[object, "_GuardedConnection"])

_log = structlog.get_logger()


class PollerLike(Protocol):
    """What the server needs of :class:`exporter.poller.Poller`."""

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
    exposition: Exposition,
    *,
    poller: PollerLike | None = None,
    web_config: WebConfig | None = None,
    clock: Callable[[], float] = time.time,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> web.Application:
    """Build the application; with a ``poller``, it polls in the background while serving.

    ``exposition`` is all /metrics serves; it is kept rendered in the background for as
    long as the application runs. ``max_requests`` 0 means no limit.
    """
    guards: dict[object, _GuardedConnection] = {}
    middlewares: list[Middleware] = [_hygiene(guards, max_requests)]
    auth = None if web_config is None or not web_config.users else BasicAuth(web_config.users)
    if auth is not None:
        middlewares.append(auth.middleware)
    app = web.Application(middlewares=middlewares)
    app[STATE] = state
    app[EXPOSITION] = exposition
    app[_GUARDS] = guards
    if auth is not None:
        app.on_startup.append(auth.prepare)
    app.on_response_prepare.append(
        _response_headers({} if web_config is None else dict(web_config.headers))
    )
    app.cleanup_ctx.append(_exposition_context(exposition))
    if poller is not None:
        app.cleanup_ctx.append(_poller_context(poller))
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _landing(clock))
    return app


def _exposition_context(
    exposition: Exposition,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def context(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(exposition.run(), name="exposition")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


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


def _response_headers(
    extra: dict[str, str],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add(_request: web.Request, response: web.StreamResponse) -> None:
        # A signal, not a middleware: it also reaches 401s, 404s and 503s.
        response.headers["Server"] = SERVER_HEADER
        response.headers.update(extra)

    return add


async def _metrics(request: web.Request) -> web.Response:
    # The format comes from a fixed set whatever the client sends (see exposition.negotiate),
    # so neither the cache nor the Content-Type ever holds client text.
    fmt, zipped = negotiate(
        ",".join(request.headers.getall("Accept", [])),
        ",".join(request.headers.getall("Accept-Encoding", [])),
    )
    body = await request.app[EXPOSITION].body(fmt, zipped)
    headers = {"Content-Type": fmt.content_type, "Vary": "Accept, Accept-Encoding"}
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def _healthz(request: web.Request) -> web.Response:
    task = request.app.get(POLLER_TASK)
    if task is not None and task.done():
        return web.Response(status=503, text="poller stopped\n")
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    if request.app[STATE].first_cycle_done and request.app[EXPOSITION].ready:
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


# ----- connection hygiene -------------------------------------------------------------------


def _hygiene(guards: dict[object, _GuardedConnection], max_requests: int) -> Middleware:
    """Mark requests on their connection's guard and bound the requests in flight."""
    in_flight = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        guard = guards.get(request.transport)
        if guard is not None:
            guard.request_started()
        try:
            if request.path in OPEN_PATHS:  # probes must answer even at the bound
                return await handler(request)
            if max_requests and in_flight >= max_requests:
                response: web.StreamResponse = web.Response(
                    status=503,
                    text=f"Limit of concurrent requests reached ({max_requests}), "
                    "try again later.\n",
                )
            else:
                in_flight += 1
                try:
                    response = await handler(request)
                    # Sent here, not after the middleware returns, so that a slow reader
                    # holds its slot (and its response buffer) until it has read it all.
                    with contextlib.suppress(ConnectionResetError):
                        # The client went away: nothing to answer, nothing to log.
                        await response.prepare(request)
                        await response.write_eof()
                finally:
                    in_flight -= 1
            return response
        finally:
            if guard is not None:
                guard.request_finished()

    return middleware


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol of one connection, with a deadline on the request headers.

    aiohttp has no header-read timeout: a client that sends half a request line keeps its
    connection (and file descriptor) for as long as it likes. This wrapper arms a timer when
    the connection is accepted and, between requests, at the first byte of the next one;
    the middleware disarms it once aiohttp hands over a request (headers complete). When it
    fires, the connection is closed. Everything else is passed through untouched.
    """

    def __init__(
        self,
        inner: asyncio.Protocol,
        guards: dict[object, _GuardedConnection],
        timeout: float,
        expired: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._guards = guards
        self._timeout = timeout
        self._expired = expired
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._bytes_while_busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guards[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._busy:
            self._bytes_while_busy = True  # a pipelined request: armed when this one ends
        elif self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guards.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self._disarm()
        self._busy = True
        self._bytes_while_busy = False

    def request_finished(self) -> None:
        self._busy = False
        if self._bytes_while_busy:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._expired()
            self._transport.close()


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections go through :class:`_GuardedConnection`."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        *,
        guards: dict[object, _GuardedConnection],
        header_timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guards = guards
        self._header_timeout = header_timeout
        self.header_timeouts = 0

    @property
    def name(self) -> str:
        """Say where it listens, as aiohttp's sites do."""
        return f"{self._host or '0.0.0.0'}:{self._port}"  # noqa: S104  a label, not a bind

    def _count_timeout(self) -> None:
        self.header_timeouts += 1

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None  # noqa: S101  set by runner.setup()
        return _GuardedConnection(server(), self._guards, self._header_timeout, self._count_timeout)

    async def start(self) -> None:
        """Listen; aiohttp's own sites do the same, with aiohttp's protocol factory."""
        await super().start()
        loop = asyncio.get_running_loop()
        # _server is the attribute every aiohttp site sets: stop() and runner.addresses
        # read it.
        self._server = await loop.create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._header_timeout if self._ssl_context else None,
        )


async def start_server(
    app: web.Application,
    host: str | None,
    port: int,
    web_config: WebConfig | None = None,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
) -> tuple[web.AppRunner, list[str]]:
    """Start serving ``app``; return the runner (``await runner.cleanup()`` to stop) and URLs."""
    _rate_limit_connection_logs()
    # No access log: a line per scrape is noise, and prometheus-async does the same.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        keepalive_timeout=IDLE_TIMEOUT_SECONDS,
    )
    await runner.setup()
    ssl_context = None if web_config is None else web_config.ssl_context
    site = _GuardedSite(
        runner,
        host,
        port,
        guards=app[_GUARDS],
        header_timeout=header_timeout,
        ssl_context=ssl_context,
    )
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


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit, as Go programs do at start.

    Each connection holds a file descriptor; a soft limit of 1024 (or less, in some
    containers) is what lets a few hundred idle connections starve real scrapes.
    Returns the ``(before, after)`` soft limits; a limit that cannot be raised is left.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (resource.RLIM_INFINITY, soft):
        # Linux refuses an infinite NOFILE limit; the kernel's ceiling is not worth guessing.
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard


class _RateLimit(logging.Filter):
    """Let through at most LOG_BURST records per message template per LOG_WINDOW_SECONDS.

    asyncio logs ``socket.accept() out of system resource`` (with a traceback) for every
    accept attempt while file descriptors run out, thousands a second; aiohttp logs one
    line per broken connection. The first lines of a burst say all there is to say.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg)[:200])
        now = self._clock()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= LOG_WINDOW_SECONDS:
            if count > LOG_BURST:
                _log.warning(
                    "log_lines_suppressed",
                    logger=record.name,
                    message=key[1],
                    suppressed=count - LOG_BURST,
                    window_seconds=LOG_WINDOW_SECONDS,
                )
            started, count = now, 0
        count += 1
        if len(self._windows) > 1000 and key not in self._windows:
            self._windows.clear()  # many distinct templates: a bug elsewhere; stay bounded
        self._windows[key] = (started, count)
        return count <= LOG_BURST


def _rate_limit_connection_logs() -> None:
    for name in ("asyncio", "aiohttp.server", "aiohttp.web"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RateLimit) for f in logger.filters):
            logger.addFilter(_RateLimit())
