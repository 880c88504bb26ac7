"""End to end: simulator -> exporter -> real Prometheus (our rules) -> real Alertmanager -> webhook.

The proof that the dashboards and alerts work on stock Prometheus:

1. ``softlayer-api-simulator`` serves a generated SoftLayer account over loopback, with an
   invoice history but no open invoice;
2. ``softlayer-billing-exporter`` polls it every 2 s. A second account uses a wrong API key,
   so the error panels have real authentication errors to show;
3. the Debian ``prometheus`` server scrapes the exporter every second, with the shipped rules
   file loaded, and sends alerts to the Debian ``prometheus-alertmanager``, which delivers
   them to an aiohttp webhook receiver in this test;
4. once the rules have seen the data without the alert active, the simulator's admin API
   opens an invoice whose open balance is above the account's threshold, and
   ``SoftLayerOpenInvoiceBalanceHigh`` must reach the webhook;
5. with that invoice open, every panel query of every dashboard is run against Prometheus'
   HTTP API, with Grafana's variables substituted, and must return data;
6. the invoice is paid through the admin API, and the alert must reach the webhook again as
   resolved.

Every wait polls an API until a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.conftest import require_tool
from tests.grafana import artifacts

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(
        not artifacts.exporter_available(), reason="exporter CLI and simulator not merged yet"
    ),
]

T = TypeVar("T")

ACCOUNT = "e2e"
BAD_ACCOUNT = "e2e-bad-key"
JOB = "softlayer"
#: The account starts without a pending invoice; the test opens one above the threshold.
OPEN_BALANCE_THRESHOLD = 2000
OPENED_INVOICE_AMOUNT = "5000"
ALERT = "SoftLayerOpenInvoiceBalanceHigh"
DEADLINE_SECONDS = 45.0


def _free_port() -> int:
    """Return a port the OS just handed out for 127.0.0.1 (for tools that cannot report theirs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _script(name: str) -> str:
    """Return the console script of this environment (the one installed from this checkout)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    pytest.fail(f"console script {name} is not installed next to {sys.executable}")


@dataclass
class Processes:
    """Child processes of the test, with their logs, stopped by pid at teardown."""

    directory: Path
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Path:
        """Start ``argv`` with stdout and stderr in ``<name>.log``; return the log path."""
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.directory,
            )
        self.started[name] = (process, log)
        return log

    def read(self, name: str) -> str:
        """Return the log of one process so far."""
        return self.started[name][1].read_text(encoding="utf-8", errors="replace")

    def check_running(self) -> None:
        """Fail with the process's log if any child has exited."""
        for name, (process, _) in self.started.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.read(name)[-4000:]}")

    def report(self) -> str:
        """Return the tail of every log, for failure messages."""
        return "\n".join(f"----- {name} -----\n{self.read(name)[-2500:]}" for name in self.started)

    def stop(self) -> None:
        """SIGTERM every child, then SIGKILL whatever is still running after 10 s."""
        for process, _ in self.started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Children started by the test; all stopped by pid afterwards."""
    children = Processes(tmp_path)
    try:
        yield children
    finally:
        children.stop()


async def _until(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    processes: Processes,
    deadline: float = DEADLINE_SECONDS,
) -> T:
    """Poll ``probe`` until it returns a value (not None); fail after ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    last_error: BaseException | None = None
    while time.monotonic() < give_up:
        processes.check_running()
        try:
            result = await probe()
        except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            last_error, result = exc, None
        if result is not None:
            return result
        await asyncio.sleep(0.2)  # polling period, not a synchronisation point
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r})\n{processes.report()}")


