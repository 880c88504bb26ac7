"""Generate the Prometheus rules and the Alertmanager routing from one description.

Writes ``alerts/softlayer-billing.rules.yml``, ``alertmanager/alertmanager.yml`` and
``mixin-defaults.json`` under ``grafana/`` with the settings of ``mixin.py``. The committed
files are what users load; ``tests/grafana`` checks they equal this output.

The model every rule follows:

- **Severity is what happens to money.** ``critical`` (a page): money is at risk now, an
  invoice is unpaid past its grace or a payment failed. ``warning`` (a ticket): everything
  else, including the exporter being down, since billing moves in days.
- **``team`` routes**: ``finance`` for what the invoices say, ``operations`` for the exporter.
- **One alert per problem.** Billing alerts aggregate ``by (account)`` and never keep
  ``instance``, so an HA pair of exporters (identical series but for ``instance``) yields one
  alert; health alerts keep ``job`` so the Alertmanager's inhibit rules can match on it.
- **A gap is not a payment.** Billing alerts have ``keep_firing_for``: a failed scrape, an
  exporter restart (series absent until its first poll ends) or a Prometheus restart does not
  resolve them and page again once ``for`` has elapsed.

Run from the repository root: ``python grafana/generate_alerts.py``.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixin import (
    DEFAULTS,
    DEFAULTS_FILE,
    GRAFANA,
    HEALTH_UID,
    OVERVIEW_UID,
    MixinConfig,
    render_defaults,
)

RULES_FILE = GRAFANA / "alerts" / "softlayer-billing.rules.yml"
ALERTMANAGER_FILE = GRAFANA / "alertmanager" / "alertmanager.yml"
#: The same routing as a prometheus-operator AlertmanagerConfig spec (receivers left out:
#: the Helm chart adds them from its values).
OPERATOR_FILE = GRAFANA / "alertmanager" / "alertmanagerconfig-spec.yaml"

#: A surge must add at least this much money to the month before it alerts: a ratio alone
#: fires when a $1 category becomes $2. (No per-account threshold series exists for it.)
SURGE_FLOOR_USD = 100
#: How long a failed payment alerts while the account still owes money. SoftLayer closes a
#: failed invoice as CLOSED_FAILED for good (reference softlayer-api.md section 8.4), so the
#: failure itself never "resolves"; a week covers the payment retry without re-alerting on
#: the next month's invoice.
PAYMENT_FAILURE_WINDOW = "7d"
#: How long billing alerts outlive their condition: longer than a restart's first poll and a
#: few failed scrapes, short enough that a real payment resolves the same hour.
BILLING_KEEP_FIRING = "1h"

FINANCE = "finance"
OPERATIONS = "operations"


@dataclass
class Rule:
    """One alerting or recording rule, with the comment written above it."""

    name: str
    expr: str
    why: str = ""
    record: bool = False
    duration: str | None = None
    keep_firing_for: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def alert(
    config: MixinConfig,
    name: str,
    expr: str,
    *,
    severity: str,
    team: str,
    summary: str,
    description: str,
    duration: str,
    dashboard: str,
    why: str = "",
) -> Rule:
    """Build an alert with the shared labels and annotations; billing alerts keep firing."""
    query = "var-account={{ $labels.account }}" if "$labels.account" in description else ""
    return Rule(
        name=name,
        expr=expr,
        why=why,
        duration=duration,
        keep_firing_for=BILLING_KEEP_FIRING if team == FINANCE else None,
        labels={"severity": severity, "team": team},
        annotations={
            "summary": summary,
            "description": " ".join(description.split()),
            "runbook_url": config.runbook(name),
            "dashboard_url": config.dashboard(dashboard, query),
        },
    )


def recording_rules(config: MixinConfig) -> list[Rule]:
    """Build the HA-deduplicated building blocks of the alerts."""
    sel = config.selector
    return [
        Rule(
            "account:softlayer_pending_invoice_age_seconds:max",
            f"""max by (account) (
  time() - {sel("softlayer_invoice_created_timestamp_seconds", 'invoice="pending"')}
)""",
            "Age of the open (pending) invoice; absent when none is open.",
            record=True,
        ),
        Rule(
            "account:softlayer_next_invoice_projected_vs_latest_recurring:ratio",
            f"""max by (account) ({sel("softlayer_next_invoice_projected_pre_tax_usd")})
