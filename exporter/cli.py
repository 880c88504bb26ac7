"""Command line: ``softlayer-billing-exporter [--config.file F] [--demo] [--once] ...``.

Flags follow Prometheus conventions (``--web.listen-address``, ``--log.level``). Exit codes:
0 on a clean shutdown (SIGTERM/SIGINT), with ``--once`` when every source succeeded, or with
``--config.check`` when every input is valid; 1 when a ``--once`` poll had failures or the
server could not start; 2 for invalid flags or configuration, with every problem listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import structlog
from prometheus_client import generate_latest

from exporter import __version__
from exporter.config import Config, ConfigError, load_config
from exporter.demo import DEMO_POLL_INTERVAL_ENV, demo_poll_interval
from exporter.logs import LOG_FORMATS, LOG_LEVELS, configure_logging, register_secret
from exporter.metrics import build_registry
from exporter.netdiag import proxy_environment
from exporter.server import DEFAULT_PORT, create_app, parse_listen_address, start_server
from exporter.snapshot import ExporterState
from exporter.webconfig import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from exporter.finops.backfill import BackfillOptions

__all__ = ["build_parser", "main"]

PROG = "softlayer-billing-exporter"
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
        return asyncio.run(_demo(base, host, port, web_config, demo_interval, once=args.once))
    assert base is not None  # noqa: S101  checked above: no --demo means a config file
    for account in base.accounts:
        register_secret(account.auth.api_key.reveal())
    if args.once:
        return asyncio.run(poll_once(base, sys.stdout))
    return asyncio.run(serve(base, host, port, web_config))


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
) -> int:
    """Serve (or poll once) against the embedded simulator."""
    # Imported here: the simulator only loads for --demo.
    from exporter.demo import demo_simulator  # noqa: PLC0415

    async with demo_simulator(base, poll_interval) as run:
        if once:
            return await poll_once(run.config, sys.stdout)
        return await serve(run.config, host, port, web_config, banner=run.banner)


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
) -> int:
    """Serve until SIGTERM or SIGINT, polling in the background; 0 on a clean shutdown."""
    from exporter.poller import Poller  # noqa: PLC0415  keeps --help and config errors fast

    state = ExporterState(tuple(a.name for a in config.accounts))
    poller = Poller(config, state)
    registry = build_registry(state, poller.api_stats, config)
    app = create_app(state, registry, poller=poller, web_config=web_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            runner, urls = await start_server(app, host, port, web_config)
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
        # Stops accepting, then runs cleanup_ctx: the poll is cancelled, the session closed.
        await runner.cleanup()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError):
                loop.remove_signal_handler(signum)
    return EXIT_OK


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
