"""The *SoftLayer billing: what changed* dashboard: where the money goes and how it moved.

Built with the conventions of ``generate_dashboards.py`` (its panel helpers, HA-safe
``max by (account, ...)``, instant queries on "now" panels, USD with two decimals), which
registers it. Four rows:

- **Next vs latest invoice**: each billing category of the next invoice (projected to the end
  of the cycle) next to the same category on the latest recurring invoice, and the totals;
- **Where the money goes**: the next invoice per datacenter, the most expensive items and
  what the rest costs;
- **Billing terms**: currency and exchange rate, status, anniversary, terms, discounts and
  platform-services charges;
- **The year**: the last recurring invoices from the exporter itself (no Prometheus history
  needed), and the latest recurring invoice as a time series over the year, which shows the
  backfilled months (docs/metrics.md, "Backfilling the past months") before the exporter ran.
"""

from __future__ import annotations

from typing import Any

import generate_dashboards as g

UID = "softlayer-billing-changes"
LATEST = 'invoice="latest_recurring"'
#: The backfill writes one sample per hour on the hour: a year-long panel queries no finer.
HOURLY = "1h"


def _by(labels: str, metric: str, *extra: str) -> str:
    return g.mx(labels, g.sel(metric, *extra))


def next_vs_latest() -> list[g.Panel]:
    """Build the row comparing the next invoice with the latest recurring invoice."""
    latest = _by(
        "account, category", "softlayer_invoice_category_usd", LATEST, 'charge="recurring"'
    )
    projected = _by("account, category", "softlayer_next_invoice_category_projected_usd")
    return [
        g.row("Next invoice vs latest recurring invoice"),
        g.table(
            "Categories: next invoice vs latest recurring invoice",
            "Recurring cost of each billing category on the latest recurring invoice (its lines, "
            "children included, pre-tax) and on the next invoice projected to the end of the "
            "cycle, and the change; categories beyond top_categories are in 'other' on both. "
            + g.CACHED,
            g.USD,
            [
                g.row_of(latest, "A"),
                g.row_of(projected, "B"),
                g.row_of(f"{projected} - on (account, category) {latest}", "C"),
            ],
            columns={
                "account": "Account",
                "category": "Category",
                "Value #A": "Latest invoice",
                "Value #B": "Next invoice (projected)",
                "Value #C": "Change",
            },
            units={"Latest invoice": g.USD, "Next invoice (projected)": g.USD, "Change": g.USD},
            sort_by="Change",
            size=(16, 9),
        ),
        g.stat(
            "Pre-tax totals",
            "The latest recurring invoice before tax and the next invoice projected to the end "
            "of the cycle (platform services included, after the account discount). " + g.HA,
            g.USD,
            [
                g.now(
                    _by("account", "softlayer_invoice_pre_tax_usd", LATEST), "{{account}} latest"
                ),
                g.now(
                    _by("account", "softlayer_next_invoice_projected_pre_tax_usd"),
                    "{{account}} next (projected)",
                    "B",
                ),
            ],
            size=(8, 9),
        ),
    ]


def where_money_goes() -> list[g.Panel]:
    """Build the row of datacenters and top items."""
    datacenters = (
        "sum by (account, datacenter) ("
        + _by("account, datacenter, billing", "softlayer_next_invoice_datacenter_usd")
        + ")"
    )
    labels = "account, item_id, name, category, datacenter, billing"
    return [
        g.row("Where the money goes"),
        g.bargauge(
            "Next invoice by datacenter",
            "The next invoice's top-level items summed per datacenter (location), children "
            "included: monthly items for the month, hourly ones so far this cycle. 'IMS' holds "
            "items without a datacenter; beyond top_datacenters they are summed into 'other'. "
            + g.HA,
            g.USD,
            [g.now(datacenters, "{{account}} {{datacenter}}")],
            size=(8, 10),
        ),
        g.table(
            "Most expensive items",
            "The top_items most expensive top-level billing items of the next invoice (host "
            "name or description, category, datacenter), children included; hourly items "
            "so far this cycle. " + g.CACHED,
            g.USD,
            [g.row_of(_by(labels, "softlayer_next_invoice_top_item_usd"), "A")],
            columns={
                "account": "Account",
                "name": "Item",
                "category": "Category",
                "datacenter": "Datacenter",
                "billing": "Billing",
                "item_id": "Billing item id",
                "Value": "Next invoice",
            },
            units={"Next invoice": g.USD},
            sort_by="Next invoice",
            size=(12, 10),
        ),
        g.stat(
            "All other items",
            "What the items outside the top cost on the next invoice, and how many they are. "
            + g.HA,
            g.USD,
            [g.now(_by("account", "softlayer_next_invoice_other_items_usd"), "{{account}}")],
            size=(4, 10),
        ),
    ]


