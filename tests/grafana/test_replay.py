"""A billing month replayed through the exporter: which alerts fire, when, and nothing else.

The month is recorded once per session (tests/grafana/replay.py): three accounts on the
simulator's billing clock, an HA pair of exporters polling them hourly, scraped every 15
minutes for 36 days. ``promtool test rules`` then evaluates the shipped rules over the
recording, every 15 minutes, exactly as Prometheus would. The story (day d hh:mm counts from
the replay's start, UTC):

- ``ontime`` has its invoice cut on day 4 and paid by its 10-day terms on day 14, within the
  30-day grace: nothing fires. On day 18 10:00 a $800 monthly server is added (a real cost
  spike), and cancelled on day 20 10:00.
- ``late`` has its invoice cut on day 1 and left unpaid past its 10-day grace (and past its
  14-day maximum age); it is paid by hand on day 24 10:07, between two polls.
- ``failing`` has its invoice cut on day 14 05:00 and its card declined at 09:00 (closed
  ``CLOSED_FAILED``, still owed): the payment failure alerts until a week has passed.
- All accounts accrue hourly items all month and restart them at their anniversaries;
  ontime and late cut their next invoices on days 35 and 32 (open, within grace: quiet).
- Both exporters miss one scrape on day 13 12:00 (billing alerts keep firing); exporter a
  is unreachable for 90 minutes from day 16 06:00; exporter b restarts on day 22 (down at
  14:15, up again at 14:30 with no billing series until its first poll has ended, counters
  from zero, and from then on polling half an hour out of phase with a).

The expected timeline is derived from those events: an alert starts firing ``for`` after its
condition first holds (when an exporter has polled the event, or, for an age, when the
evaluation time passes the limit) and stops ``keep_firing_for`` after the last exporter has
polled the event that clears it. promtool checks the set of firing alerts at every
evaluation of the month, except within one evaluation step of each expected start and end.
Dashboard panels are checked on the same recording at four moments: each account counts
once (HA pair, restart, scrape gap) and a paid invoice leaves the "now" panels empty.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require_tool
from tests.grafana import artifacts, replay
from tests.grafana.replay import FAILING, INSTANCES, LATE, ONTIME, STEP, STEPS, Month, at

# e2e: a whole simulated month of two exporters, about a minute (kept out of the fast subset).
pytestmark = [pytest.mark.prometheus, pytest.mark.e2e]

RULES = {rule["alert"]: rule for rule in artifacts.alerts()}
#: How long after a failed payment SoftLayerInvoicePaymentFailed may fire (a policy constant
#: of the rules' generator).
PAYMENT_FAILURE_WINDOW = artifacts.grafana_module("generate_alerts").PAYMENT_FAILURE_WINDOW
FIRING = 'ALERTS{alertstate="firing"}'
OVERVIEW = "softlayer-billing-overview.json"
#: Grafana's variables as a dashboard with "All" selected substitutes them.
VARIABLES = {
    "datasource": "prometheus",
    "job": replay.JOB,
    "instance": "|".join(INSTANCES),
    "account": ".+",
    "topn": "10",
    "__rate_interval": "1h",
    "__interval": "15m",
    "__range": "1d",
}
#: Panel values are compared rounded to a tenth of a cent: sums over series may add in
#: another order in PromQL than here.
ROUND_TO = 0.001
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def seconds(duration: str | None) -> float:
    """Parse a rule duration (``30m``, ``1h``); None or absent is 0."""
    if not duration:
        return 0.0
    return float(int(duration[:-1]) * _UNITS[duration[-1]])


def first_step_at(moment: float) -> float:
    """The first evaluation at or after ``moment``."""
    return Month.time(Month.step_at_or_after(moment))


def first_step_after(moment: float) -> float:
    """The first evaluation strictly after ``moment``."""
    return Month.time(math.floor((moment - replay.T0) / STEP) + 1)


@dataclass(frozen=True)
class Expected:
    """One alert the story must fire: when its condition holds and when it clears."""

    alert: str
    labels: tuple[tuple[str, str], ...]
    #: First evaluation at which the condition holds.
    onset: float
    #: First evaluation at which it no longer holds.
    cleared: float

    @property
    def start(self) -> float:
        """First evaluation at which the alert fires: ``for`` after the onset."""
        return first_step_at(self.onset + seconds(RULES[self.alert].get("for")))

    @property
    def end(self) -> float:
        """First evaluation at which it no longer fires: ``keep_firing_for`` after clearing."""
        return first_step_at(self.cleared + seconds(RULES[self.alert].get("keep_firing_for")))

    def series(self) -> str:
        """The ``ALERTS`` series Prometheus writes while the alert fires."""
        labels = {
            **dict(self.labels),
            **RULES[self.alert]["labels"],
            "alertname": self.alert,
            "alertstate": "firing",
        }
        body = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        return f"ALERTS{{{body}}}"


def cut_in_replay(month: Month, account: str) -> float:
    """When the billing clock cut the account's first invoice of the replay."""
    cuts: list[float] = [
        inv.created.timestamp()
        for inv in month.invoices[account]
        if inv.type_code == "RECURRING" and inv.created.timestamp() >= replay.T0
    ]
    return min(cuts)


