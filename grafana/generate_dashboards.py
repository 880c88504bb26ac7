"""Generate the Grafana dashboards in ``grafana/dashboards/`` from one description.

The JSON files are committed (users import them as they are); this script is how they are
written, so that every panel gets the same conventions:

- the ``${datasource}`` variable on the panel and on every target, and ``job``/``instance``
  (and, where the metric has it, ``account``) matchers on every selector;
- **HA-safe**: billing values are ``max by (account, ...)``, so two exporters polling the
  same accounts (series identical but for ``instance``) count once; totals across accounts
  sum those per-account maxima;
- **"now" panels** (stat, bar gauge, pie, table) run instant queries: a paid invoice's open
  balance disappears instead of lingering as the range's last value;
- money in USD with two decimals; thresholds that alerts use are read from the exporter's
  threshold series (panels show the value as a share of the account's own threshold);
- panels behind an alert link to its runbook (``mixin.py`` holds the runbook URL).

``tests/grafana`` checks that the committed files equal this output and validate against
Grafana's published schema. Run from the repository root: ``python grafana/generate_dashboards.py``.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixin import DEFAULTS, GRAFANA, HEALTH_UID, OVERVIEW_UID, MixinConfig

DASHBOARD_DIR = GRAFANA / "dashboards"
SCHEMA_VERSION = 39
TAGS = ["softlayer", "billing", "softlayer-billing-exporter"]

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
#: Matchers of the exporter's target labels; every selector carries them.
TARGET = 'job=~"$job", instance=~"$instance"'
#: Target matchers plus the account; for every per-account metric.
ACCOUNT = f'{TARGET}, account=~"$account"'
#: Billing values change once per poll (15 minutes by default): a rate over a shorter window
#: sees at most one burst and draws isolated points, so health panels query no finer.
POLL = "15m"
USD = "currencyUSD"

Panel = dict[str, Any]
Target = dict[str, Any]


def sel(metric: str, *extra: str, account: bool = True) -> str:
    """Return ``metric{extra..., job=~"$job", instance=~"$instance"[, account=~"$account"]}``."""
    return f"{metric}{{{', '.join([*extra, ACCOUNT if account else TARGET])}}}"


def mx(by: str, expr: str) -> str:
    """Return ``max by (by) (expr)``: one series per account (and ``by``) for an HA pair."""
    return f"max by ({by}) ({expr})"


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> Target:
    """Return a Prometheus query target bound to the datasource variable."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if instant else "time_series",
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }


def now(expr: str, legend: str = "", ref: str = "A") -> Target:
    """Return an instant query target: the value at the dashboard's end time, or nothing."""
    return target(expr, legend, ref, instant=True) | {"format": "time_series"}


