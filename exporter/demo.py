"""``--demo``: the embedded SoftLayer simulator plus an exporter polling it.

One generated account with a pending invoice (or, with ``--config.file``, one per configured
account, keeping the accounts' names, thresholds and the file's global settings but using
the simulator's endpoint and credentials). It prints the metrics URL and the simulator's
admin URL (to pay or open invoices while watching the metrics change) and serves until
SIGINT or SIGTERM.

The demo polls every 30 s unless the config file says otherwise;
``SOFTLAYER_DEMO_POLL_INTERVAL`` (a duration such as ``2s``) overrides both, for tests.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Final

import structlog

from exporter.config import (
    AccountConfig,
    AuthConfig,
    AuthMethod,
    Config,
    Secret,
    parse_duration,
)
from exporter.logs import register_secret
from exporter.server import DEFAULT_MAX_REQUESTS, HEADER_TIMEOUT_SECONDS
from exporter.webconfig import WebConfig

__all__ = ["DEMO_POLL_INTERVAL_ENV", "demo_config", "demo_poll_interval", "run_demo"]

DEMO_POLL_INTERVAL_ENV: Final = "SOFTLAYER_DEMO_POLL_INTERVAL"
DEMO_POLL_INTERVAL: Final = 30.0
DEMO_SEED: Final = 7

_log = structlog.get_logger()


def demo_config(
    base: Config | None, endpoint: str, credentials: list[tuple[str, str]], poll_interval: float
) -> Config:
    """Build the config polling the simulator; ``credentials``: (username, api_key) each."""
    if base is None:
        username, api_key = credentials[0]
        account = AccountConfig(
            name="demo",
            endpoint=endpoint,
            auth=AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret(api_key), username=username),
        )
        return Config(accounts=(account,), poll_interval_seconds=poll_interval)
    accounts = tuple(
        dataclasses.replace(
            account,
            endpoint=endpoint,
            auth=AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret(api_key), username=username),
        )
        for account, (username, api_key) in zip(base.accounts, credentials, strict=True)
    )
    return dataclasses.replace(base, accounts=accounts, poll_interval_seconds=poll_interval)


def demo_poll_interval(base: Config | None) -> float:
    """Return the demo's poll interval: the override variable, else the file's, else 30 s."""
    override = os.environ.get(DEMO_POLL_INTERVAL_ENV)
    if override:
        return parse_duration(override)
    return DEMO_POLL_INTERVAL if base is None else base.poll_interval_seconds


async def run_demo(
    base: Config | None,
    host: str | None,
    port: int,
    web_config: WebConfig | None,
    *,
    once: bool = False,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
) -> int:
    """Start the simulator, then serve (or poll once) against it; return the exit code."""
    # Imported here: the simulator is only needed for the demo.
    from exporter.cli import poll_once, serve  # noqa: PLC0415
    from exporter.simulator import AccountSpec, Scenario, SimulatorServer  # noqa: PLC0415

    try:
        interval = demo_poll_interval(base)
    except ValueError as exc:
        print(f"{DEMO_POLL_INTERVAL_ENV}: {exc}", file=sys.stderr)
        return 2
    count = 1 if base is None else len(base.accounts)
    scenario = Scenario.generate(
        seed=DEMO_SEED,
        accounts=[AccountSpec(items=40, pending_invoice=True) for _ in range(count)],
    )
    credentials = [(acct.username, acct.api_key) for acct in scenario.accounts]
    for _, api_key in credentials:
        register_secret(api_key)
    async with SimulatorServer(scenario, host="127.0.0.1", port=0, latency_seconds=0.0) as sim:
        config = demo_config(base, sim.endpoint, credentials, interval)
        admin_url = sim.admin_url
        _log.info("demo_simulator", endpoint=sim.endpoint, admin_url=admin_url)
        if once:
            return await poll_once(config, sys.stdout)
        banner = [
            "softlayer-billing-exporter demo: an embedded SoftLayer simulator, polled every "
            f"{interval:g}s",
            "  metrics:         {base}/metrics",
            "  landing page:    {base}/",
            f"  simulator admin: {admin_url}",
            "Stop with Ctrl-C.",
        ]
        return await serve(
            config,
            host,
            port,
            web_config,
            banner=banner,
            max_requests=max_requests,
            header_timeout=header_timeout,
        )
