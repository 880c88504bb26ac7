"""The straightforward alternative for serving: prometheus-client Gauges in a registry.

This is what most exporters do: after each poll, ``Gauge.labels(...).set(value)`` for every
series, and on every scrape ``generate_latest(registry)`` (here through
``prometheus_client.aiohttp.make_aiohttp_handler``) renders the whole registry again. The
families and label sets follow docs/metrics.md, so both servers expose the same series.
"""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

from exporter.api_stats import ApiStats
from exporter.config import Config
from exporter.metrics import track_accounts
from exporter.snapshot import ExporterState, InvoiceSummary

__all__ = ["build_registry"]

_CACHED = " (cached; refreshed every poll interval)."

_INVOICE_FIELDS = (
    ("total_usd", "Invoice total including tax"),
    ("pre_tax_usd", "Invoice total before tax"),
    ("recurring_usd", "Recurring charges, before tax"),
    ("one_time_usd", "One-time, setup and labor charges, before tax"),
    ("tax_usd", "Tax on the invoice"),
    ("payments_usd", "Payments applied to the invoice"),
    ("open_balance_usd", "Invoice total minus payments: what is still owed"),
)


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
    return Gauge(name, doc + _CACHED, labels, registry=registry)


def _set_invoice(
    gauges: dict[str, Gauge], account: str, which: str, invoice: InvoiceSummary
) -> None:
    labels = (account, which, invoice.type_code, invoice.status_code)
    for field, _ in _INVOICE_FIELDS:
        gauges[field].labels(*labels).set(float(getattr(invoice, field)))
    gauges["items"].labels(*labels).set(invoice.item_count)
    gauges["created"].labels(*labels).set(invoice.created.timestamp())
    if invoice.closed is not None:
        gauges["closed"].labels(*labels).set(invoice.closed.timestamp())