/ on (account)
max by (account) ({sel("softlayer_invoice_pre_tax_usd", 'invoice="latest_recurring"')} > 0)""",
            "The next invoice projected to the end of the cycle (hourly items at their current\n"
            "rate) over the latest recurring invoice, both pre-tax whole months: like with like.",
            record=True,
        ),
        Rule(
            "account_category:softlayer_next_invoice_category_projected_usd:max",
            f"max by (account, category) ({sel('softlayer_next_invoice_category_projected_usd')})",
            "A category's month (monthly items plus hourly ones projected to the end of the\n"
            "cycle), one series per account and category whatever the number of exporters.",
            record=True,
        ),
        Rule(
            "account_category:softlayer_next_invoice_category_projected_usd:avg_7d_offset_1d",
            f"""max by (account, category) (
  avg_over_time({sel("softlayer_next_invoice_category_projected_usd")}[7d] offset 1d)
)""",
            "The baseline a category surge is measured against: its projected month averaged\n"
            "over the week before yesterday, so neither one sample nor the surge's own first day\n"
            "moves it. Absent for a category that did not exist then.",
            record=True,
        ),
        Rule(
            "account:softlayer_poll_interval_seconds:estimate",
            f"""max by (job, account) (
  {sel("softlayer_next_poll_timestamp_seconds")}
  - on (job, instance, account)
  max by (job, instance, account) ({sel("softlayer_source_last_attempt_timestamp_seconds")})
)""",
            "The poll period the exporter runs with (interval plus jitter), read from its own\n"
            "schedule, so staleness is judged in poll periods whatever poll_interval is.",
            record=True,
        ),
    ]


def billing_alerts(config: MixinConfig) -> list[Rule]:
    """Build the alerts on what the invoices say (routed to finance)."""
    sel = config.selector
    # Billing alerts go to finance and link the overview dashboard.
    billing = functools.partial(alert, config, team=FINANCE, dashboard=OVERVIEW_UID)
    threshold = "max by (account) ({})".format
    age = "account:softlayer_pending_invoice_age_seconds:max"
    grace = threshold(sel("softlayer_alert_threshold_seconds", 'kind="open_invoice_grace"'))
    return [
        billing(
            "SoftLayerInvoiceOverdue",
            f"""max by (account, invoice_type) (
  {sel("softlayer_invoice_open_balance_usd", 'invoice="pending"')}
)
> on (account) group_left ()
{threshold(sel("softlayer_alert_threshold_usd", 'kind="open_invoice_balance"'))}
and on (account)
{age}
> on (account)
{grace}""",
            why="SoftLayer creates every invoice OPEN and closes it when paid (reference\n"
            "softlayer-api.md section 8.4), so an open balance alone is the normal state between\n"
            "issue and payment. Money is at risk once the invoice is older than the account's\n"
            "payment grace and still owes more than the threshold.",
            severity="critical",
            summary="A SoftLayer invoice is unpaid past its grace period.",
            description="""The pending {{ $labels.invoice_type }} invoice of SoftLayer account
            {{ $labels.account }} still has {{ printf "%.2f" $value }} USD unpaid, above the
            account's open_invoice_balance_usd threshold, and is older than its
            open_invoice_grace.""",
            duration="30m",
        ),
        billing(
            "SoftLayerInvoicePaymentFailed",
            f"""time() - max by (account) (
  {sel("softlayer_invoice_last_payment_failure_timestamp_seconds")}
) < {_seconds(PAYMENT_FAILURE_WINDOW)}
and on (account)
max by (account) ({sel("softlayer_account_balance_usd")}) > 0""",
            why="An invoice closed CLOSED_FAILED within the last week while the account still\n"
            "owes money. The failure time is a fact the exporter exports; the alert resolves\n"
            "when the balance is paid or a week after the failure.",
            severity="critical",
            summary="A SoftLayer invoice payment failed.",
            description="""An invoice of SoftLayer account {{ $labels.account }} was closed as
            CLOSED_FAILED {{ $value | humanizeDuration }} ago and the account still owes
            money.""",
            duration="15m",
        ),
        billing(
            "SoftLayerAccountBalanceHigh",
            f"""max by (account) ({sel("softlayer_account_balance_usd")})