def row_of(expr: str, ref: str) -> Target:
    """Return an instant table-format target (one table row per series)."""
    return target(expr, "", ref, instant=True)


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    """Return absolute thresholds, the first step's value being None (the base)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


NEUTRAL = thresholds((None, "blue"))
#: For values shown as a share of the account's alert threshold: 1 is where the alert fires.
OF_THRESHOLD = thresholds((None, "green"), (0.8, "orange"), (1, "red"))
UP_DOWN = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
        },
    }
]
REDUCE = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND = {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": []}


#: Options of the panel types that show current values, by type (Grafana's defaults made
#: explicit, as the published schema requires them).
OPTIONS: dict[str, dict[str, Any]] = {
    "stat": {
        "reduceOptions": REDUCE,
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    },
    "bargauge": {
        "reduceOptions": REDUCE,
        "orientation": "horizontal",
        "displayMode": "gradient",
        "valueMode": "color",
        "namePlacement": "auto",
        "showUnfilled": True,
        "sizing": "auto",
        "minVizWidth": 8,
        "minVizHeight": 16,
        "maxVizHeight": 300,
        "legend": {**LEGEND, "showLegend": False},
    },
    "piechart": {
        "reduceOptions": REDUCE,
        "pieType": "donut",
        "orientation": "auto",
        "displayLabels": ["percent"],
        "legend": {**LEGEND, "placement": "right", "values": ["value", "percent"]},
        "tooltip": {"mode": "single", "sort": "none"},
    },
    "timeseries": {
        "legend": {**LEGEND, "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "table": {
        "showHeader": True,
        "cellHeight": "sm",
        "frameIndex": 0,
        "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": []},
    },
}
SIZES = {"stat": (4, 5), "bargauge": (8, 8), "piechart": (6, 8), "timeseries": (12, 8)}
PALETTE = {"timeseries", "piechart"}


def panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: list[Target],
    *,
    size: tuple[int, int] | None = None,
    steps: dict[str, Any] = NEUTRAL,
    custom: dict[str, Any] | None = None,
    runbook: str | None = None,
    interval: str | None = None,
    config: MixinConfig = DEFAULTS,
    **defaults: Any,
) -> Panel:
    """Build a panel of any type with the shared conventions.

    ``defaults`` go to ``fieldConfig.defaults`` (``decimals``, ``noValue``, ``min``, ...);
    currency gets two decimals. ``runbook`` names the alert whose runbook the panel links
    to; ``interval`` is the panel's minimum query interval.
    """
    if unit == USD:
        defaults.setdefault("decimals", 2)
    overrides = defaults.pop("overrides", [])
    field: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic" if kind in PALETTE else "thresholds"},
        "thresholds": steps,
        **defaults,
    }
    if custom is not None:
        field["custom"] = custom
    result: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": dict(zip(("w", "h"), size or SIZES[kind], strict=True)),
        "fieldConfig": {"defaults": field, "overrides": overrides},
        "options": copy.deepcopy(OPTIONS[kind]),
        "targets": targets,
    }
    if interval is not None:
        result["interval"] = interval
    if runbook is not None:
        result["links"] = [
            {
                "title": f"Runbook: {runbook}",
                "type": "link",
                "url": config.runbook(runbook),
                "icon": "doc",
                "tooltip": f"What {runbook} means and what to do",
                "tags": [],
                "asDropdown": False,
                "targetBlank": True,
                "includeVars": False,
                "keepTime": False,
            }
        ]
    return result


#: Current values (instant queries): a stat, one bar per series, a donut.
stat = functools.partial(panel, "stat")
bargauge = functools.partial(panel, "bargauge")
piechart = functools.partial(panel, "piechart")


def account_stat(title: str, description: str, unit: str, expr: str, **extra: Any) -> Panel:
    """Build a stat with one value per account: ``expr``'s series, labelled by account."""
    return stat(title, description, unit, [now(expr, "{{account}}")], **extra)


def share_of_threshold(
    title: str, description: str, value: str, threshold: str, *, runbook: str
) -> Panel:
    """Build one bar per account: ``value`` as a share of the account's ``threshold``.

    1 (100%) is where the threshold's alert fires; the scale runs to 150%.
    """
    return bargauge(
        title,
        description,
        "percentunit",
        [now(f"{value} / on (account) {threshold}", "{{account}}")],
        steps=OF_THRESHOLD,
        min=0,
        max=1.5,
        runbook=runbook,
    )