def billing_terms() -> list[g.Panel]:
    """Build the row of billing information."""
    return [
        g.row("Billing terms"),
        g.table(
            "Billing terms",
            "How each account is billed: currency (amounts stay USD), account status, the day "
            "of the month it is billed, payment terms (days in practice; empty for card "
            "payers), the account discount on recurring charges, the next invoice's "
            "platform-services charges and its recurring part before the discount. " + g.CACHED,
            "none",
            [
                g.row_of(_by("account, currency, account_status", "softlayer_billing_info"), "A"),
                g.row_of(_by("account", "softlayer_billing_anniversary_day"), "B"),
                g.row_of(_by("account", "softlayer_billing_payment_terms"), "C"),
                g.row_of(
                    _by("account", "softlayer_billing_discount_ratio", 'charge="recurring"'), "D"
                ),
                g.row_of(_by("account", "softlayer_next_invoice_platform_services_usd"), "E"),
                g.row_of(
                    _by("account", "softlayer_next_invoice_recurring_before_discount_usd"), "F"
                ),
            ],
            columns={
                "account": "Account",
                "currency": "Currency",
                "account_status": "Status",
                "Value #B": "Billed on day",
                "Value #C": "Payment terms",
                "Value #D": "Recurring discount",
                "Value #E": "Platform services",
                "Value #F": "Recurring before discount",
            },
            units={
                "Billed on day": "none",
                "Payment terms": "none",
                "Recurring discount": "percentunit",
                "Platform services": g.USD,
                "Recurring before discount": g.USD,
            },
            size=(18, 6),
        ),
        g.stat(
            "Exchange rate",
            "Current exchange rate of a non-USD account's billing currency: 1 USD in the local "
            "currency (SoftLayer's currentExchangeRate). Empty for USD accounts. " + g.HA,
            "none",
            [
                g.now(
                    _by(
                        "account, funding_currency, local_currency",
                        "softlayer_billing_exchange_rate",
                    ),
                    "{{account}} {{funding_currency}} to {{local_currency}}",
                )
            ],
            noValue="USD",
            decimals=4,
            size=(6, 6),
        ),
    ]


def the_year() -> list[g.Panel]:
    """Build the row of invoice history."""

    def history(metric: str) -> str:
        return _by("account, months_ago", metric)

    return [
        g.row("The year"),
        g.table(
            "Last recurring invoices",
            "The newest recurring invoices, from the exporter (no Prometheus history needed): "
            "0 months ago is the latest. Issued date, total with tax, tax and what was paid. "
            + g.CACHED,
            g.USD,
            [
                g.row_of(
                    f"1000 * {history('softlayer_invoice_history_created_timestamp_seconds')}", "A"
                ),
                g.row_of(history("softlayer_invoice_history_total_usd"), "B"),
                g.row_of(history("softlayer_invoice_history_tax_usd"), "C"),
                g.row_of(history("softlayer_invoice_history_payments_usd"), "D"),
            ],
            columns={
                "account": "Account",
                "months_ago": "Months ago",
                "Value #A": "Issued",
                "Value #B": "Total",
                "Value #C": "Tax",
                "Value #D": "Paid",
            },
            units={"Issued": "dateTimeAsIso", "Total": g.USD, "Tax": g.USD, "Paid": g.USD},
            size=(10, 10),
        ),
        g.timeseries(
            "Latest recurring invoice over the year",
            "Total and payments of the latest recurring invoice over time: a step at every "
            "anniversary, payments when it is paid. Months before the exporter ran come from "
            "the backfill (one sample an hour, hence the 1h minimum interval). " + g.HA,
            g.USD,
            [
                g.target(
                    _by("account", "softlayer_invoice_total_usd", LATEST), "{{account}} total"
                ),
                g.target(
                    _by("account", "softlayer_invoice_payments_usd", LATEST),
                    "{{account}} paid",
                    "B",
                ),
            ],
            interval=HOURLY,
            size=(14, 10),
        ),
    ]


def build() -> dict[str, Any]:
    """Build the *SoftLayer billing: what changed* dashboard."""
    result = g.dashboard(
        UID,
        "SoftLayer billing: what changed",
        "Where the money of SoftLayer (IBM Cloud classic) accounts goes and how it moved: the "
        "next invoice against the latest one by category, datacenters, the most expensive "
        "items, billing terms and a year of recurring invoices, from "
        "softlayer-billing-exporter.",
        [*next_vs_latest(), *where_money_goes(), *billing_terms(), *the_year()],
        refresh="15m",
    )
    # A year and a month: the recurring invoices of the last year, backfilled or live.
    result["time"] = {"from": "now-400d", "to": "now"}
    return result