@dataclass
class Webhook:
    """Alertmanager webhook receiver: every notification's payload, in arrival order."""

    payloads: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Store one notification."""
        self.payloads.append(await request.json())
        return web.Response(text="ok")

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """Return the delivered alerts of ``ALERT`` for our account with this status."""
        return [
            alert
            for payload in self.payloads
            for alert in payload["alerts"]
            if alert["status"] == status
            and alert["labels"].get("alertname") == ALERT
            and alert["labels"].get("account") == ACCOUNT
        ]


def _rules_for_test(destination: Path) -> Path:
    """Copy the shipped rules with every ``for:`` shortened to 1s.

    The shipped durations (5m to 1h) suit a 15-minute poll; this test polls every 2 s and must
    finish in well under two minutes. Only the ``for:`` lines change, so the expressions,
    labels and annotations under test are exactly the shipped ones; a 1 s ``for:`` still
    takes the alert through pending before firing.
    """
    text = artifacts.RULES_FILE.read_text(encoding="utf-8")
    shortened, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 1s", text)
    assert count >= 10, "expected for: durations to shorten"
    destination.write_text(shortened, encoding="utf-8")
    return destination


def _exporter_config(path: Path, endpoint: str, username: str) -> Path:
    config = {
        "poll_interval": "2s",
        "poll_jitter": 0,
        "request_timeout": "10s",
        "accounts": [
            {
                "name": ACCOUNT,
                "endpoint": endpoint,
                "auth": {
                    "method": "classic",
                    "username": username,
                    "api_key_env": "E2E_SOFTLAYER_API_KEY",
                },
                "thresholds": {
                    "open_invoice_balance_usd": OPEN_BALANCE_THRESHOLD,
                    "account_balance_usd": OPEN_BALANCE_THRESHOLD,
                    # Low on purpose: the budget panels and recording rule need a budget.
                    "monthly_budget_usd": 1,
                    "pending_invoice_max_age": "35d",
                    "forecast_surge_ratio": 1.25,
                    "category_surge_ratio": 1.5,
                },
            },
            {
                "name": BAD_ACCOUNT,
                "endpoint": endpoint,
                "auth": {
                    "method": "classic",
                    "username": username,
                    "api_key_env": "E2E_SOFTLAYER_BAD_KEY",
                },
            },
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _alertmanager_config(path: Path, webhook_url: str) -> Path:
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "account"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1m",
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _prometheus_config(path: Path, rules: Path, exporter: str, alertmanager: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [exporter]}]}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _first_json_line(log: str, *, key: str) -> dict[str, Any] | None:
    """Return the first JSON object in a log that has ``key``."""
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and key in record:
                return record
    return None


def _listening_url(log: str) -> str | None:
    """Return the exporter's URL from its ``listening`` log event."""
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == "listening":
                return str(record["urls"][0]).rstrip("/")
    return None


async def _pay_pending_invoice(http: aiohttp.ClientSession, admin_url: str, account: int) -> None:
    async with http.post(f"{admin_url}/accounts/{account}/pay-pending-invoice") as response:
        assert response.status < 300, await response.text()


async def _open_pending_invoice(
    http: aiohttp.ClientSession, admin_url: str, account: int, amount: str
) -> None:
    async with http.post(
        f"{admin_url}/accounts/{account}/open-pending-invoice", json={"amount": amount}
    ) as response:
        assert response.status < 300, await response.text()


