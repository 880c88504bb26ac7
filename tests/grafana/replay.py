"""A billing month replayed through two real exporters and recorded as Prometheus scrapes it.

The simulator's billing clock drives three SoftLayer accounts through a little more than a
month (hourly accrual, invoices cut OPEN on the anniversary, paid by their terms) while an
HA pair of exporters (``Poller(config, state, clock=scenario.clock.time)``, one per
``instance``) polls them every hour of simulated time. Every 15 simulated minutes each
exporter's exposition (``prometheus_client.generate_latest``) is "scraped": parsed back and
kept as that instance's samples, or recorded as a failed scrape. A :class:`Script` adds the
events of the story: items added and cancelled, an invoice paid by hand, scrape gaps and an
exporter restart (a fresh poller and state, scraped before its first poll ends).

:meth:`Month.input_series` turns the recording into ``promtool test rules`` input the way
Prometheus would have stored it: ``job``/``instance`` labels, ``up``, and a staleness marker
where a series disappears or a scrape fails.

Two liberties, both forced by the tools and neither changing what a rule sees:

- ``promtool test rules`` (2.42) starts its clock at the unix epoch, so the replay's origin
  becomes 0: every ``*_timestamp_seconds`` value is shifted by it, exactly as ``time()`` is.
- The request-duration histogram measures real wall time (meaningless on a simulated clock)
  and no rule reads it, so it is left out of the input.

An exporter's exposition changes only when a poll publishes (the collector reads the
published snapshots, nothing else), so each exporter is rendered once per poll and that text
serves the scrapes until its next poll.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
import yaml
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from exporter.config import (
    AccountConfig,
    AuthConfig,
    AuthMethod,
    Config,
    RetryConfig,
    Secret,
    Thresholds,
)
from exporter.metrics import build_registry
from exporter.poller import Poller
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.snapshot import ExporterState
from tests.grafana import artifacts

#: Scrape and rule-evaluation interval of the replay (Prometheus' side).
STEP = 15 * 60
#: How often each exporter polls SoftLayer. The simulator bills hourly items by the hour,
#: so an hourly poll sees every change; it also keeps the replay within its CI budget.
POLL_INTERVAL = 3600.0
DAYS = 36
STEPS = DAYS * 86_400 // STEP
#: The replay's origin: promtool's time 0.
START = datetime(2026, 3, 1, tzinfo=UTC)
T0 = START.timestamp()
#: Seed whose accounts have their anniversaries on days 1, 4 and 14 of the replay (the first
#: two cut again before it ends), each with hourly items.
SEED = 27
#: The simulator generates hourly items that ran only part of their first cycle; from the
#: first anniversary on they run all hours, so the first invoice cut after generation is
#: smaller than every later month (a real surge, as far as the data goes). The scenario is
#: generated this long before the replay and its clock run through two anniversaries, so
#: the replay starts in a steady month whose latest invoice is a whole one.
WARM_UP = 62 * 86_400
#: In the warm-up the late account's invoices are paid by hand this long after being cut.
WARM_UP_PAYMENT_DELAY = 2 * 86_400
JOB = "softlayer"
INSTANCES = ("a:29610", "b:29610")
#: The instance the script restarts.
RESTARTED = INSTANCES[1]
#: Account names in the exporter config: paid by its terms / not paid until chased / a card
#: that fails every month.
ONTIME = "ontime"
LATE = "late"
FAILING = "failing"
#: Left out of the promtool input (see the module docstring).
WALL_CLOCK_FAMILIES = ("softlayer_api_request_duration_seconds",)

SPECS = (
    # Pays each invoice 10 days after it is cut.
    AccountSpec(
        items=8, pending_invoice=False, invoice_months=2, payment="invoice", payment_terms_days=10
    ),
    # Terms far beyond the replay: its invoice stays open until paid by hand.
    AccountSpec(
        items=6, pending_invoice=False, invoice_months=2, payment="invoice", payment_terms_days=90
    ),
    # Its card is declined four hours after each cut: the invoice closes CLOSED_FAILED.
    AccountSpec(items=4, pending_invoice=False, invoice_months=2, payment="card_failed"),
)
THRESHOLDS = {
    ONTIME: Thresholds(
        open_invoice_balance_usd=Decimal(500),
        account_balance_usd=Decimal(500),
        monthly_budget_usd=Decimal(1200),
    ),
    LATE: Thresholds(
        open_invoice_balance_usd=Decimal(100),
        account_balance_usd=Decimal(200),
        open_invoice_grace_seconds=10 * 86_400.0,
        pending_invoice_max_age_seconds=14 * 86_400.0,
    ),
    # Its invoices are open for four hours only, above this threshold but within the grace.
    FAILING: Thresholds(open_invoice_balance_usd=Decimal(100)),
}

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


def at(day: int, hour: int = 0, minute: int = 0) -> float:
    """Return the epoch of day ``day`` (0-based), ``hh:mm`` UTC, of the replay."""
    return T0 + day * 86_400 + hour * 3600 + minute * 60


@dataclass(frozen=True)
class Script:
    """The story's events, as epochs (see :func:`at`); everything else the clock does."""

    #: A real cost spike: a monthly item of ``spike_usd`` added to ``spike_category``.
    spike: float = at(18, 10)
    spike_category: str = "server"
    spike_usd: Decimal = Decimal(800)
    #: The spike's item cancelled again.
    spike_cancelled: float = at(20, 10)
    #: The late account's open invoice paid by hand, between two polls.
    late_paid: float = at(24, 10, 7)
    #: Both exporters unreachable for one scrape.
    gap_both: float = at(13, 12)
    #: Exporter ``a`` unreachable for ``gap_a_steps`` scrapes.
    gap_a: float = at(16, 6)
    gap_a_steps: int = 6
    #: Exporter ``b`` (RESTARTED) stops: its scrape fails; it starts again one scrape later.
    restart_b: float = at(22, 14, 15)