def expected_alerts(month: Month) -> list[Expected]:
    """The alerts the story fires, derived from its events and the exported thresholds."""
    script = month.script
    late = replay.THRESHOLDS[LATE]
    assert late.open_invoice_grace_seconds is not None
    assert late.pending_invoice_max_age_seconds is not None
    cut = cut_in_replay(month, LATE)
    paid = month.seen(script.late_paid, by="all")
    past_grace = first_step_after(cut + late.open_invoice_grace_seconds)
    too_old = first_step_after(cut + late.pending_invoice_max_age_seconds)
    spike = month.seen(script.spike, by="any")
    spike_gone = month.seen(script.spike_cancelled, by="all")
    gap_a_end = script.gap_a + script.gap_a_steps * STEP
    (failure,) = [
        inv.closed.timestamp()
        for inv in month.invoices[FAILING]
        if inv.status_code == "CLOSED_FAILED"
        and inv.closed
        and inv.created.timestamp() >= replay.T0
    ]
    return [
        Expected(
            "SoftLayerInvoicePaymentFailed",
            (("account", FAILING),),
            month.seen(failure, by="any"),
            first_step_at(failure + seconds(PAYMENT_FAILURE_WINDOW)),
        ),
        Expected(
            "SoftLayerInvoiceOverdue",
            (("account", LATE), ("invoice_type", "RECURRING")),
            past_grace,
            paid,
        ),
        Expected("SoftLayerAccountBalanceHigh", (("account", LATE),), past_grace, paid),
        Expected("SoftLayerPendingInvoiceTooOld", (("account", LATE),), too_old, paid),
        Expected("SoftLayerForecastOverBudget", (("account", ONTIME),), spike, spike_gone),
        Expected("SoftLayerForecastSurge", (("account", ONTIME),), spike, spike_gone),
        Expected(
            "SoftLayerCategoryCostSurge",
            (("account", ONTIME), ("category", script.spike_category)),
            spike,
            spike_gone,
        ),
        Expected(
            "SoftLayerExporterDown",
            (("instance", INSTANCES[0]), ("job", replay.JOB)),
            first_step_at(script.gap_a),
            first_step_at(gap_a_end),
        ),
    ]


def alert_checks(month: Month) -> list[dict[str, Any]]:
    """At every evaluation outside the tolerance windows: exactly the expected alerts."""
    expected = expected_alerts(month)
    tolerated = set()
    for alert in expected:
        for edge in (alert.start, alert.end):
            step = Month.step_at_or_after(edge)
            tolerated |= {step - 1, step}
    checks = []
    for step in range(STEPS):
        if step in tolerated:
            continue
        now = Month.time(step)
        firing = [a.series() for a in expected if a.start <= now < a.end]
        checks.append(
            {
                "expr": FIRING,
                "eval_time": replay.eval_time(step),
                "exp_samples": [{"labels": series, "value": 1} for series in sorted(firing)],
            }
        )
    return checks


# ---- dashboard panels on the recording ------------------------------------------------------

Key = tuple[tuple[str, str], ...]


def maxed(
    month: Month, step: int, name: str, keep: tuple[str, ...], **where: str
) -> dict[Key, float]:
    """One value per ``keep`` labels over every scraped exporter: what ``max by`` must give."""
    result: dict[Key, float] = {}
    for scrapes in month.scrapes.values():
        scrape = scrapes[step]
        if scrape is None:
            continue
        for (sample, labels), value in scrape.samples.items():
            found = dict(labels)
            if sample != name or any(found.get(k) != v for k, v in where.items()):
                continue
            key = tuple((k, found[k]) for k in keep)
            result[key] = max(result.get(key, -math.inf), value)
    return result