async def test_dashboards_and_open_invoice_alert_end_to_end(
    tmp_path: Path, processes: Processes
) -> None:
    """Every panel query returns data; the open-balance alert fires, then resolves on payment."""
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "E2E_SOFTLAYER_BAD_KEY": "not-the-key",
    }

    processes.start(
        "simulator",
        [
            _script("softlayer-api-simulator"),
            "--web.listen-address",
            "127.0.0.1:0",
            "--seed",
            "11",
            "--accounts",
            "1",
            "--items",
            "30",
            "--no-pending-invoice",
        ],
        env=env,
    )

    async def simulator_ready() -> dict[str, Any] | None:
        return _first_json_line(processes.read("simulator"), key="endpoint")

    simulator = await _until("the simulator's JSON line", simulator_ready, processes)
    admin_url = str(simulator["admin_url"]).rstrip("/")
    account = simulator["accounts"][0]
    env["E2E_SOFTLAYER_API_KEY"] = account["api_key"]

    webhook = Webhook()
    app = web.Application()
    app.router.add_post("/alerts", webhook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        webhook_port = runner.addresses[0][1]
        await _run_stack(
            tmp_path,
            processes,
            env,
            simulator=simulator,
            admin_url=admin_url,
            account_id=int(account["id"]),
            username=str(account["username"]),
            webhook=webhook,
            webhook_url=f"http://127.0.0.1:{webhook_port}/alerts",
            prometheus=prometheus,
            alertmanager=alertmanager,
        )
    finally:
        await runner.cleanup()


async def _run_stack(
    tmp_path: Path,
    processes: Processes,
    env: dict[str, str],
    *,
    simulator: dict[str, Any],
    admin_url: str,
    account_id: int,
    username: str,
    webhook: Webhook,
    webhook_url: str,
    prometheus: str,
    alertmanager: str,
) -> None:
    config = _exporter_config(tmp_path / "exporter.yaml", str(simulator["endpoint"]), username)
    processes.start(
        "exporter",
        [
            _script("softlayer-billing-exporter"),
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.format",
            "json",
        ],
        env=env,
    )

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def exporter_url() -> str | None:
            return _listening_url(processes.read("exporter"))

        exporter = await _until("the exporter to listen", exporter_url, processes)
        instance = exporter.split("://", 1)[1]

        async def polled() -> bool | None:
            async with http.get(f"{exporter}/metrics") as response:
                text = await response.text()
            return True if f'softlayer_up{{account="{ACCOUNT}"}} 1.0' in text else None

        await _until("the exporter's first successful poll", polled, processes)

        am_address = f"127.0.0.1:{_free_port()}"
        processes.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={_alertmanager_config(tmp_path / 'am.yml', webhook_url)}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address={am_address}",
                "--cluster.listen-address=",
            ],
        )
        prom_address = f"127.0.0.1:{_free_port()}"
        rules = _rules_for_test(tmp_path / "rules.yml")
        prom_config = _prometheus_config(tmp_path / "prometheus.yml", rules, instance, am_address)
        processes.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address={prom_address}",
            ],
        )
        started = time.time()
        api = f"http://{prom_address}/api/v1"

        async def ready(url: str) -> bool | None:
            async with http.get(url) as response:
                return True if response.status == 200 else None

        await _until("Alertmanager ready", lambda: ready(f"http://{am_address}/-/ready"), processes)
        await _until("Prometheus ready", lambda: ready(f"http://{prom_address}/-/ready"), processes)

        async def query(expr: str) -> list[dict[str, Any]]:
            async with http.get(f"{api}/query", params={"query": expr}) as response:
                body = await response.json()
            assert body["status"] == "success", (expr, body)
            result: list[dict[str, Any]] = body["data"]["result"]
            return result

        async def scraped() -> bool | None:
            up = await query(f'up{{job="{JOB}"}} == 1')
            return True if up else None

        await _until("the first scrape of the exporter", scraped, processes)

        async def evaluated() -> bool | None:
            # A recording rule over scraped data exists only once the rules ran on that data.
            recorded = await query(f'account:softlayer_next_invoice_vs_budget:ratio{{job="{JOB}"}}')
            return True if recorded else None

        await _until("the rules to evaluate scraped data", evaluated, processes)
        before = await query(f'ALERTS{{alertname="{ALERT}", account="{ACCOUNT}"}}')
        assert not before, f"{ALERT} is active before the invoice crossed the threshold: {before}"
        assert not webhook.alerts("firing")

        # Drive the simulator: an open invoice far above the threshold.
        await _open_pending_invoice(http, admin_url, account_id, OPENED_INVOICE_AMOUNT)

        async def fired() -> list[dict[str, Any]] | None:
            return webhook.alerts("firing") or None

        firing = (await _until(f"{ALERT} at the webhook", fired, processes))[0]
        assert firing["labels"]["severity"] == "critical"
        assert firing["labels"]["job"] == JOB
        assert firing["labels"]["invoice"] == "pending"
        assert firing["annotations"]["runbook_url"].endswith("#softlayeropeninvoicebalancehigh")
        assert float(OPENED_INVOICE_AMOUNT) > OPEN_BALANCE_THRESHOLD
        assert (
            f"account {ACCOUNT} still has {float(OPENED_INVOICE_AMOUNT):.2f} USD unpaid"
            in firing["annotations"]["description"]
        )

        # Every panel, with the pending invoice open: each query must return data.
        await _check_every_panel(http, api, instance, started, processes)

        await _pay_pending_invoice(http, admin_url, account_id)

        async def resolved() -> list[dict[str, Any]] | None:
            return webhook.alerts("resolved") or None

        done = (await _until(f"{ALERT} resolved at the webhook", resolved, processes))[0]
        assert done["labels"]["account"] == ACCOUNT
        assert done["endsAt"] >= firing["startsAt"]


async def _check_every_panel(
    http: aiohttp.ClientSession, api: str, instance: str, started: float, processes: Processes
) -> None:
    """Run every target of every dashboard until all return data, or fail listing the empty."""
    targets = list(artifacts.panel_exprs())
    assert len(targets) >= 40

    async def all_have_data() -> bool | None:
        now = time.time()
        variables = {
            "datasource": "prometheus",
            "job": JOB,
            "instance": instance,  # dots match themselves; PromQL strings reject "\."
            "account": ".+",  # the "All" value of the account variable
            "topn": "10",
            # Grafana: $__rate_interval = max(4 x scrape interval, $__interval + scrape).
            "__rate_interval": "5s",
            "__interval": "1s",
            "__range": f"{max(5, int(now - started))}s",
        }
        empty.clear()
        for dashboard, title, target in targets:
            expr = artifacts.substitute(target["expr"], variables)
            if target.get("instant"):
                params = {"query": expr, "time": f"{now:.3f}"}
                url = f"{api}/query"
            else:
                params = {
                    "query": expr,
                    "start": f"{started:.3f}",
                    "end": f"{now:.3f}",
                    "step": "1",
                }
                url = f"{api}/query_range"
            async with http.get(url, params=params) as response:
                body = await response.json()
            if body.get("status") != "success":
                pytest.fail(f"{dashboard} / {title}: query failed: {expr}: {body}")
            if not body["data"]["result"]:
                empty.append(f"{dashboard} / {title}: {expr}")
        return True if not empty else None

    empty: list[str] = []
    try:
        await _until("every panel query to return data", all_have_data, processes)
    except pytest.fail.Exception as exc:
        if not empty:
            raise
        pytest.fail(f"{exc}\npanel queries without data:\n" + "\n".join(empty))