> on (account)
{threshold(sel("softlayer_alert_threshold_usd", 'kind="account_balance"'))}
unless on (account)
{age}
<= on (account)
{grace}""",
            why="The balance includes the invoice just issued, so it is high every month until\n"
            "payment: only a balance that no invoice within its grace explains is a ticket.",
            severity="warning",
            summary="A SoftLayer account owes more than its balance threshold.",
            description="""SoftLayer account {{ $labels.account }} owes
            {{ printf "%.2f" $value }} USD, above its account_balance_usd threshold, and no
            invoice within its payment grace explains it.""",
            duration="1h",
        ),
        billing(
            "SoftLayerPendingInvoiceTooOld",
            f"""{age}
> on (account)
{threshold(sel("softlayer_alert_threshold_seconds", 'kind="pending_invoice_age"'))}""",
            why="Any amount, even one below the open-balance threshold: an invoice open past\n"
            "pending_invoice_max_age is forgotten or stuck.",
            severity="warning",
            summary="A SoftLayer invoice has stayed open longer than allowed.",
            description="""The pending invoice of SoftLayer account {{ $labels.account }} was
            created {{ $value | humanizeDuration }} ago, longer than its
            pending_invoice_max_age.""",
            duration="1h",
        ),
        billing(
            "SoftLayerForecastOverBudget",
            f"""max by (account) ({sel("softlayer_next_invoice_projected_pre_tax_usd")})
> on (account)
{threshold(sel("softlayer_alert_threshold_usd", 'kind="monthly_budget"'))}""",
            why="The budget is a month, so it is compared with the next invoice projected to\n"
            "the end of the cycle, not with the hourly items' month-to-date accrual.",
            severity="warning",
            summary="The next SoftLayer invoice is projected above the monthly budget.",
            description="""The next invoice of SoftLayer account {{ $labels.account }} is
            projected at {{ printf "%.2f" $value }} USD before tax by the end of the billing
            cycle, above its monthly_budget_usd.""",
            duration="1h",
        ),
        billing(
            "SoftLayerForecastSurge",
            f"""account:softlayer_next_invoice_projected_vs_latest_recurring:ratio
> on (account)
{threshold(sel("softlayer_alert_threshold_ratio", 'kind="forecast_surge"'))}
and on (account)
(
  max by (account) ({sel("softlayer_next_invoice_projected_pre_tax_usd")})
  - on (account)
  max by (account) ({sel("softlayer_invoice_pre_tax_usd", 'invoice="latest_recurring"')})
) > {SURGE_FLOOR_USD}""",
            why=f"Both sides are whole months. The surge must also add at least\n"
            f"{SURGE_FLOOR_USD} USD, so small accounts do not alert on small change.",
            severity="warning",
            summary="The next SoftLayer invoice is projected well above the last recurring one.",
            description="""The next invoice of SoftLayer account {{ $labels.account }} is
            projected at {{ $value | humanizePercentage }} of the latest recurring invoice
            (pre-tax), above its forecast_surge_ratio.""",
            duration="1h",
        ),
        billing(
            "SoftLayerCategoryCostSurge",
            f"""account_category:softlayer_next_invoice_category_projected_usd:max
