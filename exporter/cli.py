"""Command line: ``softlayer-billing-exporter [--config.file F] [--demo] [--once] ...``.

Flags follow Prometheus conventions (``--web.listen-address``, ``--log.level``). Exit codes:
0 on a clean shutdown (SIGTERM/SIGINT), with ``--once`` when every source succeeded, or with
``--config.check`` when every input is valid; 1 when a ``--once`` poll had failures or the
server could not start; 2 for invalid flags or configuration, with every problem listed.

Signals while serving: the first SIGTERM or SIGINT starts a clean shutdown; later ones are
logged and change nothing (the shutdown is already bounded), so the exit code stays 0.
SIGHUP reloads ``--config.file``: accounts, thresholds and intervals take effect at once,
the data already served is kept, and a file that does not validate is refused with a log
line while the running configuration carries on (Prometheus does the same).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, TextIO

import structlog
from prometheus_client import generate_latest

from exporter import __version__
from exporter.config import Config, ConfigError, load_config, parse_duration
from exporter.demo import DEMO_POLL_INTERVAL_ENV, demo_poll_interval
from exporter.exposition import Exposition
from exporter.logs import LOG_FORMATS, LOG_LEVELS, configure_logging, register_secret
from exporter.metrics import build_registry
from exporter.netdiag import proxy_environment
from exporter.server import (
    DEFAULT_MAX_REQUESTS,
    DEFAULT_PORT,
    HEADER_TIMEOUT_SECONDS,
    create_app,
    parse_listen_address,
    raise_open_files_limit,
    start_server,
)
from exporter.snapshot import AccountSnapshot, ExporterState
from exporter.webconfig import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from exporter.finops.backfill import BackfillOptions
    from exporter.poller import Poller

__all__ = ["build_parser", "main"]

PROG = "softlayer-billing-exporter"
#: A longer header timeout protects nothing: an hour is already an open door.
MAX_HEADER_TIMEOUT_SECONDS = 3600.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_log = structlog.get_logger()


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Prometheus exporter for SoftLayer (IBM Cloud classic infrastructure) billing.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML configuration (see config.example.yaml); required unless --demo",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the inputs (config file, its secrets, web config) without any network "
        "access and exit: 0 if valid, 2 with every problem listed",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=f":{DEFAULT_PORT}",
        metavar="[HOST]:PORT",
        help=f"address to serve on (default :{DEFAULT_PORT}, all interfaces)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS and bcrypt basic auth",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=_non_negative,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help=f"requests served at once; more get 503 (default {DEFAULT_MAX_REQUESTS}, 0: no limit)",
    )
    parser.add_argument(
        "--web.read-header-timeout",
        dest="header_timeout",
        type=_header_timeout,
        default=HEADER_TIMEOUT_SECONDS,
        metavar="DURATION",
        help="close connections that have not sent their request headers (and TLS handshake) "
        f"within this time (default {HEADER_TIMEOUT_SECONDS:g}s)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        default="auto",
        help="auto: JSON unless stderr is a terminal",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start an embedded SoftLayer simulator with a generated account and poll it",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll once, print the exposition to stdout, exit 0 if every source succeeded",
    )
    backfill = parser.add_argument_group(
        "backfill", "write past months as OpenMetrics for promtool, then exit (docs/metrics.md)"
    )
    backfill.add_argument(
        "--backfill.months",
        dest="backfill_months",
        type=int,
        metavar="N",
        help="recurring invoices per account to write (1..120), e.g. 13",
    )
    backfill.add_argument(
        "--backfill.output",
        dest="backfill_output",
        metavar="FILE",
        help="OpenMetrics file for promtool tsdb create-blocks-from openmetrics ('-': stdout)",
    )
    backfill.add_argument(
        "--backfill.step",
        dest="backfill_step",
        default="1h",
        metavar="DURATION",
        help="one sample per DURATION (1m..1d, default 1h)",
    )
    backfill.add_argument(
        "--backfill.label", dest="backfill_labels", action="append", default=[],
        metavar="NAME=VALUE", help="label on every series (repeatable; default job=softlayer, "
        "instance=backfill)",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _non_negative(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        msg = f"must be a whole number from 0 to 999999999, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _header_timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < seconds <= MAX_HEADER_TIMEOUT_SECONDS:
        msg = f"must be above 0s and at most {MAX_HEADER_TIMEOUT_SECONDS:g}s, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


class _UsageError(Exception):
    """Invalid flags or configuration: printed, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; return the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.config_file is None and not args.demo:
            msg = "--config.file is required (or --demo for a demonstration)"
            raise _UsageError(msg)
        if args.config_check and args.config_file is None:
            msg = "--config.check needs --config.file"
            raise _UsageError(msg)
        configure_logging(args.log_level, args.log_format)
        host, port, web_config, base = _inputs(args)
        demo_interval = _demo_interval(base) if args.demo else None
        backfill = _backfill_options(args)
    except _UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.config_check:
        assert base is not None  # noqa: S101  checked above
        print(_check_summary(args, base))
        return EXIT_OK
    if backfill is not None:
        return asyncio.run(_backfill(base, backfill, args.backfill_output, demo_interval))
    if demo_interval is not None:
        code = asyncio.run(
            _demo(
                base,
                host,
                port,
                web_config,
                demo_interval,
                once=args.once,
                max_requests=args.max_requests,
                header_timeout=args.header_timeout,
            )
        )
        return code if args.once else _exiting(code)
    assert base is not None  # noqa: S101  checked above: no --demo means a config file
    _register_secrets(base)
    if args.once:
        return asyncio.run(poll_once(base, sys.stdout))
    path = args.config_file
    code = asyncio.run(
        serve(
            base,
            host,
            port,
            web_config,
            max_requests=args.max_requests,
            header_timeout=args.header_timeout,
            reload=lambda: load_config(path),
        )
    )
    return _exiting(code)


