"""End to end: simulator, an HA pair of exporters, Prometheus, Alertmanager and a webhook.

The proof that the shipped rules, routing and dashboards work together on stock software:

1. ``softlayer-api-simulator`` serves a generated SoftLayer account over loopback, with an
   invoice history but no open invoice;
2. two ``softlayer-billing-exporter`` processes poll it every 2 s with the same config (an HA
   pair). A second account uses a wrong API key, so authentication fails for real;
3. the Debian ``prometheus`` server scrapes both exporters as one job, every second, with the
   shipped rules (``for``/``keep_firing_for`` shortened, nothing else changed), and sends
   alerts to the Debian ``prometheus-alertmanager`` running the shipped routing and inhibit
   rules, whose three receivers deliver to an aiohttp webhook in this test;
4. the simulator's admin API opens an invoice above the threshold; its payment grace is one
   second, so it is overdue at once: ``SoftLayerInvoiceOverdue`` must reach the page
   receiver once (not once per exporter), grouped by alert and account, while the
   account-balance alert it explains fires in Prometheus and is never delivered; the bad
   key's ``SoftLayerApiAuthFailing`` reaches operations and inhibits the poll-failing alert;
5. dashboard panels are queried the way Grafana does (variables substituted): the open
   balance and the totals equal the simulator's truth once, not twice;
6. the invoice is paid: the alert resolves at the webhook and the "now" panel goes empty.

Every wait polls an API until a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
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
from tests.helpers.processes import poll_until

pytestmark = [pytest.mark.prometheus, pytest.mark.e2e]

T = TypeVar("T")

ACCOUNT = "e2e"
BAD_ACCOUNT = "e2e-bad-key"
JOB = "softlayer"
EXPORTERS = ("a", "b")
#: The account starts without a pending invoice; the test opens one above the threshold.
OPEN_BALANCE_THRESHOLD = 2000
OPENED_INVOICE_AMOUNT = 5000
OVERDUE = "SoftLayerInvoiceOverdue"
OVERVIEW = "softlayer-billing-overview.json"
HEALTH = "softlayer-exporter-health.json"
DEADLINE_SECONDS = 60.0
#: The test runs the shipped durations 300 times faster (a shipped minute is 0.2 s), which
#: keeps their order: an alert that another explains still waits longer than that one.
SPEED_UP = 300
#: Except this one: at start-up, before the first scrape, no series exist yet.
SLOW_ALERTS = {"SoftLayerExporterAbsent": "30s"}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


#: Prometheus and Alertmanager log the address they bound (exporter-toolkit), so they can
#: listen on port 0: no port is chosen here and then taken by someone else first.
_LISTENING_ON = re.compile(r'msg="Listening on" address=(\S+)')


def _bound_address(log: str) -> str | None:
    """Return the ``host:port`` a Prometheus-family server logged it listens on."""
    match = _LISTENING_ON.search(log)
    return match.group(1) if match else None


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
    return await poll_until(
        what, probe, alive=processes.check_running, report=processes.report, deadline=deadline
    )


@dataclass
class Webhook:
    """Alertmanager webhook receiver: each receiver's notifications, in arrival order."""

    payloads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Store one notification under the receiver named by the URL path."""
        self.payloads.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    def delivered(self, status: str = "firing") -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Return ``(receiver, payload, alert)`` for every delivered alert with this status."""
        return [
            (receiver, payload, alert)
            for receiver, payload in self.payloads
            for alert in payload["alerts"]
            if alert["status"] == status
        ]

    def names(self, status: str = "firing") -> set[tuple[str, str, str]]:
        """Return ``(receiver, alertname, account)`` of the delivered alerts."""
        return {
            (receiver, alert["labels"]["alertname"], alert["labels"].get("account", ""))
            for receiver, _, alert in self.delivered(status)
        }


def _faster(duration: str) -> str:
    seconds = int(duration[:-1]) * _UNIT_SECONDS[duration[-1]]
    return f"{max(1, round(1000 * seconds / SPEED_UP))}ms"