/ on (account, category)
account_category:softlayer_next_invoice_category_projected_usd:avg_7d_offset_1d
> on (account) group_left ()
{threshold(sel("softlayer_alert_threshold_ratio", 'kind="category_surge"'))}
and on (account, category)
(
  account_category:softlayer_next_invoice_category_projected_usd:max
  - on (account, category)
  account_category:softlayer_next_invoice_category_projected_usd:avg_7d_offset_1d
) > {SURGE_FLOOR_USD}""",
            why="A category's projected month against its own smoothed baseline (see the\n"
            "recording rule). Hourly money is projected to the month first, so month-to-date\n"
            "accrual never looks like a surge. A category new this week has no baseline and is\n"
            f"left to SoftLayerForecastSurge; the {SURGE_FLOOR_USD} USD floor keeps $1 -> $2\n"
            "quiet.",
            severity="warning",
            summary="The cost of a SoftLayer billing category surged.",
            description="""Billing category {{ $labels.category }} of SoftLayer account
            {{ $labels.account }} is projected at {{ $value | humanizePercentage }} of its
            average over the week before yesterday, above its category_surge_ratio.""",
            duration="1h",
        ),
    ]


def health_alerts(config: MixinConfig) -> list[Rule]:
    """Build the alerts on whether the exporter sees the accounts (routed to operations)."""
    sel = config.selector
    # Health alerts go to operations and link the exporter health dashboard.
    health = functools.partial(alert, config, team=OPERATIONS, dashboard=HEALTH_UID)
    return [
        health(
            "SoftLayerExporterDown",
            f"{sel('up')} == 0",
            why="No time window: it stays firing until the target is up again or leaves\n"
            "service discovery, and then SoftLayerExporterAbsent takes over.",
            severity="warning",
            summary="Prometheus cannot scrape a softlayer-billing-exporter.",
            description="""Target {{ $labels.instance }} of job {{ $labels.job }} has been down
            for 5 minutes; its SoftLayer billing data is not collected until it is back.""",
            duration="5m",
        ),
        health(
            "SoftLayerExporterAbsent",
            f"absent({sel('softlayer_up')})",
            why="No exporter reports any account: not scraped, not running, a job selector\n"
            "that matches nothing, or no account configured. softlayer_up is absent until an\n"
            "account's first poll has ended, so `for` outlasts a restart's first poll.",
            severity="warning",
            summary="No SoftLayer account is being monitored.",
            description="""No softlayer-billing-exporter target matching the rules' job
            selector reports any account (softlayer_up is absent): billing alerts cannot
            fire.""",
            duration="15m",
        ),
        health(
            "SoftLayerAccountPollFailing",
            f"max by (job, account) ({sel('softlayer_up')}) == 0",
            why="Every exporter of the job fails the account (max): one good replica of an HA\n"
            "pair still delivers its data.",
            severity="warning",
            summary="Polls of a SoftLayer account keep failing.",
            description="""At least one billing source of SoftLayer account
            {{ $labels.account }} has failed on every poll of every exporter for 30 minutes;
            its metrics keep their last good values.""",
            duration="30m",
        ),
        health(
            "SoftLayerBillingDataStale",
            f"""min by (job, account, source) (
  time() - {sel("softlayer_source_last_success_timestamp_seconds")}
)
> on (job, account) group_left ()
3 * account:softlayer_poll_interval_seconds:estimate""",
            why="Also catches a poll loop that stopped attempting (softlayer_up then keeps its\n"
            "last value). The freshest exporter counts (min), as in an HA pair.",
            severity="warning",
            summary="SoftLayer billing data is stale.",
            description="""Source {{ $labels.source }} of SoftLayer account
            {{ $labels.account }} last succeeded {{ $value | humanizeDuration }} ago, more
            than three poll intervals.""",
            duration="15m",
        ),
        health(
            "SoftLayerApiAuthFailing",
            f"""sum by (job, account) (
  increase({sel("softlayer_api_errors_total", 'reason=~"auth|permission"')}[1h])
) > 0
and on (job, account)
max by (job, account) ({sel("softlayer_up")}) == 0""",
            why="Rejected credentials and missing permissions are not retried and never heal\n"
            "by themselves; requiring the account to be failing clears the alert on the first\n"
            "successful poll.",
            severity="warning",
            summary="The SoftLayer API rejects the exporter's credentials.",
            description="""SoftLayer account {{ $labels.account }} answered
            {{ $value | humanize }} requests with an authentication or permission error in the
            last hour and its polls are failing.""",
            duration="15m",
        ),
        health(
            "SoftLayerApiRateLimited",
            f"""sum by (job, account) (
  increase({sel("softlayer_api_errors_total", 'reason="rate_limited"')}[30m])
) > 0""",
            why="Rate-limited requests are retried with backoff, so a few are harmless; this\n"
            "fires when they recur in every 30-minute window for an hour.",
            severity="warning",
            summary="The SoftLayer API keeps rate-limiting the exporter.",
            description="""SoftLayer answered {{ $value | humanize }} requests of account
            {{ $labels.account }} with a rate-limit error in the last 30 minutes, for an
            hour.""",
            duration="1h",
        ),
    ]


def _seconds(duration: str) -> int:
    units = {"m": 60, "h": 3600, "d": 86400}
    return int(duration[:-1]) * units[duration[-1]]


def groups(config: MixinConfig) -> list[tuple[str, list[Rule]]]:
    """Return the rule groups, recording rules first (alerts read them)."""
    return [
        ("softlayer-billing.recording", recording_rules(config)),
        ("softlayer-billing.alerts", billing_alerts(config)),
        ("softlayer-exporter.alerts", health_alerts(config)),
    ]


# Alertmanager: which alert, when firing, makes which others redundant. `equal` names the
# labels both must share; an empty list means any firing source suppresses the targets.
INHIBITIONS: list[tuple[str, list[str], list[str]]] = [
    # A down target explains missing and stale data of its job.
    (
        "SoftLayerExporterDown",
        ["SoftLayerAccountPollFailing", "SoftLayerBillingDataStale"],
        ["job"],
    ),
    # SoftLayerExporterAbsent has no job label when the job selector is a regex.
    ("SoftLayerExporterDown", ["SoftLayerExporterAbsent"], []),
    (
        "SoftLayerApiAuthFailing",
        ["SoftLayerAccountPollFailing", "SoftLayerBillingDataStale"],
        ["job", "account"],
    ),
    ("SoftLayerAccountPollFailing", ["SoftLayerBillingDataStale"], ["job", "account"]),
    # The overdue invoice is why the balance is high and the invoice old.
    (
        "SoftLayerInvoiceOverdue",
        ["SoftLayerAccountBalanceHigh", "SoftLayerPendingInvoiceTooOld"],
        ["account"],
    ),
    ("SoftLayerInvoicePaymentFailed", ["SoftLayerAccountBalanceHigh"], ["account"]),
    # One spike, one notification: over budget, else the account's surge, else a category's.
    (
        "SoftLayerForecastOverBudget",
        ["SoftLayerForecastSurge", "SoftLayerCategoryCostSurge"],
        ["account"],
    ),
    ("SoftLayerForecastSurge", ["SoftLayerCategoryCostSurge"], ["account"]),
]

RECEIVERS = {
    "softlayer-finance-page": "critical finance alerts: money at risk now (page someone)",
    "softlayer-finance": "finance tickets: budgets, surges, balances, old invoices",
    "softlayer-operations": "operations tickets: the exporter and its access to SoftLayer",
}


def alertmanager_config() -> dict[str, Any]:
    """Return a complete Alertmanager config: SoftLayer route, inhibit rules, receivers."""

    def names(alerts: list[str]) -> str:
        return alerts[0] if len(alerts) == 1 else "|".join(alerts)

    inhibit_rules = []
    for source, targets, equal in INHIBITIONS:
        op = "=" if len(targets) == 1 else "=~"
        rule: dict[str, Any] = {
            "source_matchers": [f'alertname="{source}"'],
            "target_matchers": [f'alertname{op}"{names(targets)}"'],
        }
        if equal:
            rule["equal"] = equal
        inhibit_rules.append(rule)
    return {
        "route": {
            "receiver": "softlayer-operations",
            "routes": [
                {
                    # Copy this route into an existing Alertmanager's routes.
                    "matchers": ['alertname=~"SoftLayer.+"'],
                    "receiver": "softlayer-operations",
                    "group_by": ["alertname", "account"],
                    # Billing values change once per poll (15m by default).
                    "group_wait": "1m",
                    "group_interval": "15m",
                    "repeat_interval": "24h",
                    "routes": [
                        {
                            "matchers": ['team="finance"', 'severity="critical"'],
                            "receiver": "softlayer-finance-page",
                            "repeat_interval": "4h",
                        },
                        {"matchers": ['team="finance"'], "receiver": "softlayer-finance"},
                        {"matchers": ['team="operations"'], "receiver": "softlayer-operations"},
                    ],
                }
            ],
        },
        "inhibit_rules": inhibit_rules,
        "receivers": [{"name": name} for name in RECEIVERS],
    }


def _operator_matchers(matchers: list[str]) -> list[dict[str, str]]:
    """Turn ``name="value"`` / ``name=~"regex"`` strings into AlertmanagerConfig matchers."""
    result = []
    for matcher in matchers:
        parsed = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher)
        if parsed is None:
            raise ValueError(f'matcher not of the form name="value": {matcher}')
        name, op, value = parsed.groups()
        result.append({"name": name, "value": value, "matchType": op})
    return result


def _operator_route(route: dict[str, Any]) -> dict[str, Any]:
    keys = {"group_by": "groupBy", "group_wait": "groupWait", "group_interval": "groupInterval"}
    keys["repeat_interval"] = "repeatInterval"
    result: dict[str, Any] = {"receiver": route["receiver"]}
    result |= {camel: route[snake] for snake, camel in keys.items() if snake in route}
    if "matchers" in route:
        result["matchers"] = _operator_matchers(route["matchers"])
    if "routes" in route:
        result["routes"] = [_operator_route(child) for child in route["routes"]]
    return result


def operator_spec() -> dict[str, Any]:
    """Return the SoftLayer route and inhibit rules as an AlertmanagerConfig spec."""
    config = alertmanager_config()
    inhibit = [
        {
            "sourceMatch": _operator_matchers(rule["source_matchers"]),
            "targetMatch": _operator_matchers(rule["target_matchers"]),
            **({"equal": rule["equal"]} if "equal" in rule else {}),
        }
        for rule in config["inhibit_rules"]
    ]
    return {"route": _operator_route(config["route"]["routes"][0]), "inhibitRules": inhibit}


def render_operator_spec() -> str:
    """Serialise the AlertmanagerConfig spec with a header."""
    header = (
        "# prometheus-operator AlertmanagerConfig spec of grafana/alertmanager/alertmanager.yml\n"
        "# (route and inhibit rules; the Helm chart adds the receivers). Generated by\n"
        "# grafana/generate_alerts.py.\n"
    )
    return header + yaml.safe_dump(operator_spec(), sort_keys=False, width=100)


def _block(text: str, indent: str) -> str:
    return "\n".join(indent + line if line else "" for line in text.splitlines())


def _scalar(value: str) -> str:
    dumped = yaml.safe_dump(value, default_style=None, width=10_000, allow_unicode=True)
    return dumped.removesuffix("\n...\n").removesuffix("\n")


def render_rules(config: MixinConfig = DEFAULTS) -> str:
    """Serialise the rule groups as YAML, with the reasons as comments."""
    lines = [
        "# Prometheus recording and alerting rules for softlayer-billing-exporter.",
        "# Generated by grafana/generate_alerts.py from grafana/mixin.py: edit those, then run",
        "# `python grafana/generate_alerts.py`. Runbooks: docs/runbooks.md, one section per alert.",
        "#",
        "# Thresholds come from the exporter's softlayer_alert_threshold_* gauges (set per account",
        "# in its config; a threshold set to null disables its alert). Billing values change once",
        "# per poll (15m by default): `for` spans two polls where a glitch is possible.",
        "groups:",
    ]
    for group_name, rules in groups(config):
        lines += [f"  - name: {group_name}", "    rules:"]
        for rule in rules:
            lines += [_block(rule.why, "      # ")] if rule.why else []
            key = "record" if rule.record else "alert"
            lines += [
                f"      - {key}: {rule.name}",
                "        expr: |-",
                _block(rule.expr, " " * 10),
            ]
            if rule.duration:
                lines.append(f"        for: {rule.duration}")
            if rule.keep_firing_for:
                lines.append(f"        keep_firing_for: {rule.keep_firing_for}")
            for section in ("labels", "annotations"):
                mapping: dict[str, str] = getattr(rule, section)
                if mapping:
                    lines.append(f"        {section}:")
                    lines += [f"          {k}: {_scalar(v)}" for k, v in mapping.items()]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_alertmanager() -> str:
    """Serialise the Alertmanager config with a header that says how to use it."""
    header = [
        "# Alertmanager routing for softlayer-billing-exporter's alerts.",
        "# Generated by grafana/generate_alerts.py: edit that, then run it.",
        "#",
        '# Use it whole, or copy the SoftLayer route (alertname=~"SoftLayer.+") and the',
        "# inhibit_rules into your own config. The receivers have no integration yet: give each",
        "# one (email_configs, slack_configs, webhook_configs, ...):",
    ]
    header += [f"#   {name}: {purpose}" for name, purpose in RECEIVERS.items()]
    body = yaml.safe_dump(alertmanager_config(), sort_keys=False, width=100)
    return "\n".join(header) + "\n" + body


def main() -> int:
    """Write the rules, the Alertmanager config and the chart's defaults."""
    ALERTMANAGER_FILE.parent.mkdir(exist_ok=True)
    RULES_FILE.write_text(render_rules(), encoding="utf-8")
    ALERTMANAGER_FILE.write_text(render_alertmanager(), encoding="utf-8")
    OPERATOR_FILE.write_text(render_operator_spec(), encoding="utf-8")
    DEFAULTS_FILE.write_text(render_defaults(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