def _register_secrets(config: Config) -> None:
    for account in config.accounts:
        register_secret(account.auth.api_key.reveal())


def _exiting(code: int) -> int:
    """Keep a late SIGTERM or SIGINT from killing the process while the interpreter exits."""
    # The event loop's handlers went with the loop; the exit code is decided already.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    return code


def _inputs(args: argparse.Namespace) -> tuple[str | None, int, WebConfig | None, Config | None]:
    """Validate the listen address, web config and config file; every error is a usage error."""
    try:
        host, port = parse_listen_address(args.listen_address)
    except ValueError as exc:
        msg = f"--web.listen-address: {exc}"
        raise _UsageError(msg) from None
    web_config: WebConfig | None = None
    if args.web_config_file is not None:
        try:
            web_config = load_web_config(args.web_config_file)
        except WebConfigError as exc:
            raise _UsageError(str(exc)) from None
    base: Config | None = None
    if args.config_file is not None:
        try:
            # --demo swaps in the simulator's credentials, so the file's need not resolve.
            base = load_config(args.config_file, resolve_secrets=not args.demo)
        except ConfigError as exc:
            raise _UsageError(str(exc)) from None
        for warning in base.warnings:
            _log.warning("config_warning", file=args.config_file, problem=warning)
    return host, port, web_config, base


def _demo_interval(base: Config | None) -> float:
    try:
        return demo_poll_interval(base)
    except ValueError as exc:
        msg = f"{DEMO_POLL_INTERVAL_ENV}: {exc}"
        raise _UsageError(msg) from None