@dataclass(frozen=True)
class Scrape:
    """One successful scrape of one exporter."""

    samples: dict[SeriesKey, float]
    #: When the exporter's latest poll ran; None before its first poll.
    polled_at: float | None


class ReplayExporter:
    """One exporter process of the HA pair: poller, state and registry, restartable."""

    def __init__(self, instance: str, config: Config, clock: Callable[[], float]) -> None:
        self.instance = instance
        self.config = config
        self.clock = clock
        self.poller: Poller | None = None
        self.registry: CollectorRegistry | None = None
        self.polls: list[float] = []
        self.restarts: list[float] = []
        self._due = 0.0
        self._current: Scrape | None = None
        #: The latest exposition text rendered.
        self.text = ""

    def start(self) -> None:
        """Start a fresh process: new state, poller and registry; it polls at once."""
        state = ExporterState(tuple(a.name for a in self.config.accounts))
        self.poller = Poller(self.config, state, clock=self.clock)
        self.registry = build_registry(
            state, self.poller.api_stats, self.config, process_metrics=False
        )
        self._due = self.clock()
        self._current = Scrape(self._render(), None)
        if self.polls:
            self.restarts.append(self.clock())

    async def stop(self) -> None:
        """Stop the process (what it had in memory is lost)."""
        if self.poller is not None:
            await self.poller.aclose()
        self.poller = self.registry = self._current = None

    async def poll_if_due(self) -> None:
        """Poll every account if the interval has elapsed; publish a new exposition."""
        now = self.clock()
        if self.poller is None or self.registry is None or now < self._due:
            return
        assert await self.poller.poll_once(), f"{self.instance}: a source failed at {now}"
        self.polls.append(now)
        self._due = now + POLL_INTERVAL
        self._current = Scrape(self._render(), now)

    def scrape(self) -> Scrape | None:
        """Return what a scrape would read now; None when the process is down."""
        return self._current

    def _render(self) -> dict[SeriesKey, float]:
        """Render the exposition as served, then parse it back into samples."""
        assert self.registry is not None
        self.text = generate_latest(self.registry).decode("utf-8")
        return parse_exposition(self.text)


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_ESCAPED = re.compile(r"\\.")
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPE[match.group(0)]


def parse_exposition(text: str) -> dict[SeriesKey, float]:
    """Parse Prometheus text format 0.0.4 as ``generate_latest`` writes it into samples.

    prometheus_client's own parser (``text_string_to_metric_families``) gives the same
    result (a test compares them) but takes about 50 ms per exposition here, which over a
    month of polls is most of the replay's time.
    """
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        name, body, value = match.groups()
        labels = tuple(
            sorted(
                (key, _ESCAPED.sub(_unescape, raw) if "\\" in raw else raw)
                for key, raw in _LABEL.findall(body or "")
            )
        )
        samples[(name, labels)] = float(value)
    return samples