def summed(values: dict[Key, float], keep: tuple[str, ...] = ()) -> dict[Key, float]:
    """Add values up by the ``keep`` labels (all of them when empty)."""
    result: dict[Key, float] = {}
    for key, value in values.items():
        group = tuple((k, v) for k, v in key if k in keep)
        result[group] = result.get(group, 0.0) + value
    return result


def rounded(value: float) -> float:
    """PromQL's ``round(value, ROUND_TO)``, computed the same way."""
    inverse = 1.0 / ROUND_TO
    return math.floor(value * inverse + 0.5) / inverse


def panel_expr(title: str, ref: str = "A") -> str:
    """One overview target's expression with the dashboard variables substituted."""
    (target,) = [
        t
        for file, name, t in artifacts.panel_exprs()
        if file == OVERVIEW and name == title and t["refId"] == ref
    ]
    return artifacts.substitute(target["expr"], VARIABLES)


def panel_check(step: int, title: str, ref: str, values: dict[Key, float]) -> dict[str, Any]:
    """The panel target evaluated at ``step`` returns exactly ``values`` (rounded)."""
    return {
        "expr": f"round(({panel_expr(title, ref)}), {ROUND_TO})",
        "eval_time": replay.eval_time(step),
        "exp_samples": [
            {"labels": "{" + ",".join(f'{k}="{v}"' for k, v in key) + "}", "value": rounded(v)}
            for key, v in sorted(values.items())
        ],
    }


def panel_moments(month: Month) -> dict[str, int]:
    """Steps at which the panels are checked, each with a different set of exporters."""
    script = month.script
    return {
        "both exporters, both invoices open": Month.step_at_or_after(at(12)),
        "exporter a unreachable": Month.step_at_or_after(script.gap_a) + 2,
        "exporter b restarted, not polled yet": Month.step_at_or_after(script.restart_b) + 1,
        "both exporters, both invoices paid": Month.step_at_or_after(at(26, 0, 45)),
    }


def panel_checks(month: Month) -> list[dict[str, Any]]:
    """Overview panels count each account once and show nothing for a paid invoice."""
    checks = []
    account = ("account",)
    for step in panel_moments(month).values():
        balance = maxed(month, step, "softlayer_account_balance_usd", account)
        open_balance = maxed(
            month, step, "softlayer_invoice_open_balance_usd", account, invoice="pending"
        )
        projected = maxed(month, step, "softlayer_next_invoice_projected_pre_tax_usd", account)
        recurring = maxed(
            month, step, "softlayer_invoice_pre_tax_usd", account, invoice="latest_recurring"
        )
        checks += [
            panel_check(step, "Pending invoice open balance", "A", open_balance),
            panel_check(step, "All accounts", "A", summed(balance)),
            panel_check(step, "All accounts", "B", summed(open_balance)),
            panel_check(step, "All accounts", "C", summed(projected)),
            panel_check(step, "All accounts", "D", summed(recurring)),
        ]
        categories = maxed(
            month,
            step,
            "softlayer_next_invoice_category_projected_usd",
            ("account", "category"),
        )
        names = dict(
            maxed(
                month,
                step,
                "softlayer_billing_category_info",
                ("account", "category", "category_name"),
            )
        )
        named = {key: categories[key[:2]] for key in names if key[:2] in categories}
        assert len(named) == len(categories) <= int(VARIABLES["topn"])
        checks.append(panel_check(step, "Top categories on the next invoice", "A", named))
        for ref, billing in (("A", "monthly"), ("B", "hourly")):
            money = maxed(
                month,
                step,
                "softlayer_next_invoice_category_usd",
                ("account", "category"),
                billing=billing,
            )
            checks.append(panel_check(step, "Hourly vs monthly money", ref, summed(money, account)))
        checks.append(
            panel_check(step, "Latest recurring and pending invoice", "A", invoices(month, step))
        )
    return checks


def invoices(month: Month, step: int) -> dict[Key, float]:
    """Invoice totals keyed by account, invoice, type and the status whose state is 1."""
    status = {
        key[:2]: key[2][1]
        for key, value in maxed(
            month, step, "softlayer_invoice_status", ("account", "invoice", "status")
        ).items()
        if value == 1
    }
    totals = maxed(
        month, step, "softlayer_invoice_total_usd", ("account", "invoice", "invoice_type")
    )
    assert totals.keys(), "no invoice in the table"
    return {(*key, ("status", status[key[:2]])): total for key, total in totals.items()}