def timeseries(*args: Any, stack: bool = False, **extra: Any) -> Panel:
    """Build a time series panel (a trend); ``stack`` stacks parts of one whole."""
    custom = {
        "drawStyle": "line",
        "lineInterpolation": "stepAfter",
        "lineWidth": 1,
        "fillOpacity": 30 if stack else 0,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    return panel("timeseries", *args, custom=custom, **extra)


def table(
    title: str,
    description: str,
    unit: str,
    targets: list[Target],
    *,
    columns: dict[str, str],
    units: dict[str, str] | None = None,
    sort_by: str | None = None,
    **extra: Any,
) -> Panel:
    """Build a table of instant query results, one row per label set.

    ``columns`` maps the result's field names to headers, in display order; every other
    field (``Time``, ``job``, ...) is hidden. ``units`` overrides the unit per header.
    """
    hidden = {"Time", "__name__", "job", "instance", "Value"} - set(columns)
    organize = {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(sorted(hidden), True),
            "indexByName": {name: i for i, name in enumerate(columns)},
            "renameByName": columns,
        },
    }
    overrides = [
        {
            "matcher": {"id": "byName", "options": header},
            "properties": [{"id": "unit", "value": field_unit}]
            + ([{"id": "decimals", "value": 2}] if field_unit == USD else []),
        }
        for header, field_unit in (units or {}).items()
    ]
    extra.setdefault("size", (12, 8))
    custom = {"align": "auto", "inspect": False}
    result = panel(
        "table", title, description, unit, targets, custom=custom, overrides=overrides, **extra
    )
    if sort_by is not None:
        result["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    merge = [{"id": "merge", "options": {}}] if len(targets) > 1 else []
    result["transformations"] = [*merge, organize]
    return result


def row(title: str) -> Panel:
    """Build a row header (rows hold no queries)."""
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def _layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right, wrapping at 24 columns; give each a unique id."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if item["type"] == "row" or x + grid["w"] > 24:
            y += row_height
            x = row_height = 0
        grid.update({"x": x, "y": y})
        item["id"] = number
        if item["type"] == "row":
            y += 1
            item["panels"] = []
            continue
        x += grid["w"]
        row_height = max(row_height, grid["h"])
    return panels


def _query_variable(name: str, label: str, query: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def variables(*, top_n: bool = False) -> list[dict[str, Any]]:
    """Template variables: datasource, job, instance, account (and the top-N size)."""
    result = [
        {
            "name": "datasource",
            "label": "Data source",
            "description": "Prometheus server scraping softlayer-billing-exporter.",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "current": {"selected": False, "text": "default", "value": "default"},
            "options": [],
            "hide": 0,
            "refresh": 1,
            "multi": False,
            "includeAll": False,
        },
        _query_variable(
            "job",
            "Job",
            "label_values(softlayer_exporter_build_info, job)",
            "Scrape jobs of softlayer-billing-exporter targets.",
        ),
        _query_variable(
            "instance",
            "Instance",
            'label_values(softlayer_exporter_build_info{job=~"$job"}, instance)',
            "Exporter instances; an HA pair polls the same accounts twice and counts once here.",
        ),
        _query_variable(
            "account",
            "Account",
            f"label_values(softlayer_up{{{TARGET}}}, account)",
            "SoftLayer accounts, by their configured name.",
        ),
    ]
    if top_n:
        result.append(
            {
                "name": "topn",
                "label": "Top categories",
                "description": "How many billing categories the top-N table shows.",
                "type": "custom",
                "query": "5,10,20",
                "current": {"selected": True, "text": "10", "value": "10"},
                "options": [
                    {"selected": value == "10", "text": value, "value": value}
                    for value in ("5", "10", "20")
                ],
                "multi": False,
                "includeAll": False,
                "hide": 0,
            }
        )
    return result


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    *,
    refresh: str,
    top_n: bool = False,
) -> dict[str, Any]:
    """Wrap panels into a dashboard with the shared conventions (a month by default)."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "weekStart": "",
        # A billing cycle is a month; 35 days show the last invoice being issued and paid.
        "time": {"from": "now-35d", "to": "now"},
        "timepicker": {"refresh_intervals": ["1m", "5m", "15m", "30m", "1h"]},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "title": "SoftLayer dashboards",
                "tags": ["softlayer-billing-exporter"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables(top_n=top_n)},
        "panels": _layout(panels),
    }


CACHED = "Cached by the exporter and refreshed every poll interval (default 15m)."
HA = "Each account counts once however many exporters poll it."


def _finance_queries() -> dict[str, str]:
    """Return the per-account (HA-deduplicated) billing series the overview is built from."""
    pending = 'invoice="pending"'
    return {
        "balance": mx("account", sel("softlayer_account_balance_usd")),
        "open": mx("account", sel("softlayer_invoice_open_balance_usd", pending)),
        "age": mx(
            "account", f"time() - {sel('softlayer_invoice_created_timestamp_seconds', pending)}"
        ),
        "projected": mx("account", sel("softlayer_next_invoice_projected_pre_tax_usd")),
        "recurring": mx(
            "account", sel("softlayer_invoice_pre_tax_usd", 'invoice="latest_recurring"')
        ),
        "failure": mx("account", sel("softlayer_invoice_last_payment_failure_timestamp_seconds")),
        "cycle_end": mx("account", sel("softlayer_billing_cycle_end_timestamp_seconds")),
        "categories": mx("account, category", sel("softlayer_next_invoice_category_projected_usd")),
        "hourly": sel("softlayer_next_invoice_category_usd", 'billing="hourly"'),
        "monthly": sel("softlayer_next_invoice_category_usd", 'billing="monthly"'),
    }


def _threshold(kind: str, metric: str = "softlayer_alert_threshold_usd") -> str:
    return mx("account", sel(metric, f'kind="{kind}"'))


def overview_now(q: dict[str, str]) -> list[Panel]:
    """Build the "now" rows: values per account, against thresholds, all accounts."""
    return [
        row("Now"),
        account_stat(
            "Account balance",
            "Amount owed on the account; negative when overpaid. " + CACHED,
            USD,
            q["balance"],
            runbook="SoftLayerAccountBalanceHigh",
        ),
        account_stat(
            "Pending invoice open balance",
            "Total minus payments of the open (pending) invoice: what is still owed. Empty "
            "once it is paid (SoftLayer closes an invoice on payment). " + CACHED,
            USD,
            q["open"],
            noValue="none open",
            runbook="SoftLayerInvoiceOverdue",
        ),
        account_stat(
            "Pending invoice age",
            "Time since the open invoice was issued; SoftLayerPendingInvoiceTooOld fires past "
            "pending_invoice_max_age, SoftLayerInvoiceOverdue past open_invoice_grace if it "
            "still owes more than its threshold.",
            "dtdurations",
            q["age"],
            noValue="none open",
            runbook="SoftLayerPendingInvoiceTooOld",
        ),
        account_stat(
            "Next invoice projected",
            "Pre-tax total of the next invoice with the hourly items projected to the end of "
            "the billing cycle at their current rate. " + CACHED,
            USD,
            q["projected"],
            runbook="SoftLayerForecastOverBudget",
        ),
        account_stat(
            "Last payment failure",
            "When the newest CLOSED_FAILED invoice in the look-back window was closed; empty "
            "when none failed. " + CACHED,
            "dateTimeFromNow",
            f"1000 * {q['failure']}",
            noValue="none",
            runbook="SoftLayerInvoicePaymentFailed",
        ),
        account_stat(
            "Next invoice date",
            "End of the current billing cycle, when SoftLayer issues the next recurring "
            "invoice (the account's billing info). " + CACHED,
            "dateTimeAsIso",
            f"1000 * {q['cycle_end']}",
        ),
        share_of_threshold(
            "Open balance vs threshold",
            "The pending invoice's open balance as a share of the account's "
            "open_invoice_balance_usd (exported threshold): past 100% and past its grace, "
            "SoftLayerInvoiceOverdue fires.",
            q["open"],
            _threshold("open_invoice_balance"),
            runbook="SoftLayerInvoiceOverdue",
        ),
        share_of_threshold(
            "Pending invoice age vs grace",
            "The pending invoice's age as a share of the account's open_invoice_grace "
            "(exported threshold): past 100% the payment terms are over.",
            q["age"],
            _threshold("open_invoice_grace", "softlayer_alert_threshold_seconds"),
            runbook="SoftLayerInvoiceOverdue",
        ),
        share_of_threshold(
            "Next invoice projected vs budget",
            "The projected next invoice as a share of the account's monthly_budget_usd "
            "(exported threshold); empty without a budget.",
            q["projected"],
            _threshold("monthly_budget"),
            runbook="SoftLayerForecastOverBudget",
        ),
        stat(
            "All accounts",
            "Totals over the selected accounts, each account counted once: what they owe, "
            "what is open on pending invoices, the next invoices projected and the latest "
            "recurring invoices (pre-tax).",
            USD,
            [
                now(f"sum({q['balance']})", "owed"),
                now(f"sum({q['open']})", "open on pending invoices", "B"),
                now(f"sum({q['projected']})", "next invoices projected", "C"),
                now(f"sum({q['recurring']})", "latest recurring invoices", "D"),
            ],
            size=(24, 4),
        ),
    ]


def overview_changes(q: dict[str, str]) -> list[Panel]:
    """Build what changed: next vs latest invoice, categories then and now, hourly money."""
    categories = q["categories"]
    projected = sel("softlayer_next_invoice_category_projected_usd")
    week_ago = mx("account, category", f"{projected} offset 7d")
    info = mx("account, category, category_name", sel("softlayer_billing_category_info"))
    named = f"({categories} * on (account, category) group_left (category_name) {info})"
    top = f"topk($topn, {named} or on (account, category) {categories})"
    billing = "account, category, billing"
    hourly = f"sum by (account) ({mx(billing, q['hourly'])})"
    monthly = f"sum by (account) ({mx(billing, q['monthly'])})"
    return [
        row("What changed"),
        table(
            "Next invoice vs latest recurring invoice",
            "The latest recurring invoice and the next one projected to the end of the cycle, "
            "both pre-tax whole months, the change and the ratio that "
            "SoftLayerForecastSurge compares with forecast_surge_ratio. " + HA,
            USD,
            [
                row_of(q["recurring"], "A"),
                row_of(q["projected"], "B"),
                row_of(f"{q['projected']} - on (account) {q['recurring']}", "C"),
                row_of(f"{q['projected']} / on (account) ({q['recurring']} > 0)", "D"),
            ],
            columns={
                "account": "Account",
                "Value #A": "Latest recurring",
                "Value #B": "Next (projected)",
                "Value #C": "Change",
                "Value #D": "Ratio",
            },
            units={
                "Latest recurring": USD,
                "Next (projected)": USD,
                "Change": USD,
                "Ratio": "percentunit",
            },
            runbook="SoftLayerForecastSurge",
        ),
        table(
            "Top categories on the next invoice",
            "The most expensive billing categories (top N from the variable), each a whole "
            "month (hourly items projected), now, 7 and 30 days ago, and the change over "
            "the week. " + HA,
            USD,
            [
                row_of(top, "A"),
                row_of(week_ago, "B"),
                row_of(mx("account, category", f"{projected} offset 30d"), "C"),
                row_of(f"{categories} - on (account, category) {week_ago}", "D"),
            ],
            columns={
                "account": "Account",
                "category": "Category",
                "category_name": "Name",
                "Value #A": "Now",
                "Value #B": "7 days ago",
                "Value #C": "30 days ago",
                "Value #D": "Change over 7 days",
            },
            units={"Now": USD, "7 days ago": USD, "30 days ago": USD, "Change over 7 days": USD},
            sort_by="Now",
            runbook="SoftLayerCategoryCostSurge",
        ),
        timeseries(
            "Hourly vs monthly money",
            "Per account: monthly items (the whole month), hourly items accrued so far this "
            "cycle (they restart at 0 each cycle) and the hourly items projected to the end "
            "of the cycle at their current rate. " + HA,
            USD,
            [
                target(monthly, "{{account}} monthly"),
                target(hourly, "{{account}} hourly so far", "B"),
                target(
                    f"sum by (account) ({categories}) - on (account) {monthly}",
                    "{{account}} hourly projected",
                    "C",
                ),
            ],
        ),
        timeseries(
            "Next invoice by category",
            "Each billing category's month on the next invoice (monthly items plus hourly "
            "ones projected), stacked per account; categories beyond the exporter's "
            "top_categories are summed into 'other'. " + HA,
            USD,
            [target(categories, "{{account}} {{category}}")],
            stack=True,
            runbook="SoftLayerCategoryCostSurge",
        ),
    ]


def overview_invoices(q: dict[str, str]) -> list[Panel]:
    """Build the invoice rows: latest and pending, the look-back window, accounts, trends."""
    status = mx("account, invoice, status", f"{sel('softlayer_invoice_status')} == 1")

    def with_status(metric: str) -> str:
        value = mx("account, invoice, invoice_type", sel(metric))
        return f"{value} * on (account, invoice) group_left (status) {status}"

    recent = "sum by (invoice_type, status) ({})".format
    return [
        row("Invoices"),
        table(
            "Latest recurring and pending invoice",
            "Totals of the latest recurring invoice and of the open (pending) invoice, if "
            "any, with their status. " + CACHED,
            USD,
            [
                row_of(with_status("softlayer_invoice_total_usd"), "A"),
                row_of(with_status("softlayer_invoice_payments_usd"), "B"),
                row_of(with_status("softlayer_invoice_open_balance_usd"), "C"),
                row_of(with_status("softlayer_invoice_items"), "D"),
                row_of(f"1000 * {with_status('softlayer_invoice_created_timestamp_seconds')}", "E"),
            ],
            columns={
                "account": "Account",
                "invoice": "Invoice",
                "invoice_type": "Type",
                "status": "Status",
                "Value #A": "Total",
                "Value #B": "Payments",
                "Value #C": "Open balance",
                "Value #D": "Items",
                "Value #E": "Issued",
            },
            units={"Items": "short", "Issued": "dateTimeAsIso"},
            size=(24, 6),
        ),
        bargauge(
            "Invoices in the look-back window",
            "Invoices issued within the look-back window (invoice_lookback), by type and "
            "status, over the selected accounts. " + HA,
            "short",
            [
                now(
                    recent(mx("account, invoice_type, status", sel("softlayer_recent_invoices")))
                    + " > 0",
                    "{{invoice_type}} {{status}}",
                )
            ],
            runbook="SoftLayerInvoicePaymentFailed",
        ),
        bargauge(
            "Invoice amounts in the look-back window",
            "Sum of the totals of those invoices, by type and status. " + HA,
            USD,
            [
                now(
                    recent(
                        mx(
                            "account, invoice_type, status",
                            sel("softlayer_recent_invoices_amount_usd"),
                        )
                    )
                    + " != 0",
                    "{{invoice_type}} {{status}}",
                )
            ],
        ),
        table(
            "Accounts",
            "Configured account names with SoftLayer's account id and company name. " + CACHED,
            "none",
            [row_of(mx("account, account_id, company_name", sel("softlayer_account_info")), "A")],
            columns={"account": "Account", "account_id": "Account id", "company_name": "Company"},
            size=(8, 8),
        ),
        row("Trends"),
        timeseries(
            "Balance and open invoice balance",
            "Account balance, the pending invoice's open balance and the open-balance "
            "threshold over time. " + HA,
            USD,
            [
                target(q["balance"], "{{account}} balance"),
                target(q["open"], "{{account}} pending open balance", "B"),
                target(
                    _threshold("open_invoice_balance"), "{{account}} open balance threshold", "C"
                ),
            ],
            runbook="SoftLayerInvoiceOverdue",
        ),
        timeseries(
            "Next invoice projected, latest recurring invoice and budget",
            "The next invoice projected to the end of the cycle, the latest recurring invoice "
            "(both pre-tax) and the monthly budget over time. " + HA,
            USD,
            [
                target(q["projected"], "{{account}} next (projected)"),
                target(q["recurring"], "{{account}} latest recurring invoice", "B"),
                target(_threshold("monthly_budget"), "{{account}} monthly budget", "C"),
            ],
            runbook="SoftLayerForecastOverBudget",
        ),
    ]


def billing_overview() -> dict[str, Any]:
    """Build the *SoftLayer billing overview* dashboard (for a finance reader)."""
    q = _finance_queries()
    return dashboard(
        OVERVIEW_UID,
        "SoftLayer billing overview",
        "Balance, open invoices, the next invoice projected to the end of the cycle, what "
        "changed and the invoice history of SoftLayer (IBM Cloud classic) accounts, from "
        "softlayer-billing-exporter.",
        [*overview_now(q), *overview_changes(q), *overview_invoices(q)],
        refresh="5m",
        top_n=True,
    )


def exporter_health() -> dict[str, Any]:
    """Build the *SoftLayer exporter health* dashboard (for an operator)."""
    latency = sel("softlayer_api_request_duration_seconds_bucket")

    def quantile(q: str, ref: str) -> Target:
        expr = f"histogram_quantile({q}, sum by (le, method) (rate({latency}[$__rate_interval])))"
        return target(expr, f"{{{{method}}}} p{q[2:]}", ref)

    def rate(metric: str, by: str) -> str:
        return f"sum by ({by}) (rate({sel(metric)}[$__rate_interval]))"

    # last_over_time keeps the last success while the exporter is down or unscraped, so the
    # age keeps growing instead of the panel going blank.
    success = sel("softlayer_source_last_success_timestamp_seconds")
    newest = "max by (account, source) (last_over_time({}[{}]))".format
    age_now = f"max by (account) (time() - {newest(success, '$__range')})"
    age_trend = f"time() - {newest(success, '1d')}"
    attempt = mx("job, instance, account", sel("softlayer_source_last_attempt_timestamp_seconds"))
    panels = [
        row("Status"),
        stat(
            "Exporter targets",
            "Whether Prometheus can scrape each exporter (up). SoftLayerExporterDown fires "
            "after 5 minutes down.",
            "none",
            [now(f"up{{{TARGET}}}", "{{instance}}")],
            mappings=UP_DOWN,
            runbook="SoftLayerExporterDown",
        ),
        account_stat(
            "Accounts",
            "1 when every source of the account succeeded on its latest poll, on at least "
            "one exporter (softlayer_up).",
            "none",
            mx("account", sel("softlayer_up")),
            mappings=UP_DOWN,
            runbook="SoftLayerAccountPollFailing",
        ),
        stat(
            "Sources",
            "Latest poll result of each source of each account, on at least one exporter; a "
            "failed source keeps serving its last good values (softlayer_source_up).",
            "none",
            [now(mx("account, source", sel("softlayer_source_up")), "{{account}} {{source}}")],
            mappings=UP_DOWN,
            size=(8, 5),
        ),
        account_stat(
            "Data age",
            "Time since the oldest source of each account last succeeded on any exporter. It "
            "keeps growing while the exporter is down. SoftLayerBillingDataStale fires past "
            "three poll intervals (45m by default).",
            "s",
            age_now,
            steps=thresholds((None, "green"), (1800, "orange"), (2700, "red")),
            runbook="SoftLayerBillingDataStale",
        ),
        table(
            "Exporter build",
            "Version of each exporter and of its Python.",
            "none",
            [row_of(sel("softlayer_exporter_build_info", account=False), "A")],
            columns={"instance": "Instance", "version": "Version", "python_version": "Python"},
            size=(4, 5),
        ),
        row("Freshness"),
        timeseries(
            "Data age by source",
            "Time since each source last succeeded on any exporter; it grows through an "
            "outage (up to a day back). SoftLayerBillingDataStale fires beyond three poll "
            "intervals.",
            "s",
            [target(age_trend, "{{account}} {{source}}")],
            interval=POLL,
            runbook="SoftLayerBillingDataStale",
        ),
        timeseries(
            "Poll duration",
            "Wall time of each account's latest poll cycle, per exporter.",
            "s",
            [target(sel("softlayer_poll_duration_seconds"), "{{account}} {{instance}}")],
            interval=POLL,
            size=(6, 8),
        ),
        account_stat(
            "Next poll due in",
            "Time until each account's next poll cycle on the soonest exporter; negative "
            "means overdue (a stuck poller).",
            "s",
            f"min by (account) ({sel('softlayer_next_poll_timestamp_seconds')}) - time()",
            size=(3, 8),
        ),
        account_stat(
            "Poll interval",
            "Poll period in use (configured interval plus jitter), from the exporter's own "
            "schedule: the next cycle's due time minus the latest cycle's start.",
            "s",
            mx(
                "account",
                f"{sel('softlayer_next_poll_timestamp_seconds')} - on (job, instance, "
                f"account) {attempt}",
            ),
            size=(3, 8),
        ),
        row("SoftLayer API"),
        timeseries(
            "API requests by method and status",
            "SoftLayer API requests per second by method and HTTP status (code 'none': no "
            "response arrived), all exporters together: an HA pair really calls twice.",
            "reqps",
            [
                target(
                    rate("softlayer_api_requests_total", "account, method, code"),
                    "{{account}} {{method}} {{code}}",
                )
            ],
            interval=POLL,
        ),
        timeseries(
            "API errors by reason",
            "Failed SoftLayer API requests per second by reason (auth, permission, "
            "rate_limited, timeout, server, client, decode, network, ...).",
            "reqps",
            [
                target(
                    rate("softlayer_api_errors_total", "account, reason"), "{{account}} {{reason}}"
                )
            ],
            interval=POLL,
            runbook="SoftLayerApiAuthFailing",
        ),
        bargauge(
            "API errors in the time range",
            "Failed SoftLayer API requests within the dashboard's time range, by account "
            "and reason.",
            "short",
            [
                now(
                    "sum by (account, reason) "
                    f"(increase({sel('softlayer_api_errors_total')}[$__range])) > 0",
                    "{{account}} {{reason}}",
                )
            ],
            runbook="SoftLayerApiRateLimited",
        ),
        timeseries(
            "API request latency",
            "50th, 90th and 99th percentile latency of SoftLayer API requests by method.",
            "s",
            [quantile("0.50", "A"), quantile("0.90", "B"), quantile("0.99", "C")],
            interval=POLL,
            size=(8, 8),
        ),
        timeseries(
            "Mean API request latency",
            "Mean latency of SoftLayer API requests by method.",
            "s",
            [
                target(
                    f"{rate('softlayer_api_request_duration_seconds_sum', 'method')} / "
                    f"{rate('softlayer_api_request_duration_seconds_count', 'method')}",
                    "{{method}}",
                )
            ],
            interval=POLL,
            size=(8, 8),
        ),
    ]
    return dashboard(
        HEALTH_UID,
        "SoftLayer exporter health",
        "Health of softlayer-billing-exporter: targets, per-account and per-source poll "
        "results, data age, poll timing and SoftLayer API requests, errors and latency.",
        panels,
        refresh="1m",
    )


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "softlayer-billing-overview.json": billing_overview,
    "softlayer-exporter-health.json": exporter_health,
    "softlayer-billing-changes.json": lambda: __import__("finops_dashboard").build(),
}


def render(build: Callable[[], dict[str, Any]]) -> str:
    """Serialise one dashboard the way the committed files are written."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every dashboard file."""
    for name, build in DASHBOARDS.items():
        (DASHBOARD_DIR / name).write_text(render(build), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
