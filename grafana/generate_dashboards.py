"""Generate the Grafana dashboards in ``grafana/dashboards/`` from one description.

The JSON files are committed (users import them as they are); this script is how they are
written, so that every panel gets the same conventions: the ``${datasource}`` variable on
the panel and on every target, ``job``/``instance`` (and, where the metric has it,
``account``) matchers on every selector, a unit and a description on every panel.
``tests/grafana/test_dashboards.py`` checks that the committed files equal this output.

Run from the repository root: ``python grafana/generate_dashboards.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
TAGS = ["softlayer", "billing", "softlayer-billing-exporter"]

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
#: Matchers of the exporter's target labels; every selector carries them.
TARGET = 'job=~"$job", instance=~"$instance"'
#: Target matchers plus the account; for every per-account metric.
ACCOUNT = f'{TARGET}, account=~"$account"'

Panel = dict[str, Any]


def sel(metric: str, *extra: str, account: bool = True) -> str:
    """Return ``metric{extra..., job=~"$job", instance=~"$instance"[, account=~"$account"]}``."""
    matchers = [*extra, ACCOUNT if account else TARGET]
    return f"{metric}{{{', '.join(matchers)}}}"


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False
) -> dict[str, Any]:
    """Return a Prometheus query target bound to the datasource variable."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
        "refId": ref,
    }


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


NEUTRAL = _thresholds((None, "blue"))
UP_DOWN_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
        },
    }
]


def _reduce() -> dict[str, Any]:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    stack: bool = False,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Build a time series panel; ``stack`` stacks the series (parts of one whole)."""
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "palette-classic"},
                "thresholds": NEUTRAL,
                "custom": {
                    "drawStyle": "line",
                    "lineInterpolation": "stepAfter",
                    "lineWidth": 1,
                    "fillOpacity": 30 if stack else 0,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    }


def stat(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    thresholds: dict[str, Any] = NEUTRAL,
    mappings: list[dict[str, Any]] | None = None,
    graph: bool = False,
    width: int = 4,
    height: int = 5,
) -> Panel:
    """Build a stat panel showing the latest value of each series."""
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": thresholds,
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": _reduce(),
            "colorMode": "value",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
        "targets": targets,
    }


def bargauge(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    thresholds: dict[str, Any] = NEUTRAL,
    minimum: float | None = None,
    maximum: float | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Build a horizontal bar gauge, one bar per series."""
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": thresholds,
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": _reduce(),
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
        },
        "targets": targets,
    }