# ---- running promtool once --------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """promtool's verdict on the month and the checks it was given."""

    returncode: int
    output: str
    checks: int

    def failures(self) -> list[tuple[str | None, str]]:
        """Failed checks as ``(expr, report)``; expr is None for a rule evaluation error."""
        blocks = re.split(r"\n(?=\s+(?:expr|rule): )", self.output)
        failed = []
        for block in blocks:
            quoted = re.match(r'\s+expr: ("(?:[^"\\]|\\.)*")', block)
            if quoted is not None:
                failed.append((json.loads(quoted.group(1)), block.strip()))
            elif re.match(r"\s+rule: ", block):
                failed.append((None, block.strip()))
        return failed


@pytest.fixture(scope="session")
def month() -> Month:
    """The month, recorded once for every test here (in a thread: it runs its own loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, replay.record(replay.Script())).result()


@pytest.fixture(scope="session")
def evaluation(month: Month, tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """The shipped rules evaluated over the month by promtool, with every check."""
    promtool = require_tool("promtool")
    checks = alert_checks(month) + panel_checks(month)
    path = month.promtool_file(tmp_path_factory.mktemp("replay") / "month.json", checks)
    result = subprocess.run(  # noqa: PLW1510  the verdict is asserted by the tests
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "Unit Testing" in result.stdout, result.stdout + result.stderr
    return Evaluation(result.returncode, result.stdout + result.stderr, len(checks))


def _report(failures: list[str]) -> str:
    shown = "\n\n".join(failures[:15])
    return f"{len(failures)} failed checks (times from the replay's start):\n{shown}"


# ---- the tests -------------------------------------------------------------------------------


def test_the_scripted_alerts_fire_when_expected_and_nothing_else(
    month: Month, evaluation: Evaluation
) -> None:
    """At every evaluation of the month exactly the story's alerts fire (one step leeway)."""
    failures = [report for expr, report in evaluation.failures() if expr in (FIRING, None)]
    assert not failures, _report(failures)
    checked = len(alert_checks(month))
    assert checked > STEPS * 0.95, "tolerance windows left most evaluations unchecked"
    # A failure promtool reports in a form not recognised above still fails here.
    if evaluation.returncode:
        assert evaluation.failures(), evaluation.output[-3000:]


def test_panels_count_each_account_once_and_empty_after_payment(
    month: Month, evaluation: Evaluation
) -> None:
    """Overview panels count each account once (pair, gap, restart) and empty once paid."""
    failures = [report for expr, report in evaluation.failures() if expr != FIRING]
    assert not failures, _report(failures)
    if evaluation.returncode:
        assert evaluation.failures(), evaluation.output[-3000:]
    # The moments are what their names say, so the checks cover each case.
    moments = panel_moments(month)
    a, b = (month.scrapes[instance] for instance in INSTANCES)
    for both in ("both exporters, both invoices open", "both exporters, both invoices paid"):
        assert a[moments[both]] is not None
        assert b[moments[both]] is not None
    assert a[moments["exporter a unreachable"]] is None
    fresh = b[moments["exporter b restarted, not polled yet"]]
    assert fresh is not None
    assert fresh.polled_at is None

    def open_invoices(step: int) -> dict[Key, float]:
        name = "softlayer_invoice_open_balance_usd"
        return maxed(month, step, name, ("account",), invoice="pending")

    assert len(open_invoices(moments["both exporters, both invoices open"])) == 2
    assert open_invoices(moments["both exporters, both invoices paid"]) == {}


def test_the_timeline_is_the_story(month: Month) -> None:
    """The expected alerts, derived from the events, are the story told in the docstring."""
    timeline = {
        (a.alert, dict(a.labels).get("account", dict(a.labels).get("instance"))): (
            a.start,
            a.end,
        )
        for a in expected_alerts(month)
    }
    # late's invoice is cut day 1 05:00 (its anniversary, 23:00 Central); the grace ends
    # day 11 05:00, the maximum age day 15 05:00; the payment at 10:07 is polled by b at
    # 10:30 and by a at 11:00.
    assert timeline == {
        # failing's card is declined day 14 09:00 (cut 05:00 plus four hours), polled at once.
        ("SoftLayerInvoicePaymentFailed", FAILING): (at(14, 9, 15), at(21, 10)),
        ("SoftLayerInvoiceOverdue", LATE): (at(11, 5, 45), at(24, 12)),
        ("SoftLayerAccountBalanceHigh", LATE): (at(11, 6, 15), at(24, 12)),
        ("SoftLayerPendingInvoiceTooOld", LATE): (at(15, 6, 15), at(24, 12)),
        ("SoftLayerForecastOverBudget", ONTIME): (at(18, 11), at(20, 11)),
        ("SoftLayerForecastSurge", ONTIME): (at(18, 11), at(20, 11)),
        ("SoftLayerCategoryCostSurge", ONTIME): (at(18, 11), at(20, 11)),
        ("SoftLayerExporterDown", INSTANCES[0]): (at(16, 6, 15), at(16, 7, 30)),
    }