def build_registry(state: ExporterState, api_stats: ApiStats, config: Config) -> CollectorRegistry:
    """A registry holding the same series the collector renders from ``state``.

    Gauges for the snapshot data; counters and a histogram for the API statistics, fed the
    way direct instrumentation would have been; process metrics as prometheus-client adds.
    """
    registry = CollectorRegistry(auto_describe=False)
    a = ("account",)
    info = _gauge(
        registry,
        "softlayer_account_info",
        "SoftLayer account identity",
        ("account", "account_id", "company_name"),
    )
    balance = _gauge(registry, "softlayer_account_balance_usd", "Amount owed on the account", a)
    inv_labels = ("account", "invoice", "invoice_type", "status")
    invoice_gauges = {
        field: _gauge(registry, f"softlayer_invoice_{field}", doc, inv_labels)
        for field, doc in _INVOICE_FIELDS
    }
    invoice_gauges["items"] = _gauge(
        registry, "softlayer_invoice_items", "Billing items on the invoice", inv_labels
    )
    invoice_gauges["created"] = _gauge(
        registry, "softlayer_invoice_created_timestamp_seconds", "Invoice creation", inv_labels
    )
    invoice_gauges["closed"] = _gauge(
        registry, "softlayer_invoice_closed_timestamp_seconds", "Invoice closing", inv_labels
    )
    pending_present = _gauge(
        registry, "softlayer_pending_invoice_present", "1 if the account has an open invoice", a
    )
    window_labels = ("account", "invoice_type", "status")
    recent = _gauge(registry, "softlayer_recent_invoices", "Invoices in the window", window_labels)
    recent_amount = _gauge(
        registry, "softlayer_recent_invoices_amount_usd", "Sum of their totals", window_labels
    )
    window_seconds = _gauge(
        registry, "softlayer_recent_invoices_window_seconds", "Length of the window", a
    )
    next_fields = {
        "pre_tax": "next_invoice_pre_tax_usd",
        "recurring": "next_invoice_recurring_usd",
        "one_time": "next_invoice_one_time_usd",
        "tax": "next_invoice_tax_usd",
    }
    next_gauges = {
        key: _gauge(registry, f"softlayer_{metric}", f"Next invoice {key}", a)
        for key, metric in next_fields.items()
    }
    next_items = _gauge(registry, "softlayer_next_invoice_items", "Next invoice items", a)
    category_usd = _gauge(
        registry, "softlayer_next_invoice_category_usd", "Category cost", ("account", "category")
    )
    category_items = _gauge(
        registry,
        "softlayer_next_invoice_category_items",
        "Category items",
        ("account", "category", "billing"),
    )
    category_info = _gauge(
        registry,
        "softlayer_billing_category_info",
        "Category name",
        ("account", "category", "category_name"),
    )
    folded = _gauge(registry, "softlayer_next_invoice_folded_categories", "Folded categories", a)
    threshold_usd = _gauge(
        registry, "softlayer_alert_threshold_usd", "Threshold", ("account", "kind")
    )
    threshold_s = _gauge(
        registry, "softlayer_alert_threshold_seconds", "Threshold", ("account", "kind")
    )
    threshold_ratio = _gauge(
        registry, "softlayer_alert_threshold_ratio", "Threshold", ("account", "kind")
    )
    up = _gauge(registry, "softlayer_up", "All sources up", a)
    source_labels = ("account", "source")
    source_up = _gauge(registry, "softlayer_source_up", "Source up", source_labels)
    last_success = _gauge(
        registry, "softlayer_source_last_success_timestamp_seconds", "Last success", source_labels
    )
    last_attempt = _gauge(
        registry, "softlayer_source_last_attempt_timestamp_seconds", "Last attempt", source_labels
    )
    poll_duration = _gauge(registry, "softlayer_poll_duration_seconds", "Poll duration", a)
    next_poll = _gauge(registry, "softlayer_next_poll_timestamp_seconds", "Next poll", a)

    thresholds = {account.name: account.thresholds for account in config.accounts}
    for name, snap in state.accounts.items():
        if snap.summary is not None:
            s = snap.summary
            info.labels(name, str(s.account_id), s.company_name).set(1)
            balance.labels(name).set(float(s.balance_usd))
            next_gauges["pre_tax"].labels(name).set(float(s.next_invoice_pre_tax_usd))
            next_gauges["recurring"].labels(name).set(float(s.next_invoice_recurring_usd))
            next_gauges["one_time"].labels(name).set(float(s.next_invoice_one_time_usd))
            next_gauges["tax"].labels(name).set(float(s.next_invoice_tax_usd))
            next_items.labels(name).set(s.next_invoice_item_count)
        if snap.latest_recurring_invoice is not None:
            _set_invoice(invoice_gauges, name, "latest_recurring", snap.latest_recurring_invoice)
        if snap.pending_invoice is not None:
            pending = snap.pending_invoice.invoice
            pending_present.labels(name).set(0 if pending is None else 1)
            if pending is not None:
                _set_invoice(invoice_gauges, name, "pending", pending)
        if snap.invoices is not None:
            for (type_code, status_code), count in snap.invoices.counts.items():
                recent.labels(name, type_code, status_code).set(count)
                amount = snap.invoices.amounts_usd.get((type_code, status_code), Decimal(0))
                recent_amount.labels(name, type_code, status_code).set(float(amount))
            window_seconds.labels(name).set(config.invoice_lookback_seconds)
        if snap.next_invoice is not None:
            for category in snap.next_invoice.categories:
                category_usd.labels(name, category.code).set(float(category.amount_usd))
                category_items.labels(name, category.code, "hourly").set(category.hourly_items)
                category_items.labels(name, category.code, "monthly").set(category.monthly_items)
                category_info.labels(name, category.code, category.name or category.code).set(1)
            folded.labels(name).set(snap.next_invoice.folded_categories)
        limits = thresholds.get(name)
        if limits is not None:
            for kind, value in (
                ("open_invoice_balance", limits.open_invoice_balance_usd),
                ("account_balance", limits.account_balance_usd),
                ("monthly_budget", limits.monthly_budget_usd),
            ):
                if value is not None:
                    threshold_usd.labels(name, kind).set(float(value))
            if limits.pending_invoice_max_age_seconds is not None:
                threshold_s.labels(name, "pending_invoice_age").set(
                    limits.pending_invoice_max_age_seconds
                )
            for kind, ratio in (
                ("forecast_surge", limits.forecast_surge_ratio),
                ("category_surge", limits.category_surge_ratio),
            ):
                if ratio is not None:
                    threshold_ratio.labels(name, kind).set(ratio)
        up.labels(name).set(1 if snap.up else 0)
        for source, status in snap.sources.items():
            source_up.labels(name, source.value).set(1 if status.up else 0)
            last_attempt.labels(name, source.value).set(status.last_attempt)
            if status.last_success is not None:
                last_success.labels(name, source.value).set(status.last_success)
        if snap.poll_duration_seconds is not None:
            poll_duration.labels(name).set(snap.poll_duration_seconds)
        if snap.next_poll is not None:
            next_poll.labels(name).set(snap.next_poll)
    # The API statistics are prometheus-client Counters and a Histogram already: direct
    # instrumentation, exactly what this alternative would have.
    track_accounts(api_stats, config)
    registry.register(api_stats)
    ProcessCollector(registry=registry)
    return registry