def piechart(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    width: int = 6,
    height: int = 8,
) -> Panel:
    """Build a donut chart of the latest value of each series."""
    return {
        "type": "piechart",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {"unit": unit, "color": {"mode": "palette-classic"}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": _reduce(),
            "pieType": "donut",
            "displayLabels": ["percent"],
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "values": ["value", "percent"],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": targets,
    }


def table(
    title: str,
    description: str,
    unit: str,
    targets: list[dict[str, Any]],
    *,
    columns: dict[str, str],
    units: dict[str, str] | None = None,
    sort_by: str | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Build a table of instant query results.

    ``columns`` maps the result's field names to headers, in display order; every other
    field (``Time``, ``job``, ...) is hidden. ``units`` overrides the unit per header.
    """
    merge = [{"id": "merge", "options": {}}] if len(targets) > 1 else []
    # Hide the sample time, the target labels and unnamed values unless asked for.
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
            "properties": [{"id": "unit", "value": field_unit}],
        }
        for header, field_unit in (units or {}).items()
    ]
    options: dict[str, Any] = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": ""},
    }
    if sort_by is not None:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": NEUTRAL,
                "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
            },
            "overrides": overrides,
        },
        "options": options,
        "transformations": [*merge, organize],
        "targets": targets,
    }


def row(title: str) -> Panel:
    """Build a row header (rows hold no queries)."""
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def _layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right, wrapping at 24 columns; give each a unique id."""
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        grid = panel["gridPos"]
        if panel["type"] == "row" or x + grid["w"] > 24:
            y += row_height
            x = row_height = 0
        grid.update({"x": x, "y": y})
        panel["id"] = number
        if panel["type"] == "row":
            y += 1
            panel["panels"] = []
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
            "current": {},
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
            "Exporter instances (an HA pair polls the same accounts twice).",
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
    time_from: str,
    top_n: bool = False,
) -> dict[str, Any]:
    """Wrap panels into a dashboard with the shared conventions."""
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
        "time": {"from": time_from, "to": "now"},
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


def billing_overview() -> dict[str, Any]:
    """Build the *SoftLayer billing overview* dashboard."""
    recurring_pre_tax = sel("softlayer_invoice_pre_tax_usd", 'invoice="latest_recurring"')
    latest_recurring = f"max by (job, instance, account) ({recurring_pre_tax})"
    categories = sel("softlayer_next_invoice_category_usd")
    named_categories = (
        f"{categories} * on (job, instance, account, category) group_left (category_name) "
        f"{sel('softlayer_billing_category_info')}"
    )
    panels = [
        row("Now"),
        stat(
            "Account balance",
            "Amount owed on the account; negative when overpaid. " + CACHED,
            "currencyUSD",
            [target(sel("softlayer_account_balance_usd"), "{{account}}")],
        ),
        stat(
            "Pending invoice open balance",
            "Total minus payments of the open (pending) invoice: what is still owed. "
            "SoftLayerOpenInvoiceBalanceHigh fires above the account's "
            "open_invoice_balance_usd threshold. No value: no invoice is open. " + CACHED,
            "currencyUSD",
            [target(sel("softlayer_invoice_open_balance_usd", 'invoice="pending"'), "{{account}}")],
        ),
        stat(
            "Pending invoice age",
            "Time since the open invoice was created (recording rule "
            "account:softlayer_pending_invoice_age_seconds:max). "
            "SoftLayerPendingInvoiceTooOld fires above pending_invoice_max_age.",
            "dtdurations",
            [target(sel("account:softlayer_pending_invoice_age_seconds:max"), "{{account}}")],
        ),
        stat(
            "Next invoice forecast",
            "Pre-tax total of the next invoice if nothing changes "
            "(nextInvoiceTotalAmount). " + CACHED,
            "currencyUSD",
            [target(sel("softlayer_next_invoice_pre_tax_usd"), "{{account}}")],
        ),
        stat(
            "Forecast vs latest recurring invoice",
            "Next-invoice forecast as a share of the latest recurring invoice, both pre-tax "
            "(recording rule account:softlayer_next_invoice_vs_latest_recurring:ratio). "
            "SoftLayerForecastSurge fires above forecast_surge_ratio.",
            "percentunit",
            [
                target(
                    sel("account:softlayer_next_invoice_vs_latest_recurring:ratio"),
                    "{{account}}",
                )
            ],
            thresholds=_thresholds((None, "green"), (1.25, "orange")),
        ),
        bargauge(
            "Forecast vs monthly budget",
            "Next-invoice forecast (pre-tax) as a share of the account's monthly_budget_usd "
            "(recording rule account:softlayer_next_invoice_vs_budget:ratio); empty when no "
            "budget is configured. SoftLayerForecastOverBudget fires above 100%.",
            "percentunit",
            [target(sel("account:softlayer_next_invoice_vs_budget:ratio"), "{{account}}")],
            thresholds=_thresholds((None, "green"), (0.8, "orange"), (1, "red")),
            minimum=0,
            maximum=1.5,
            width=4,
            height=5,
        ),
        row("Next invoice"),
        timeseries(
            "Next invoice by category",
            "Recurring cost of each billing category on the next invoice, children "
            "included; categories beyond the exporter's top_categories are summed into "
            "'other'. " + CACHED,
            "currencyUSD",
            [
                target(
                    f"sum by (account, category) ({categories})",
                    "{{account}} {{category}}",
                )
            ],
            stack=True,
            width=16,
        ),
        piechart(
            "Next invoice items: hourly vs monthly",
            "Top-level billing items on the next invoice, by billing type. " + CACHED,
            "short",
            [
                target(
                    f"sum by (billing) ({sel('softlayer_next_invoice_category_items')})",
                    "{{billing}}",
                )
            ],
            width=8,
        ),
        table(
            "Top categories on the next invoice",
            "The most expensive billing categories on the next invoice (top N from the "
            "variable), with SoftLayer's category name where one is known. " + CACHED,
            "currencyUSD",
            [
                target(
                    f"topk($topn, ({named_categories}) "
                    f"or on (job, instance, account, category) {categories})",
                    instant=True,
                    table=True,
                )
            ],
            columns={
                "account": "Account",
                "category": "Category",
                "category_name": "Name",
                "Value": "Monthly cost",
            },
            sort_by="Monthly cost",
        ),
        timeseries(
            "Next invoice composition",
            "Recurring, one-time and tax parts of the next invoice. " + CACHED,
            "currencyUSD",
            [
                target(sel("softlayer_next_invoice_recurring_usd"), "{{account}} recurring"),
                target(sel("softlayer_next_invoice_one_time_usd"), "{{account}} one-time", "B"),
                target(sel("softlayer_next_invoice_tax_usd"), "{{account}} tax", "C"),
            ],
            stack=True,
            width=8,
        ),
        stat(
            "Items on the next invoice",
            "Top-level billing items on the next invoice. " + CACHED,
            "short",
            [target(sel("softlayer_next_invoice_items"), "{{account}}")],
            width=2,
            height=8,
        ),
        stat(
            "Categories folded into other",
            "Categories beyond top_categories summed into category 'other'. " + CACHED,
            "short",
            [target(sel("softlayer_next_invoice_folded_categories"), "{{account}}")],
            width=2,
            height=8,
        ),
        row("Invoices"),
        table(
            "Latest recurring and pending invoice",
            "Totals of the latest recurring invoice and of the open (pending) invoice, if "
            "any. " + CACHED,
            "currencyUSD",
            [
                target(sel("softlayer_invoice_total_usd"), instant=True, table=True),
                target(sel("softlayer_invoice_payments_usd"), "", "B", instant=True, table=True),
                target(
                    sel("softlayer_invoice_open_balance_usd"), "", "C", instant=True, table=True
                ),
                target(sel("softlayer_invoice_items"), "", "D", instant=True, table=True),
                target(
                    f"1000 * {sel('softlayer_invoice_created_timestamp_seconds')}",
                    "",
                    "E",
                    instant=True,
                    table=True,
                ),
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
                "Value #E": "Created",
            },
            units={"Items": "short", "Created": "dateTimeAsIso"},
            width=16,
        ),
        stat(
            "Pending invoice open",
            "Whether the account has an open (pending) invoice; none is normal. " + CACHED,
            "bool_yes_no",
            [target(sel("softlayer_pending_invoice_present"), "{{account}}")],
            width=4,
            height=8,
        ),
        stat(
            "Invoice look-back window",
            "Invoices created within this window are counted below (invoice_lookback).",
            "dtdurations",
            [target(sel("softlayer_recent_invoices_window_seconds"), "{{account}}")],
            width=4,
            height=8,
        ),
        bargauge(
            "Invoices in the look-back window",
            "Invoices created within the look-back window, by type and status; a "
            "CLOSED_FAILED one fires SoftLayerInvoicePaymentFailed. " + CACHED,
            "short",
            [
                target(
                    f"sum by (invoice_type, status) ({sel('softlayer_recent_invoices')}) > 0",
                    "{{invoice_type}} {{status}}",
                )
            ],
        ),
        bargauge(
            "Invoice amounts in the look-back window",
            "Sum of the totals of the invoices created within the look-back window, by type "
            "and status. " + CACHED,
            "currencyUSD",
            [
                target(
                    "sum by (invoice_type, status) "
                    f"({sel('softlayer_recent_invoices_amount_usd')}) != 0",
                    "{{invoice_type}} {{status}}",
                )
            ],
        ),
        table(
            "Accounts",
            "Configured account names with SoftLayer's account id and company name. " + CACHED,
            "none",
            [target(sel("softlayer_account_info"), instant=True, table=True)],
            columns={
                "account": "Account",
                "account_id": "Account id",
                "company_name": "Company",
                "instance": "Exporter",
            },
            width=24,
            height=5,
        ),
        row("Trends"),
        timeseries(
            "Balance and open invoice balance",
            "Account balance, the pending invoice's open balance and the open-balance "
            "alert threshold over time.",
            "currencyUSD",
            [
                target(sel("softlayer_account_balance_usd"), "{{account}} balance"),
                target(
                    sel("softlayer_invoice_open_balance_usd", 'invoice="pending"'),
                    "{{account}} pending open balance",
                    "B",
                ),
                target(
                    sel("softlayer_alert_threshold_usd", 'kind="open_invoice_balance"'),
                    "{{account}} open balance threshold",
                    "C",
                ),
            ],
        ),
        timeseries(
            "Forecast vs latest recurring invoice and budget",
            "Next-invoice forecast, the latest recurring invoice (both pre-tax) and the "
            "monthly budget over time.",
            "currencyUSD",
            [
                target(sel("softlayer_next_invoice_pre_tax_usd"), "{{account}} forecast"),
                target(latest_recurring, "{{account}} latest recurring invoice", "B"),
                target(
                    sel("softlayer_alert_threshold_usd", 'kind="monthly_budget"'),
                    "{{account}} monthly budget",
                    "C",
                ),
            ],
        ),
    ]
    return dashboard(
        "softlayer-billing-overview",
        "SoftLayer billing overview",
        "Balance, open invoices, next-invoice forecast and invoice history of SoftLayer "
        "(IBM Cloud classic) accounts, from softlayer-billing-exporter.",
        panels,
        refresh="5m",
        time_from="now-7d",
        top_n=True,
    )


def exporter_health() -> dict[str, Any]:
    """Build the *SoftLayer exporter health* dashboard."""
    latency = sel("softlayer_api_request_duration_seconds_bucket", account=False)

    def quantile(q: str, ref: str) -> dict[str, Any]:
        expr = f"histogram_quantile({q}, sum by (le, method) (rate({latency}[$__rate_interval])))"
        return target(expr, f"{{{{method}}}} p{q[2:]}", ref)

    duration_sum = sel("softlayer_api_request_duration_seconds_sum", account=False)
    duration_count = sel("softlayer_api_request_duration_seconds_count", account=False)
    panels = [
        row("Status"),
        stat(
            "Exporter targets",
            "Whether Prometheus can scrape each exporter (up).",
            "none",
            [target(f"up{{{TARGET}}}", "{{instance}}")],
            mappings=UP_DOWN_MAPPINGS,
            width=4,
        ),
        stat(
            "Accounts",
            "1 when every source of the account succeeded on its latest poll (softlayer_up).",
            "none",
            [target(sel("softlayer_up"), "{{account}}")],
            mappings=UP_DOWN_MAPPINGS,
            width=4,
        ),
        stat(
            "Sources",
            "Latest poll result of each source of each account; a failed source keeps "
            "serving its last good values (softlayer_source_up).",
            "none",
            [target(sel("softlayer_source_up"), "{{account}} {{source}}")],
            mappings=UP_DOWN_MAPPINGS,
            width=10,
        ),
        table(
            "Exporter build",
            "Version of each exporter and of its Python.",
            "none",
            [
                target(
                    sel("softlayer_exporter_build_info", account=False),
                    instant=True,
                    table=True,
                )
            ],
            columns={"instance": "Instance", "version": "Version", "python_version": "Python"},
            width=6,
            height=5,
        ),
        row("Freshness"),
        timeseries(
            "Data age by source",
            "Time since each source last succeeded. SoftLayerBillingDataStale fires "
            "beyond three poll intervals.",
            "s",
            [
                target(
                    f"time() - {sel('softlayer_source_last_success_timestamp_seconds')}",
                    "{{account}} {{source}}",
                )
            ],
            width=12,
        ),
        timeseries(
            "Poll duration",
            "Wall time of each account's latest poll cycle.",
            "s",
            [target(sel("softlayer_poll_duration_seconds"), "{{account}}")],
            width=6,
        ),
        stat(
            "Next poll due in",
            "Time until each account's next poll cycle; negative means overdue.",
            "s",
            [target(f"{sel('softlayer_next_poll_timestamp_seconds')} - time()", "{{account}}")],
            width=3,
            height=8,
        ),
        stat(
            "Poll interval",
            "Poll period in use (configured interval plus jitter), from the exporter's own "
            "schedule (recording rule account:softlayer_poll_interval_seconds:estimate).",
            "s",
            [target(sel("account:softlayer_poll_interval_seconds:estimate"), "{{account}}")],
            width=3,
            height=8,
        ),
        row("SoftLayer API"),
        timeseries(
            "API requests by method and status",
            "SoftLayer API requests per second by method and HTTP status (code 'none': no "
            "response arrived).",
            "reqps",
            [
                target(
                    "sum by (account, method, code) "
                    f"(rate({sel('softlayer_api_requests_total')}[$__rate_interval]))",
                    "{{account}} {{method}} {{code}}",
                )
            ],
        ),
        timeseries(
            "API errors by reason",
            "Failed SoftLayer API requests per second by reason (auth, rate_limited, "
            "timeout, server, client, decode, network).",
            "reqps",
            [
                target(
                    "sum by (account, reason) "
                    f"(rate({sel('softlayer_api_errors_total')}[$__rate_interval]))",
                    "{{account}} {{reason}}",
                )
            ],
        ),
        bargauge(
            "API errors in the time range",
            "Failed SoftLayer API requests within the dashboard's time range, by account "
            "and reason.",
            "short",
            [
                target(
                    "sum by (account, reason) "
                    f"(increase({sel('softlayer_api_errors_total')}[$__range]))",
                    "{{account}} {{reason}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "API request latency",
            "50th, 90th and 99th percentile latency of SoftLayer API requests by method, "
            "all accounts together (the histogram has no account label).",
            "s",
            [quantile("0.50", "A"), quantile("0.90", "B"), quantile("0.99", "C")],
            width=8,
        ),
        timeseries(
            "Mean API request latency",
            "Mean latency of SoftLayer API requests by method, all accounts together.",
            "s",
            [
                target(
                    f"sum by (method) (rate({duration_sum}[$__rate_interval])) / "
                    f"sum by (method) (rate({duration_count}[$__rate_interval]))",
                    "{{method}}",
                )
            ],
            width=8,
        ),
    ]
    return dashboard(
        "softlayer-exporter-health",
        "SoftLayer exporter health",
        "Health of softlayer-billing-exporter: targets, per-account and per-source poll "
        "results, data age, poll timing and SoftLayer API requests, errors and latency.",
        panels,
        refresh="1m",
        time_from="now-24h",
    )


DASHBOARDS = {
    "softlayer-billing-overview.json": billing_overview,
    "softlayer-exporter-health.json": exporter_health,
}


def render(build: Any) -> str:
    """Serialise one dashboard the way the committed files are written."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every dashboard file."""
    for name, build in DASHBOARDS.items():
        (DASHBOARD_DIR / name).write_text(render(build), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