def _backfill_options(args: argparse.Namespace) -> BackfillOptions | None:
    """Return the backfill mode's options if its flags are given (exporter.finops.backfill)."""
    if args.backfill_months is None and args.backfill_output is None:
        return None
    from exporter.finops.backfill import options_from_flags  # noqa: PLC0415  only this mode

    try:
        return options_from_flags(
            args.backfill_months, args.backfill_output, args.backfill_step, args.backfill_labels
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


async def _backfill(
    base: Config | None, options: BackfillOptions, output: str, demo_interval: float | None
) -> int:
    """Write the backfill of every account (of the demo simulator's with --demo)."""
    from exporter.finops.backfill import backfill_command  # noqa: PLC0415  only this mode

    if demo_interval is None:
        assert base is not None  # noqa: S101  no --demo means a config file
        _register_secrets(base)
        return await backfill_command(base, options, output, sys.stdout)
    from exporter.demo import demo_simulator  # noqa: PLC0415

    async with demo_simulator(base, demo_interval) as run:
        return await backfill_command(run.config, options, output, sys.stdout)


def _check_summary(args: argparse.Namespace, config: Config) -> str:
    """Say in one line what --config.check found valid."""
    names = ", ".join(account.name for account in config.accounts)
    checked = [f"config file {args.config_file}: valid, {len(config.accounts)} account(s): {names}"]
    if args.demo:
        checked.append("secrets not read (--demo)")
    if args.web_config_file is not None:
        checked.append(f"web config file {args.web_config_file}: valid")
    return "; ".join(checked)


async def _demo(
    base: Config | None,
    host: str | None,
    port: int,
    web_config: WebConfig | None,
    poll_interval: float,
    *,
    once: bool,
    max_requests: int,
    header_timeout: float,
) -> int:
    """Serve (or poll once) against the embedded simulator."""
    # Imported here: the simulator only loads for --demo.
    from exporter.demo import demo_simulator  # noqa: PLC0415

    async with demo_simulator(base, poll_interval) as run:
        if once:
            return await poll_once(run.config, sys.stdout)
        return await serve(
            run.config,
            host,
            port,
            web_config,
            banner=run.banner,
            max_requests=max_requests,
            header_timeout=header_timeout,
        )


async def poll_once(config: Config, out: TextIO) -> int:
    """Poll every account once, print the text exposition, and tell whether all succeeded."""
    from exporter.poller import Poller  # noqa: PLC0415  keeps --help and config errors fast

    state = ExporterState(tuple(a.name for a in config.accounts))
    poller = Poller(config, state)
    try:
        ok = await poller.poll_once()
    finally:
        await poller.aclose()
    registry = build_registry(state, poller.api_stats, config, process_metrics=False)
    out.write(generate_latest(registry).decode("utf-8"))
    out.flush()
    return EXIT_OK if ok else EXIT_FAILED


async def serve(
    config: Config,
    host: str | None,
    port: int,
    web_config: WebConfig | None,
    *,
    banner: list[str] | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    reload: Callable[[], Config] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT, polling in the background; 0 on a clean shutdown.

    ``reload`` reads the configuration again on SIGHUP (None: SIGHUP is logged, no more).
    """
    from exporter.poller import Poller  # noqa: PLC0415  keeps --help and config errors fast

    before, after = raise_open_files_limit()
    if after != before:
        _log.info("open_files_limit_raised", soft_before=before, soft_after=after)
    state = ExporterState(tuple(a.name for a in config.accounts))
    # Serving: the latest invoice's lines are walked after the poll (exporter.poller).
    poller = _Reloadable(Poller(config, state, defer_invoice_lines=True))
    exposition = Exposition(state, poller.current.api_stats, config)
    app = create_app(
        state, exposition, poller=poller, web_config=web_config, max_requests=max_requests
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: list[asyncio.Task[None]] = []

    def on_stop_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            _log.warning("signal_during_shutdown", signal=signum.name, hint="already stopping")
        stop.set()

    def on_hangup() -> None:
        if reload is None:
            _log.warning("reload_unavailable", reason="no --config.file to read again")
        elif reloads and not reloads[-1].done():
            _log.warning("reload_in_progress", hint="send SIGHUP again once it has finished")
        elif not stop.is_set():
            reloads.append(asyncio.create_task(_reload(reload, state, exposition, poller)))

    # Installed for as long as the loop runs, shutdown included: a second SIGTERM while
    # stopping must not fall back to the default action (death by signal, exit -15).
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        runner, urls = await start_server(
            app, host, port, web_config, header_timeout=header_timeout
        )
    except OSError as exc:
        _log.error("listen_failed", address=f"{host or ''}:{port}", error=str(exc))
        return EXIT_FAILED
    _log.info(
        "listening",
        version=__version__,
        python=platform.python_version(),
        listen_address=f"{host or ''}:{port}",
        urls=urls,
        accounts=[a.name for a in config.accounts],
        poll_interval_seconds=config.poll_interval_seconds,
        **proxy_environment(),
    )
    if banner is not None:
        print_banner(banner, urls)
    await stop.wait()
    _log.info("shutting_down")
    for task in reloads:
        task.cancel()
    # Stops accepting, then runs cleanup_ctx: the poll is cancelled, the session closed.
    await runner.cleanup()
    return EXIT_OK


async def _reload(
    load: Callable[[], Config],
    state: ExporterState,
    exposition: Exposition,
    poller: _Reloadable,
) -> None:
    """Read the configuration again and switch to it, or keep the running one."""
    from exporter.poller import Poller  # noqa: PLC0415  keeps --help and config errors fast

    try:
        config = await asyncio.to_thread(load)
    except ConfigError as exc:
        _log.error("reload_failed", error=str(exc), hint="the running configuration stays")
        return
    except Exception as exc:  # a reload must never take the exporter down
        # Only the type: a message could quote a value from the file.
        _log.error(
            "reload_failed", error=type(exc).__name__, hint="the running configuration stays"
        )
        return
    _register_secrets(config)

    def switch() -> Poller:
        # The old poller has stopped: nothing publishes while the accounts are swapped.
        # Accounts still configured keep the data they serve; removed ones disappear.
        state.accounts = MappingProxyType(
            {
                a.name: state.accounts.get(a.name) or AccountSnapshot(name=a.name)
                for a in config.accounts
            }
        )
        exposition.reconfigure(config)
        return Poller(config, state, api_stats=poller.current.api_stats, defer_invoice_lines=True)

    await poller.replace(switch)
    _log.info(
        "reloaded",
        accounts=[a.name for a in config.accounts],
        poll_interval_seconds=config.poll_interval_seconds,
    )


class _Reloadable:
    """Runs one poller at a time; :meth:`replace` swaps it for a new one between cycles.

    The old poller is stopped like at shutdown (a cycle in flight is cancelled; what it
    already published stays), its session closed, then the new one starts at once.
    """

    def __init__(self, poller: Poller) -> None:
        self.current = poller
        self._inner_stop = asyncio.Event()
        self._inner_done = asyncio.Event()
        self._swapped = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the current poller, and its successors, until ``stop`` is set."""
        while not stop.is_set():
            inner = self._inner_stop
            forward = asyncio.create_task(_forward(stop, inner))
            try:
                await self.current.run(inner)
            finally:
                forward.cancel()
                self._inner_done.set()
            await _first(self._swapped.wait(), stop.wait())
            self._swapped.clear()

    async def replace(self, build: Callable[[], Poller]) -> None:
        """Stop the current poller, close it, and run the one ``build`` returns."""
        # Works whether or not run() has started: a poller told to stop before it started
        # returns at once.
        self._inner_stop.set()
        await self._inner_done.wait()
        self._inner_done.clear()
        await self.current.aclose()
        try:
            self.current = build()
        finally:
            self._inner_stop = asyncio.Event()
            self._swapped.set()

    async def aclose(self) -> None:
        """Close the current poller's session."""
        await self.current.aclose()


async def _forward(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def print_banner(lines: list[str], urls: list[str]) -> None:
    """Print the demo banner; ``{base}`` in a line becomes the exporter's base URL."""
    base = display_url(urls)
    for line in lines:
        print(line.format(base=base), flush=True)


def display_url(urls: list[str]) -> str:
    """Pick a URL a person can open: the first bound address, loopback for "anywhere"."""
    if not urls:
        return f"http://127.0.0.1:{DEFAULT_PORT}"
    url = urls[0]
    for anywhere in ("0.0.0.0", "[::]"):  # noqa: S104  recognising, not binding
        url = url.replace(f"//{anywhere}:", "//127.0.0.1:")
    return url