def test_the_story_happened_in_the_recording(month: Month) -> None:
    """The recording shows the scripted events: payments, the spike, accrual, gaps, restart."""
    script = month.script
    # ontime: invoice cut in the replay and paid by its terms, well within the grace.
    ontime = [i for i in month.invoices[ONTIME] if i.created.timestamp() >= replay.T0]
    first = min(ontime, key=lambda inv: inv.created)
    assert first.status_code == "CLOSED"
    assert first.closed is not None
    assert (first.closed - first.created).days == 10
    # late: the first invoice stayed open until paid by hand.
    late = min(
        (i for i in month.invoices[LATE] if i.created.timestamp() >= replay.T0),
        key=lambda inv: inv.created,
    )
    assert late.closed is not None
    assert late.closed.timestamp() == pytest.approx(script.late_paid, abs=1)
    # The spike is in the served projection while the item exists, and only then.
    before, during, after = (
        Month.step_at_or_after(t) + 1
        for t in (script.spike - 3600, script.spike, script.spike_cancelled)
    )
    server = ("softlayer_next_invoice_category_projected_usd",
              (("account", ONTIME), ("category", script.spike_category)))  # fmt: skip
    a = month.scrapes[INSTANCES[0]]
    assert _at(a, during)[server] - _at(a, before)[server] == pytest.approx(float(script.spike_usd))
    assert _at(a, after + 4)[server] == pytest.approx(_at(a, before)[server])
    # Hourly accrual: month-to-date money grows within a cycle and restarts at the cut.
    cut = cut_in_replay(month, LATE)
    hourly = [
        sum(
            v
            for (name, labels), v in _at(a, step).items()
            if name == "softlayer_next_invoice_category_usd"
            and ("billing", "hourly") in labels
            and ("account", LATE) in labels
        )
        for step in (Month.step_at_or_after(cut) - 8, Month.step_at_or_after(cut) - 4)
    ]
    assert 0 < hourly[0] < hourly[1]
    # Scrape gaps and the restart are failed scrapes; b's first scrape after it has no
    # billing series and its counters start again from zero.
    b = month.scrapes[INSTANCES[1]]
    gap = Month.step_at_or_after(script.gap_both)
    assert a[gap] is None
    assert b[gap] is None
    down = Month.step_at_or_after(script.restart_b)
    assert b[down] is None
    fresh = b[down + 1]
    assert fresh is not None
    assert fresh.polled_at is None
    assert not [k for k in fresh.samples if k[0] == "softlayer_up"]
    requests = [
        sum(v for (n, _), v in scrape.samples.items() if n == "softlayer_api_requests_total")
        for scrape in (b[down - 1], b[down + 2])
        if scrape is not None
    ]
    assert requests[1] < requests[0]
    assert month.restarts[INSTANCES[1]] == [Month.time(down + 1)]
    # Every poll of both exporters succeeded (one canonical event per account and poll).
    polls = sum(len(p) for p in month.polls.values())
    assert len(month.poll_events) == polls * len(replay.SPECS)
    assert {e["outcome"] for e in month.poll_events} == {"ok"}


def _at(scrapes: list[replay.Scrape | None], step: int) -> dict[replay.SeriesKey, float]:
    scrape = scrapes[step]
    assert scrape is not None, f"no scrape at step {step}"
    return scrape.samples


def test_parse_exposition_agrees_with_prometheus_client(month: Month) -> None:
    """The replay's fast parser reads an exposition as prometheus_client's parser does."""
    for text in month.texts.values():
        reference = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert replay.parse_exposition(text) == reference
        assert len(reference) > 100


def test_parse_exposition_rejects_a_broken_line() -> None:
    """A line that is not a sample is an error, not a silently dropped series."""
    with pytest.raises(ValueError, match="not a sample line"):
        replay.parse_exposition('softlayer_up{account="x"}\n')


def test_series_notation_marks_staleness_and_runs() -> None:
    """Values become promtool notation: runs as vxN, a stale marker after the last sample."""
    assert replay.encode([1, 1, 1, None, None, 2.5, None, -3, -3]) == (
        "1.0x2 stale _ 2.5 stale -3.0x1"
    )
    assert replay.encode([None, None, 0.0]) == "_x2 0.0"