def _rules_for_test(destination: Path) -> Path:
    """Copy the shipped rules with `for` and `keep_firing_for` 300 times shorter.

    The shipped durations (minutes to an hour) suit a 15-minute poll; this test polls every
    2 s. Expressions, labels and annotations stay exactly the shipped ones, and so does the
    order of the durations, on which the first notification of a problem depends.
    """
    document = yaml.safe_load(artifacts.RULES_FILE.read_text(encoding="utf-8"))
    shortened = 0
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SLOW_ALERTS.get(rule.get("alert", ""), _faster(rule["for"]))
                shortened += 1
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = _faster(rule["keep_firing_for"])
    assert shortened >= 13, "expected every alert to have a for: duration"
    destination.write_text(yaml.safe_dump(document), encoding="utf-8")
    return destination


def _exporter_config(path: Path, endpoint: str, username: str, balance: float) -> Path:
    thresholds = {
        "open_invoice_balance_usd": OPEN_BALANCE_THRESHOLD,
        # Above what the account owes now, below it once the test's invoice is open.
        "account_balance_usd": balance + OPENED_INVOICE_AMOUNT / 2,
        # Issued invoices are past their grace at once: the overdue case without waiting.
        "open_invoice_grace": "1s",
        "pending_invoice_max_age": "35d",
        # The promtool tests cover these; here they would depend on the generated history.
        "monthly_budget_usd": None,
        "forecast_surge_ratio": None,
        "category_surge_ratio": None,
    }
    auth = {"method": "classic", "username": username}
    config = {
        "poll_interval": "2s",
        "poll_jitter": 0,
        "request_timeout": "10s",
        "accounts": [
            {
                "name": ACCOUNT,
                "endpoint": endpoint,
                "auth": {**auth, "api_key_env": "E2E_SOFTLAYER_API_KEY"},
                "thresholds": thresholds,
            },
            {
                "name": BAD_ACCOUNT,
                "endpoint": endpoint,
                "auth": {**auth, "api_key_env": "E2E_SOFTLAYER_BAD_KEY"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _alertmanager_config(path: Path, webhook_url: str) -> Path:
    """The shipped config, its receivers pointed at the webhook and its waits shortened."""
    config = yaml.safe_load(artifacts.ALERTMANAGER_FILE.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        url = f"{webhook_url}/{receiver['name']}"
        receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
    route = config["route"]["routes"][0]
    route.update({"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
    for child in route["routes"]:
        child.pop("repeat_interval", None)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _prometheus_config(path: Path, rules: Path, exporters: list[str], alertmanager: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        # The HA pair: two targets of one job, identical series but for `instance`.
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": exporters}]}],
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


@dataclass
class Stack:
    """What the running stack offers the checks."""

    http: aiohttp.ClientSession
    api: str
    instances: list[str]
    processes: Processes
    webhook: Webhook
    alertmanager: str
    #: Evaluation time of the queries (unix seconds); None for "now". Values compared with
    #: each other are read at one instant: projections move with every poll.
    at: float | None = None

    def freeze(self) -> None:
        """Evaluate the following queries at one instant just behind the latest scrapes."""
        self.at = time.time() - 2.0  # two scrape intervals: both exporters are in

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query (now, or at the frozen instant); return its result vector."""
        params = {"query": expr} | ({} if self.at is None else {"time": f"{self.at:.3f}"})
        async with self.http.get(f"{self.api}/query", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def panel(
        self, title: str, ref: str = "A", dashboard: str = OVERVIEW
    ) -> list[dict[str, Any]]:
        """Run one dashboard target as Grafana would at the end of the range ("now")."""
        (target,) = [
            t
            for file, name, t in artifacts.panel_exprs()
            if file == dashboard and name == title and t["refId"] == ref
        ]
        variables = {
            "datasource": "prometheus",
            "job": JOB,
            "instance": "|".join(self.instances),  # the "All" value: both exporters
            "account": ".+",
            "topn": "10",
            "__rate_interval": "5s",
            "__interval": "1s",
            "__range": "1h",
        }
        return await self.query(artifacts.substitute(target["expr"], variables))

    async def until(self, what: str, probe: Callable[[], Awaitable[T | None]]) -> T:
        """Poll ``probe`` until it returns a value."""
        return await _until(what, probe, self.processes)


async def test_ha_pair_routes_and_panels_end_to_end(tmp_path: Path, processes: Processes) -> None:
    """One overdue alert for an HA pair, routed, grouped and inhibiting; panels count once."""
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "E2E_SOFTLAYER_BAD_KEY": "not-the-key",
    }
    simulator_argv = [_script("softlayer-api-simulator"), "--web.listen-address", "127.0.0.1:0"]
    simulator_argv += ["--seed", "11", "--accounts", "1", "--items", "30", "--no-pending-invoice"]
    processes.start("simulator", simulator_argv, env=env)

    async def simulator_ready() -> dict[str, Any] | None:
        return _first_json_line(processes.read("simulator"), key="endpoint")

    simulator = await _until("the simulator's JSON line", simulator_ready, processes)
    admin_url = str(simulator["admin_url"]).rstrip("/")
    account = simulator["accounts"][0]
    env["E2E_SOFTLAYER_API_KEY"] = account["api_key"]

    webhook = Webhook()
    app = web.Application()
    app.router.add_post("/alerts/{receiver}", webhook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        webhook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/alerts"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{admin_url}/accounts/{account['id']}/truth") as response:
                truth = await response.json()
            config = _exporter_config(
                tmp_path / "exporter.yaml",
                str(simulator["endpoint"]),
                str(account["username"]),
                float(truth["balance"]),
            )
            stack = await _start_stack(
                tmp_path,
                processes,
                env,
                http,
                config,
                webhook,
                webhook_url,
                prometheus,
                alertmanager,
            )
            await _scenario(stack, admin_url, int(account["id"]), float(truth["balance"]))
    finally:
        await runner.cleanup()


async def _start_stack(
    tmp_path: Path,
    processes: Processes,
    env: dict[str, str],
    http: aiohttp.ClientSession,
    config: Path,
    webhook: Webhook,
    webhook_url: str,
    prometheus: str,
    alertmanager: str,
) -> Stack:
    """Start the two exporters, Alertmanager and Prometheus; return once rules see data."""
    exporter_argv = [_script("softlayer-billing-exporter"), "--config.file", str(config)]
    exporter_argv += ["--web.listen-address", "127.0.0.1:0", "--log.format", "json"]
    for name in EXPORTERS:
        processes.start(f"exporter-{name}", exporter_argv, env=env)
    instances = []
    for name in EXPORTERS:

        async def listening(name: str = name) -> str | None:
            return _listening_url(processes.read(f"exporter-{name}"))

        url = await _until(f"exporter {name} to listen", listening, processes)
        instances.append(url.split("://", 1)[1])

    async def bound(name: str) -> str | None:
        return _bound_address(processes.read(name))

    am_config = _alertmanager_config(tmp_path / "am.yml", webhook_url)
    am_argv = [alertmanager, f"--config.file={am_config}", f"--storage.path={tmp_path / 'am'}"]
    am_argv += ["--web.listen-address=127.0.0.1:0", "--cluster.listen-address="]
    processes.start("alertmanager", am_argv)
    am_address = await _until("Alertmanager to listen", lambda: bound("alertmanager"), processes)
    rules = _rules_for_test(tmp_path / "rules.yml")
    prom_config = _prometheus_config(tmp_path / "prometheus.yml", rules, instances, am_address)
    prom_argv = [
        prometheus,
        f"--config.file={prom_config}",
        f"--storage.tsdb.path={tmp_path / 'p'}",
    ]
    processes.start("prometheus", [*prom_argv, "--web.listen-address=127.0.0.1:0"])
    prom_address = await _until("Prometheus to listen", lambda: bound("prometheus"), processes)
    api = f"http://{prom_address}/api/v1"
    stack = Stack(http, api, instances, processes, webhook, f"http://{am_address}/api/v2")

    async def ready(url: str) -> bool | None:
        async with http.get(url) as response:
            return True if response.status == 200 else None

    await stack.until("Alertmanager ready", lambda: ready(f"http://{am_address}/-/ready"))
    await stack.until("Prometheus ready", lambda: ready(f"http://{prom_address}/-/ready"))

    async def both_polled() -> bool | None:
        # Both exporters have finished a poll of the good account, and the rules ran on it.
        up = await stack.query(f'softlayer_up{{job="{JOB}", account="{ACCOUNT}"}} == 1')
        age = await stack.query("account:softlayer_poll_interval_seconds:estimate")
        return True if len(up) == len(EXPORTERS) and age else None

    await stack.until("both exporters polled and rules evaluated", both_polled)
    return stack


async def _scenario(stack: Stack, admin_url: str, account_id: int, balance: float) -> None:
    """Open an overdue invoice, check routing, inhibition and panels, then pay it."""
    before = await stack.query(f'ALERTS{{alertname="{OVERDUE}", account="{ACCOUNT}"}}')
    assert not before, f"{OVERDUE} is active before any invoice is open: {before}"
    assert await stack.panel("Pending invoice open balance") == []

    await _open_pending_invoice(stack.http, admin_url, account_id, str(OPENED_INVOICE_AMOUNT))

    async def delivered() -> bool | None:
        names = stack.webhook.names()
        wanted = {
            ("softlayer-finance-page", OVERDUE, ACCOUNT),
            ("softlayer-operations", "SoftLayerApiAuthFailing", BAD_ACCOUNT),
        }
        return True if wanted <= names else None

    await stack.until("the overdue and auth alerts at their receivers", delivered)
    await _check_grouping_and_inhibition(stack)
    await _check_panels_count_once(stack, balance)

    await _pay_pending_invoice(stack.http, admin_url, account_id)

    async def resolved() -> bool | None:
        return (
            True
            if ("softlayer-finance-page", OVERDUE, ACCOUNT) in stack.webhook.names("resolved")
            else None
        )

    await stack.until(f"{OVERDUE} resolved at the webhook", resolved)

    async def panel_empty() -> bool | None:
        return True if await stack.panel("Pending invoice open balance") == [] else None

    await stack.until("the open-balance panel to go empty after payment", panel_empty)
    await _check_panels_after_payment(stack)


async def _check_grouping_and_inhibition(stack: Stack) -> None:
    """One overdue alert for two exporters, grouped by alert and account; duplicates inhibited."""
    overdue = [
        (receiver, payload, alert)
        for receiver, payload, alert in stack.webhook.delivered()
        if alert["labels"]["alertname"] == OVERDUE
    ]
    assert {alert["fingerprint"] for _, _, alert in overdue} == {overdue[0][2]["fingerprint"]}
    receiver, payload, alert = overdue[0]
    assert receiver == "softlayer-finance-page"
    assert payload["groupLabels"] == {"alertname": OVERDUE, "account": ACCOUNT}
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["team"] == "finance"
    assert "instance" not in alert["labels"]
    assert (
        f"still has {OPENED_INVOICE_AMOUNT:.2f} USD unpaid" in alert["annotations"]["description"]
    )
    assert alert["annotations"]["runbook_url"].endswith("#softlayerinvoiceoverdue")

    # The alerts an inhibit rule makes redundant fire in Prometheus, but never reach anyone:
    async def both_firing() -> bool | None:
        firing = await stack.query('ALERTS{alertstate="firing"}')
        names = {(a["metric"]["alertname"], a["metric"].get("account")) for a in firing}
        wanted = {
            ("SoftLayerAccountBalanceHigh", ACCOUNT),
            ("SoftLayerAccountPollFailing", BAD_ACCOUNT),
        }
        return True if wanted <= names else None

    await stack.until("the redundant alerts to fire in Prometheus", both_firing)

    # The Alertmanager holds them as suppressed by the alert that explains them.
    async def suppressed() -> bool | None:
        async with stack.http.get(f"{stack.alertmanager}/alerts") as response:
            alerts = await response.json()
        inhibited = {
            (a["labels"]["alertname"], a["labels"].get("account"))
            for a in alerts
            if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
        }
        wanted = {
            ("SoftLayerAccountBalanceHigh", ACCOUNT),
            ("SoftLayerAccountPollFailing", BAD_ACCOUNT),
        }
        return True if wanted <= inhibited else None

    await stack.until("the Alertmanager to inhibit them", suppressed)
    names = {(name, account) for _, name, account in stack.webhook.names()}
    assert ("SoftLayerAccountBalanceHigh", ACCOUNT) not in names
    assert ("SoftLayerAccountPollFailing", BAD_ACCOUNT) not in names
    auth = [
        a
        for _, _, a in stack.webhook.delivered()
        if a["labels"]["alertname"] == "SoftLayerApiAuthFailing"
    ]
    assert {a["fingerprint"] for a in auth} == {auth[0]["fingerprint"]}, (
        "one auth alert per account"
    )


async def _check_panels_count_once(stack: Stack, balance: float) -> None:
    """Panels show the simulator's numbers once under the HA pair, not once per exporter."""
    stack.freeze()
    (open_balance,) = await stack.panel("Pending invoice open balance")
    assert open_balance["metric"] == {"account": ACCOUNT}
    assert float(open_balance["value"][1]) == OPENED_INVOICE_AMOUNT
    accounts = {
        r["metric"]["account"]: float(r["value"][1]) for r in await stack.panel("Account balance")
    }
    (owed,) = await stack.panel("All accounts", "A")
    assert float(owed["value"][1]) == sum(accounts.values())
    # Each exporter reports the balance; the panel shows it once, not the two added up.
    per_exporter = await stack.query(
        f'softlayer_account_balance_usd{{job="{JOB}", account="{ACCOUNT}"}}'
    )
    assert len(per_exporter) == len(EXPORTERS)
    assert {float(r["value"][1]) for r in per_exporter} == {accounts[ACCOUNT]}
    assert accounts[ACCOUNT] > balance, "the open invoice is owed"
    categories = await stack.panel("Top categories on the next invoice")
    keys = [(r["metric"]["account"], r["metric"]["category"]) for r in categories]
    assert keys, "no categories on the next invoice"
    assert len(keys) == len(set(keys)), "a category listed once per exporter"
    # One exporter's own total is what the dashboard's total must be. The projection
    # depends on when each exporter polled (hours left), so the larger of the two counts.
    raw = await stack.query(
        f'sum by (instance) (softlayer_next_invoice_projected_pre_tax_usd{{job="{JOB}"}})'
    )
    totals = [float(r["value"][1]) for r in raw]
    assert len(totals) == len(EXPORTERS)
    assert min(totals) == pytest.approx(max(totals), rel=1e-3)
    (projected,) = await stack.panel("All accounts", "C")
    assert float(projected["value"][1]) == max(totals)
    await _check_single_counting(stack)
    stack.at = None


def _values(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    """Map each result series' ``labels`` values to its value; fail on a repeated key."""
    values: dict[tuple[str, ...], float] = {}
    for series in result:
        key = tuple(series["metric"].get(label, "") for label in labels)
        assert key not in values, f"{key} appears twice (once per exporter?): {result}"
        values[key] = float(series["value"][1])
    return values


async def _one_exporter(
    stack: Stack, selector: str, *labels: str, projected: bool = False
) -> dict[tuple[str, ...], float]:
    """What ``max by`` over the pair must show: one exporter's values, not their sum.

    Both exporters must serve the same keys and values; an hourly charge may tick between
    their polls, so this waits for a moment they agree. Projections depend on when each
    polled (hours left in the cycle): for them the larger of two close values counts.
    """

    async def agreed() -> dict[tuple[str, ...], float] | None:
        by_instance: dict[str, dict[tuple[str, ...], float]] = {}
        for series in await stack.query(selector):
            key = tuple(series["metric"].get(label, "") for label in labels)
            value = float(series["value"][1])
            by_instance.setdefault(series["metric"]["instance"], {})[key] = value
        assert sorted(by_instance) == sorted(stack.instances), by_instance.keys()
        first, second = by_instance.values()
        assert first.keys() == second.keys()
        if projected:
            for key, value in first.items():
                assert value == pytest.approx(second[key], rel=1e-3), key
            return {key: max(value, second[key]) for key, value in first.items()}
        if first != second:
            stack.freeze()  # a later instant, at which the panels are read too
            return None
        return first

    return await stack.until(f"both exporters to agree on {selector}", agreed)


async def _check_single_counting(stack: Stack) -> None:
    """Tables, bar gauges and trends: each value equals one exporter's, never the pair's sum."""
    job = f'job="{JOB}", account="{ACCOUNT}"'
    projected = await _one_exporter(
        stack,
        f"softlayer_next_invoice_category_projected_usd{{{job}}}",
        "account",
        "category",
        projected=True,
    )
    top = _values(await stack.panel("Top categories on the next invoice"), "account", "category")
    # The top N (topn=10) of the account's categories, each at one exporter's value.
    assert len(top) == min(10, len(projected))
    assert {key: projected[key] for key in top} == top
    assert min(top.values()) >= max((v for k, v in projected.items() if k not in top), default=0)
    for ref, billing in (("A", "monthly"), ("B", "hourly")):
        money = await _one_exporter(
            stack,
            f'softlayer_next_invoice_category_usd{{{job}, billing="{billing}"}}',
            "category",
        )
        (total,) = await stack.panel("Hourly vs monthly money", ref)
        assert float(total["value"][1]) == pytest.approx(sum(money.values()), rel=1e-9)
    recent = await _one_exporter(
        stack, f"softlayer_recent_invoices{{{job}}} > 0", "invoice_type", "status"
    )
    shown = _values(await stack.panel("Invoices in the look-back window"), "invoice_type", "status")
    assert shown == recent
    # The invoice table: every invoice once, its status read from the state set.
    rows = _values(
        await stack.panel("Latest recurring and pending invoice"), "account", "invoice", "status"
    )
    assert rows[(ACCOUNT, "pending", "OPEN")] == OPENED_INVOICE_AMOUNT
    assert {key[1] for key in rows if key[0] == ACCOUNT} == {"latest_recurring", "pending"}
    (share,) = await stack.panel("Open balance vs threshold")
    assert float(share["value"][1]) == OPENED_INVOICE_AMOUNT / OPEN_BALANCE_THRESHOLD
    # The operator's view: one state per account, however many exporters poll it.
    accounts = _values(await stack.panel("Accounts", dashboard=HEALTH), "account")
    assert accounts == {(ACCOUNT,): 1.0, (BAD_ACCOUNT,): 0.0}


async def _check_panels_after_payment(stack: Stack) -> None:
    """Once the invoice is paid, the "now" panels about open invoices show nothing at all."""
    for title, ref in (
        ("Pending invoice open balance", "A"),
        ("Pending invoice age", "A"),
        ("Open balance vs threshold", "A"),
        ("Pending invoice age vs grace", "A"),
        # Nothing is open on any pending invoice: the total is empty, not a stale value.
        ("All accounts", "B"),
    ):
        assert await stack.panel(title, ref) == [], title
    rows = _values(
        await stack.panel("Latest recurring and pending invoice"), "account", "invoice", "status"
    )
    assert rows == {(ACCOUNT, "latest_recurring", "CLOSED"): OPENED_INVOICE_AMOUNT}