@dataclass(repr=False)  # asyncio.run() may repr its result; this one is megabytes
class Month:
    """The recording: per instance and step, the scrape (None: failed) and the story."""

    script: Script
    scenario: Scenario
    names: dict[int, str]
    scrapes: dict[str, list[Scrape | None]]
    polls: dict[str, list[float]]
    restarts: dict[str, list[float]]
    #: Every invoice of each account at the end (the simulator's truth), by account name.
    invoices: dict[str, list[Any]]
    #: The exporters' canonical poll events.
    poll_events: list[dict[str, Any]] = field(default_factory=list)
    #: The last exposition text of each instance.
    texts: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Month({STEPS} steps of {STEP} s, instances {', '.join(self.scrapes)})"

    @staticmethod
    def time(step: int) -> float:
        """Return the epoch of a step."""
        return T0 + step * STEP

    @staticmethod
    def step_at_or_after(moment: float) -> int:
        """Return the first step whose time is ``moment`` or later."""
        return max(0, math.ceil((moment - T0) / STEP))

    def seen(self, event: float, *, by: str) -> float:
        """Return the first step time at which the exporters' data reflects ``event``.

        ``by="any"``: some scraped exporter has polled since ``event`` (a value that rises is
        visible to ``max by``); ``by="all"``: every scraped exporter with data has (a value
        that falls or disappears is gone from ``max by``).
        """
        for step in range(self.step_at_or_after(event), STEPS):
            polled = [
                scrape.polled_at
                for scrapes in self.scrapes.values()
                if (scrape := scrapes[step]) is not None and scrape.polled_at is not None
            ]
            fresh = [p >= event for p in polled]
            if fresh and (any(fresh) if by == "any" else all(fresh)):
                return self.time(step)
        raise AssertionError(f"no scrape reflects the event at {event}")

    def input_series(self) -> list[dict[str, str]]:
        """Return the recording as ``promtool test rules`` input series (see module docs)."""
        result = []
        for instance, scrapes in self.scrapes.items():
            # Prometheus' own: a sample at every step, 0 for a failed scrape.
            up = [0.0 if s is None else 1.0 for s in scrapes]
            target = (("instance", instance), ("job", JOB))
            result.append({"series": _selector("up", target), "values": encode(up)})
            keys = sorted({k for s in scrapes if s is not None for k in s.samples})
            for name, labels in keys:
                if name.startswith(WALL_CLOCK_FAMILIES):
                    continue
                shift = T0 if name.endswith("_timestamp_seconds") else 0.0
                values = [
                    None
                    if s is None or (name, labels) not in s.samples
                    else s.samples[(name, labels)] - shift
                    for s in scrapes
                ]
                full = (*labels, ("instance", instance), ("job", JOB))
                result.append({"series": _selector(name, full), "values": encode(values)})
        return result

    def promtool_file(self, path: Path, checks: list[dict[str, Any]]) -> Path:
        """Write a ``promtool test rules`` file: the shipped rules over the recording.

        ``checks`` are ``promql_expr_test`` entries. The file is JSON (a subset of YAML):
        a month of checks is written in milliseconds that way.
        """
        document = {
            "rule_files": [str(artifacts.RULES_FILE)],
            "evaluation_interval": f"{STEP // 60}m",
            # Recording rules first, as Prometheus would have them by the next evaluation.
            "group_eval_order": [group["name"] for group in _rule_groups()],
            "tests": [
                {
                    "name": "a replayed billing month",
                    "interval": f"{STEP // 60}m",
                    "input_series": self.input_series(),
                    "promql_expr_test": checks,
                }
            ],
        }
        path.write_text(json.dumps(document), encoding="utf-8")
        return path


def _rule_groups() -> list[dict[str, Any]]:
    document = yaml.safe_load(artifacts.RULES_FILE.read_text(encoding="utf-8"))
    groups: list[dict[str, Any]] = document["groups"]
    return groups


def eval_time(step: int) -> str:
    """Return a step as a promtool ``eval_time``."""
    return f"{step * STEP // 60}m"


def _selector(name: str, labels: Labels) -> str:
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels))
    return f"{name}{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def encode(values: Sequence[float | None]) -> str:
    """Encode per-step values in promtool's series notation.

    None is "no sample": ``stale`` right after a sample (Prometheus marks a series stale
    when a scrape fails or the series leaves the exposition), ``_`` afterwards. Runs of one
    value are written ``vxN`` (N + 1 samples) and runs of ``_`` as ``_xN`` (N blanks).
    """
    tokens: list[str] = []
    previous: float | None = None
    for value, group in itertools.groupby(values):
        count = len(list(group))
        if value is None:
            if previous is not None:
                tokens.append("stale")
                count -= 1
            if count:
                tokens.append("_" if count == 1 else f"_x{count}")
        else:
            text = repr(float(value))
            tokens.append(text if count == 1 else f"{text}x{count - 1}")
        previous = value
    return " ".join(tokens)


