"""``--demo``: the embedded SoftLayer simulator and the configuration that polls it.

One generated account with a pending invoice (or, with ``--config.file``, one per configured
account, keeping the accounts' names, thresholds, sources and the file's global settings but
using the simulator's endpoint and credentials). The command line serves (or polls once)
with that configuration while :func:`demo_simulator` keeps the simulator running, and prints
the banner: the metrics URL and the simulator's admin URL (to pay or open invoices while
watching the metrics change).

The demo polls every account every 30 s unless the config file says otherwise;
``SOFTLAYER_DEMO_POLL_INTERVAL`` (a duration such as ``2s``) overrides both, for tests.

This module does not import the command line: the command line calls it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
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

__all__ = [
    "DEMO_POLL_INTERVAL",
    "DEMO_POLL_INTERVAL_ENV",
    "DEMO_SEED",
    "DemoRun",
    "demo_config",
    "demo_poll_interval",
    "demo_simulator",
]

DEMO_POLL_INTERVAL_ENV: Final = "SOFTLAYER_DEMO_POLL_INTERVAL"
DEMO_POLL_INTERVAL: Final = 30.0
DEMO_SEED: Final = 7

_log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class DemoRun:
    """What the command line needs to run the demo: the config and the banner to print.

    ``{base}`` in a banner line stands for the exporter's base URL, known once it listens.
    """

    config: Config
    banner: list[str]


def demo_config(
    base: Config | None, endpoint: str, credentials: list[tuple[str, str]], poll_interval: float
) -> Config:
    """Build the config polling the simulator; ``credentials``: (username, api_key) each.

    Every account is polled at ``poll_interval``: a file's per-account intervals are dropped.
    """

    def auth(username: str, api_key: str) -> AuthConfig:
        return AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret(api_key), username=username)

    if base is None:
        username, api_key = credentials[0]
        account = AccountConfig(name="demo", endpoint=endpoint, auth=auth(username, api_key))
        return Config(accounts=(account,), poll_interval_seconds=poll_interval)
    accounts = tuple(
        dataclasses.replace(
            account,
            endpoint=endpoint,
            auth=auth(username, api_key),
            poll_interval_seconds=None,
        )
        for account, (username, api_key) in zip(base.accounts, credentials, strict=True)
    )
    return dataclasses.replace(base, accounts=accounts, poll_interval_seconds=poll_interval)


def demo_poll_interval(base: Config | None, environ: Mapping[str, str] | None = None) -> float:
    """Return the demo's poll interval: the override variable, else the file's, else 30 s.

    Raises:
        ValueError: the override variable is not a positive duration.

    """
    override = (os.environ if environ is None else environ).get(DEMO_POLL_INTERVAL_ENV)
    if override:
        seconds = parse_duration(override)
        if seconds <= 0:
            msg = f"must be a duration longer than 0s, got {override}"
            raise ValueError(msg)
        return seconds
    return DEMO_POLL_INTERVAL if base is None else base.poll_interval_seconds


@asynccontextmanager
async def demo_simulator(base: Config | None, poll_interval: float) -> AsyncIterator[DemoRun]:
    """Run the simulator (one generated account per configured one) while the block runs."""
    # Imported here: the simulator is only needed for the demo.
    from exporter.simulator import AccountSpec, Scenario, SimulatorServer  # noqa: PLC0415

    count = 1 if base is None else len(base.accounts)
    scenario = Scenario.generate(
        seed=DEMO_SEED,
        accounts=[AccountSpec(items=40, pending_invoice=True) for _ in range(count)],
    )
    credentials = [(acct.username, acct.api_key) for acct in scenario.accounts]
    for _, api_key in credentials:
        register_secret(api_key)
    async with SimulatorServer(scenario, host="127.0.0.1", port=0, latency_seconds=0.0) as sim:
        config = demo_config(base, sim.endpoint, credentials, poll_interval)
        admin_url = sim.admin_url
        _log.info("demo_simulator", endpoint=sim.endpoint, admin_url=admin_url)
        banner = [
            "softlayer-billing-exporter demo: an embedded SoftLayer simulator, polled every "
            f"{poll_interval:g}s",
            "  metrics:         {base}/metrics",
            "  landing page:    {base}/",
            f"  simulator admin: {admin_url}",
            "Stop with Ctrl-C.",
        ]
        yield DemoRun(config=config, banner=banner)