def build_config(sim: SimulatorServer, scenario: Scenario, names: dict[int, str]) -> Config:
    """The HA pair's one config: both accounts, hourly polls, no jitter, fast retries."""
    accounts = tuple(
        AccountConfig(
            name=names[acct.id],
            endpoint=sim.endpoint,
            auth=AuthConfig(
                method=AuthMethod.CLASSIC, api_key=Secret(acct.api_key), username=acct.username
            ),
            thresholds=THRESHOLDS[names[acct.id]],
        )
        for acct in scenario.accounts
    )
    return Config(
        accounts=accounts,
        poll_interval_seconds=POLL_INTERVAL,
        poll_jitter=0.0,
        request_timeout_seconds=5.0,
        max_requests_per_second=500.0,
        retry=RetryConfig(attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.005),
        invoice_lookback_seconds=120 * 86_400.0,
        top_categories=100,
    )


def _gaps(script: Script) -> dict[int, set[str]]:
    """Steps at which an instance's scrape fails although its process runs."""
    gaps: dict[int, set[str]] = {}
    gaps.setdefault(Month.step_at_or_after(script.gap_both), set()).update(INSTANCES)
    first = Month.step_at_or_after(script.gap_a)
    for step in range(first, first + script.gap_a_steps):
        gaps.setdefault(step, set()).add(INSTANCES[0])
    return gaps


async def record(script: Script) -> Month:
    """Replay the month and record every scrape (see the module docstring)."""
    scenario = warmed_up_scenario()
    names = {
        acct.id: name for acct, name in zip(scenario.accounts, (ONTIME, LATE, FAILING), strict=True)
    }
    ontime, late, _ = (acct.id for acct in scenario.accounts)
    scrapes: dict[str, list[Scrape | None]] = {i: [] for i in INSTANCES}
    gaps = _gaps(script)
    stop_step = Month.step_at_or_after(script.restart_b)
    spike_item: list[int] = []
    events: list[tuple[float, Callable[[], None]]] = sorted(
        [
            (
                script.spike,
                lambda: spike_item.append(
                    scenario.add_billing_item(ontime, script.spike_category, script.spike_usd)
                ),
            ),
            (
                script.spike_cancelled,
                lambda: scenario.cancel_billing_item(ontime, spike_item[0]),
            ),
            (script.late_paid, lambda: _pay(scenario, late)),
        ],
        key=lambda event: event[0],
    )
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = build_config(sim, scenario, names)
        exporters = {i: ReplayExporter(i, config, scenario.clock.time) for i in INSTANCES}
        for exporter in exporters.values():
            exporter.start()
        try:
            with structlog.testing.capture_logs() as logs:
                for step in range(STEPS):
                    now = Month.time(step)
                    while events and events[0][0] <= now:
                        moment, action = events.pop(0)
                        scenario.advance_to(datetime.fromtimestamp(moment, UTC))
                        action()
                    scenario.advance_to(datetime.fromtimestamp(now, UTC))
                    for instance, exporter in exporters.items():
                        if instance == RESTARTED and step == stop_step:
                            await exporter.stop()
                        if instance == RESTARTED and step == stop_step + 1:
                            # A restarted process is scraped before its first poll ends.
                            exporter.start()
                            scrape = exporter.scrape()
                            await exporter.poll_if_due()
                        else:
                            await exporter.poll_if_due()
                            scrape = exporter.scrape()
                        reachable = instance not in gaps.get(step, set())
                        scrapes[instance].append(scrape if reachable else None)
            texts = {i: e.text for i, e in exporters.items()}
        finally:
            for exporter in exporters.values():
                await exporter.stop()
    truths = {names[a.id]: scenario.truth(a.id).invoices for a in scenario.accounts}
    return Month(
        script=script,
        scenario=scenario,
        names=names,
        scrapes=scrapes,
        polls={i: e.polls for i, e in exporters.items()},
        restarts={i: e.restarts for i, e in exporters.items()},
        invoices=truths,
        poll_events=[dict(entry) for entry in logs if entry.get("event") == "poll"],
        texts=texts,
    )


def warmed_up_scenario() -> Scenario:
    """Generate the accounts :data:`WARM_UP` before the replay and run the clock to it."""
    scenario = Scenario.generate(SEED, list(SPECS), now=datetime.fromtimestamp(T0 - WARM_UP, UTC))
    assert not any(any(acct.cancel_at) for acct in scenario.accounts), "an item would end"
    late = scenario.accounts[1].id
    for moment in range(int(T0 - WARM_UP), int(T0) + 1, 3600):
        scenario.advance_to(datetime.fromtimestamp(moment, UTC))
        pending = scenario.truth(late).pending_invoice
        if pending is not None and moment - pending.created.timestamp() >= WARM_UP_PAYMENT_DELAY:
            scenario.pay_pending_invoice(late)
    return scenario


def _pay(scenario: Scenario, account_id: int) -> None:
    scenario.pay_pending_invoice(account_id)
