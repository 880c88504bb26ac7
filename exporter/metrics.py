"""The metrics collector: renders the published snapshots as Prometheus metric families.

:class:`SnapshotCollector` is a custom prometheus-client collector. Each ``collect()``
reads ``ExporterState.accounts`` once and builds fresh families from that one consistent
view, the API statistics and the configured thresholds. It never calls SoftLayer, never
awaits and never blocks, so it is safe to run on the event loop at scrape time, and
accounts or categories that disappear drop out on their own.

Billing metrics are cached between polls (the poller refreshes them every
``poll_interval``), and their HELP says so; freshness is exported as
``softlayer_source_last_success_timestamp_seconds``, never as sample timestamps.
Every family and HELP text here is documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.api_stats import ApiStats
from exporter.config import Config
from exporter.errors import ErrorReason
from exporter.finops.billing import label_text
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    AccountSnapshot,
    ExporterState,
    InvoiceSummary,
    code_label,
)

__all__ = ["CACHED", "SnapshotCollector", "build_registry", "track_accounts"]

#: Suffix of the HELP text of every metric served from the poll cache.
CACHED: Final = "(cached; refreshed every poll interval)"


def _usd(amount: Decimal) -> float:
    # Decimal all the way here; binary floating point only in the exposition.
    return float(amount)


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _gauge(name: str, help_text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=labels)


class _InvoiceFamilies:
    """The ``softlayer_invoice_*`` families, filled for the latest recurring and pending invoice.

    The value series carry no ``status``: paying an invoice changes a value and the state
    set ``softlayer_invoice_status``, never the identity of the value series.
    """

    LABELS: Final = ["account", "invoice", "invoice_type"]

    def __init__(self) -> None:
        def cached(name: str, text: str) -> GaugeMetricFamily:
            return _gauge(name, f"{text} {CACHED}.", self.LABELS)

        self.total = cached("softlayer_invoice_total_usd", "Invoice total including tax")
        self.pre_tax = cached("softlayer_invoice_pre_tax_usd", "Invoice total before tax")
        self.recurring = cached("softlayer_invoice_recurring_usd", "Recurring charges, before tax")
        self.one_time = cached(
            "softlayer_invoice_one_time_usd", "One-time, setup and labor charges, before tax"
        )
        self.tax = cached("softlayer_invoice_tax_usd", "Tax on the invoice")
        self.payments = cached("softlayer_invoice_payments_usd", "Payments applied to the invoice")
        self.open_balance = cached(
            "softlayer_invoice_open_balance_usd",
            "Invoice total minus payments: what is still owed",
        )
        self.items = cached(
            "softlayer_invoice_items", "Billing items on the invoice, children included"
        )
        self.created = cached(
            "softlayer_invoice_created_timestamp_seconds",
            "When the invoice was created, unix time",
        )
        self.closed = cached(
            "softlayer_invoice_closed_timestamp_seconds",
            "When the invoice was closed, unix time; absent while open",
        )
        self.status = _gauge(
            "softlayer_invoice_status",
            "Invoice status as a state set: 1 for the current statusCode, 0 for the other "
            f"documented ones {CACHED}.",
            ["account", "invoice", "status"],
        )

    def add(self, account: str, which: str, invoice: InvoiceSummary) -> None:
        labels = [account, which, code_label(invoice.type_code)]
        current = code_label(invoice.status_code)
        for status in (*INVOICE_STATUSES, *((current,) if current not in INVOICE_STATUSES else ())):
            self.status.add_metric([account, which, status], 1 if status == current else 0)
        self.total.add_metric(labels, _usd(invoice.total_usd))
        self.pre_tax.add_metric(labels, _usd(invoice.pre_tax_usd))
        self.recurring.add_metric(labels, _usd(invoice.recurring_usd))
        self.one_time.add_metric(labels, _usd(invoice.one_time_usd))
        self.tax.add_metric(labels, _usd(invoice.tax_usd))
        self.payments.add_metric(labels, _usd(invoice.payments_usd))
        self.open_balance.add_metric(labels, _usd(invoice.open_balance_usd))
        self.items.add_metric(labels, invoice.item_count)
        self.created.add_metric(labels, _ts(invoice.created))
        if invoice.closed is not None:
            self.closed.add_metric(labels, _ts(invoice.closed))

    def families(self) -> Iterator[Metric]:
        yield from (
            self.total,
            self.pre_tax,
            self.recurring,
            self.one_time,
            self.tax,
            self.payments,
            self.open_balance,
            self.items,
            self.created,
            self.closed,
            self.status,
        )


class SnapshotCollector(Collector):
    """Yields every family of ``docs/metrics.md`` from the current snapshots.

    Example output (abridged)::

        # HELP softlayer_account_balance_usd Amount owed on the account; negative when
        #   overpaid (cached; refreshed every poll interval).
        # TYPE softlayer_account_balance_usd gauge
        softlayer_account_balance_usd{account="production"} 1234.56
        # HELP softlayer_source_up 1 if the source's latest attempt succeeded; ...
        # TYPE softlayer_source_up gauge
        softlayer_source_up{account="production",source="invoices"} 1.0
    """

    def __init__(self, state: ExporterState, api_stats: ApiStats | None, config: Config) -> None:
        self._state = state
        self._api_stats = api_stats
        self._config = config
        if api_stats is not None:
            track_accounts(api_stats, config)

    def collect(self) -> Iterator[Metric]:
        """Build fresh families from one read of the published snapshots."""
        snapshots = list(self._state.accounts.values())  # read once: one consistent view
        yield from self._account(snapshots)
        yield from self._invoices(snapshots)
        yield from self._window(snapshots)
        yield from self._next_invoice(snapshots)
        yield from self._where_money_goes(snapshots)
        yield from self._latest_invoice_categories(snapshots)
        yield from self._invoice_history(snapshots)
        yield from self._billing_info(snapshots)
        yield from self._thresholds()
        yield from self._health(snapshots)
        yield from self._api()
        yield self._build_info()

    def _account(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        info = InfoMetricFamily(
            "softlayer_account",
            f"SoftLayer account identity {CACHED}.",
            labels=["account", "account_id", "company_name"],
        )
        balance = _gauge(
            "softlayer_account_balance_usd",
            f"Amount owed on the account; negative when overpaid {CACHED}.",
            ["account"],
        )
        for snap in snapshots:
            if snap.summary is None:
                continue
            info.add_metric(
                [snap.name, str(snap.summary.account_id), snap.summary.company_name], {}
            )
            balance.add_metric([snap.name], _usd(snap.summary.balance_usd))
        yield info
        yield balance

    def _invoices(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        invoices = _InvoiceFamilies()
        present = _gauge(
            "softlayer_pending_invoice_present",
            f"1 if the account has an open (pending) invoice {CACHED}.",
            ["account"],
        )
        for snap in snapshots:
            if snap.latest_recurring_invoice is not None:
                invoices.add(snap.name, "latest_recurring", snap.latest_recurring_invoice)
            if snap.pending_invoice is not None:
                pending = snap.pending_invoice.invoice
                present.add_metric([snap.name], 0 if pending is None else 1)
                if pending is not None:
                    invoices.add(snap.name, "pending", pending)
        yield from invoices.families()
        yield present

    def _window(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        labels = ["account", "invoice_type", "status"]
        count = _gauge(
            "softlayer_recent_invoices",
            f"Invoices created within the look-back window {CACHED}.",
            labels,
        )
        amount = _gauge(
            "softlayer_recent_invoices_amount_usd",
            f"Sum of invoiceTotalAmount of those invoices {CACHED}.",
            labels,
        )
        window = _gauge(
            "softlayer_recent_invoices_window_seconds",
            "Length of the look-back window (configured invoice_lookback).",
            ["account"],
        )
        failure = _gauge(
            "softlayer_invoice_last_payment_failure_timestamp_seconds",
            "When the newest CLOSED_FAILED invoice created within the look-back window was "
            f"closed, unix time; absent if none {CACHED}.",
            ["account"],
        )
        for snap in snapshots:
            window.add_metric([snap.name], self._config.invoice_lookback_seconds)
            if snap.invoices is None:
                continue
            # Every documented type x status, zeros included, whatever the poller put in the
            # mapping; then the undocumented pairs it saw (bounded by the aggregator).
            documented = [(t, s) for t in INVOICE_TYPES for s in INVOICE_STATUSES]
            extra = sorted(set(snap.invoices.counts) - set(documented))
            for key in (*documented, *extra):
                count.add_metric([snap.name, *key], snap.invoices.counts.get(key, 0))
                amount.add_metric(
                    [snap.name, *key], _usd(snap.invoices.amounts_usd.get(key, Decimal(0)))
                )
            if snap.invoices.last_payment_failure is not None:
                failure.add_metric([snap.name], _ts(snap.invoices.last_payment_failure))
        yield count
        yield amount
        yield window
        yield failure

    def _next_invoice(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        def account_gauge(name: str, text: str) -> GaugeMetricFamily:
            return _gauge(name, f"{text} {CACHED}.", ["account"])

        pre_tax = account_gauge(
            "softlayer_next_invoice_pre_tax_usd",
            "Pre-tax total of the next invoice, assuming no changes",
        )
        recurring = account_gauge(
            "softlayer_next_invoice_recurring_usd", "Recurring part of the next invoice"
        )
        one_time = account_gauge(
            "softlayer_next_invoice_one_time_usd", "One-time part of the next invoice"
        )
        tax = account_gauge("softlayer_next_invoice_tax_usd", "Tax on the next invoice")
        items = account_gauge(
            "softlayer_next_invoice_items", "Top-level billing items on the next invoice"
        )
        category_usd = _gauge(
            "softlayer_next_invoice_category_usd",
            "Next-invoice recurring cost of a billing category, children included: the whole "
            f'month for billing="monthly", the accrual so far this cycle for "hourly" {CACHED}.',
            ["account", "category", "billing"],
        )
        category_projected = _gauge(
            "softlayer_next_invoice_category_projected_usd",
            "Next-invoice recurring cost of a billing category with its hourly items projected "
            f"to the end of the billing cycle {CACHED}.",
            ["account", "category"],
        )
        projected = account_gauge(
            "softlayer_next_invoice_projected_pre_tax_usd",
            "Pre-tax total of the next invoice with hourly items projected to the end of the "
            "billing cycle",
        )
        cycle_start = account_gauge(
            "softlayer_billing_cycle_start_timestamp_seconds",
            "Start of the account's current billing cycle (billingInfo.lastBillDate), unix time",
        )
        cycle_end = account_gauge(
            "softlayer_billing_cycle_end_timestamp_seconds",
            "End of the account's current billing cycle, when the next recurring invoice is "
            "cut (billingInfo.nextBillDate), unix time",
        )
        category_items = _gauge(
            "softlayer_next_invoice_category_items",
            f"Top-level billing items of a category on the next invoice {CACHED}.",
            ["account", "category", "billing"],
        )
        category_info = InfoMetricFamily(
            "softlayer_billing_category",
            f"Human name of a billing category code {CACHED}.",
            labels=["account", "category", "category_name"],
        )
        folded = account_gauge(
            "softlayer_next_invoice_folded_categories",
            'Categories beyond top_categories summed into category="other"',
        )
        for snap in snapshots:
            if snap.summary is not None:
                summary = snap.summary
                pre_tax.add_metric([snap.name], _usd(summary.next_invoice_pre_tax_usd))
                recurring.add_metric([snap.name], _usd(summary.next_invoice_recurring_usd))
                one_time.add_metric([snap.name], _usd(summary.next_invoice_one_time_usd))
                tax.add_metric([snap.name], _usd(summary.next_invoice_tax_usd))
                items.add_metric([snap.name], summary.next_invoice_item_count)
                if summary.billing_cycle is not None:
                    cycle_start.add_metric([snap.name], _ts(summary.billing_cycle.start))
                    cycle_end.add_metric([snap.name], _ts(summary.billing_cycle.end))
            breakdown = snap.next_invoice
            if breakdown is not None:
                for category in breakdown.categories:
                    labels = [snap.name, category.code]
                    category_usd.add_metric([*labels, "hourly"], _usd(category.hourly_usd))
                    category_usd.add_metric([*labels, "monthly"], _usd(category.monthly_usd))
                    if category.projected_usd is not None:
                        category_projected.add_metric(labels, _usd(category.projected_usd))
                    category_items.add_metric([*labels, "hourly"], category.hourly_items)
                    category_items.add_metric([*labels, "monthly"], category.monthly_items)
                    category_info.add_metric([*labels, category.name or category.code], {})
                folded.add_metric([snap.name], breakdown.folded_categories)
                if breakdown.projected_pre_tax_usd is not None:
                    projected.add_metric([snap.name], _usd(breakdown.projected_pre_tax_usd))
        yield from (pre_tax, recurring, one_time, tax, items, projected)
        yield from (category_usd, category_projected, category_items, category_info, folded)
        yield from (cycle_start, cycle_end)

    def _where_money_goes(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        """Yield the next invoice's datacenters and top items (exporter.finops.items)."""
        datacenter_usd = _gauge(
            "softlayer_next_invoice_datacenter_usd",
            "Next-invoice recurring cost of the top-level billing items in a datacenter, "
            'children included: the whole month for billing="monthly", the accrual so far '
            f'this cycle for "hourly" {CACHED}.',
            ["account", "datacenter", "billing"],
        )
        datacenter_items = _gauge(
            "softlayer_next_invoice_datacenter_items",
            f"Top-level billing items in a datacenter on the next invoice {CACHED}.",
            ["account", "datacenter"],
        )
        folded = _gauge(
            "softlayer_next_invoice_folded_datacenters",
            f'Datacenters beyond top_datacenters summed into datacenter="other" {CACHED}.',
            ["account"],
        )
        top_item = _gauge(
            "softlayer_next_invoice_top_item_usd",
            "Next-invoice recurring cost of one of the top_items most expensive top-level "
            f'billing items, children included; month to date for billing="hourly" {CACHED}.',
            ["account", "item_id", "name", "category", "datacenter", "billing"],
        )
        other_usd = _gauge(
            "softlayer_next_invoice_other_items_usd",
            f"Next-invoice recurring cost of the top-level billing items outside the top_items "
            f"{CACHED}.",
            ["account"],
        )
        other_items = _gauge(
            "softlayer_next_invoice_other_items",
            f"Top-level billing items on the next invoice outside the top_items {CACHED}.",
            ["account"],
        )
        for snap in snapshots:
            insights = None if snap.next_invoice is None else snap.next_invoice.insights
            if insights is None:
                continue
            for site in insights.datacenters:
                labels = [snap.name, site.name]
                datacenter_usd.add_metric([*labels, "hourly"], _usd(site.hourly_usd))
                datacenter_usd.add_metric([*labels, "monthly"], _usd(site.monthly_usd))
                datacenter_items.add_metric(labels, site.items)
            folded.add_metric([snap.name], insights.folded_datacenters)
            for item in insights.top_items:
                billing = "hourly" if item.hourly else "monthly"
                labels = [snap.name, str(item.item_id), item.name, item.category]
                top_item.add_metric([*labels, item.datacenter, billing], _usd(item.amount_usd))
            other_usd.add_metric([snap.name], _usd(insights.other_items_usd))
            other_items.add_metric([snap.name], insights.other_items)
        yield from (datacenter_usd, datacenter_items, folded, top_item, other_usd, other_items)

    def _latest_invoice_categories(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        """Yield the latest recurring invoice by category (exporter.finops.history)."""
        category = _gauge(
            "softlayer_invoice_category_usd",
            "Pre-tax amount of a billing category on the invoice, children included, by "
            f'charge ("recurring" or "one_time") {CACHED}.',
            ["account", "invoice", "category", "charge"],
        )
        lines = _gauge(
            "softlayer_invoice_category_lines",
            f"Top-level lines of a billing category on the invoice {CACHED}.",
            ["account", "invoice", "category"],
        )
        folded = _gauge(
            "softlayer_invoice_folded_categories",
            f'Categories of the invoice beyond top_categories summed into category="other" '
            f"{CACHED}.",
            ["account", "invoice"],
        )
        for snap in snapshots:
            breakdown = None if snap.history is None else snap.history.latest_categories
            if breakdown is None:
                continue
            for part in breakdown.categories:
                labels = [snap.name, "latest_recurring", part.code]
                category.add_metric([*labels, "recurring"], _usd(part.recurring_usd))
                category.add_metric([*labels, "one_time"], _usd(part.one_time_usd))
                lines.add_metric(labels, part.lines)
            folded.add_metric([snap.name, "latest_recurring"], breakdown.folded)
        yield from (category, lines, folded)

    def _invoice_history(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        """Yield the last recurring invoices by how many cycles ago (exporter.finops)."""

        def history(name: str, text: str) -> GaugeMetricFamily:
            return _gauge(name, f"{text} {CACHED}.", ["account", "months_ago"])

        total = history(
            "softlayer_invoice_history_total_usd",
            "Total including tax of the recurring invoice issued months_ago cycles before the "
            "latest one (0: the latest)",
        )
        pre_tax = history(
            "softlayer_invoice_history_pre_tax_usd", "Pre-tax total of that recurring invoice"
        )
        tax = history("softlayer_invoice_history_tax_usd", "Tax on that recurring invoice")
        payments = history(
            "softlayer_invoice_history_payments_usd", "Payments applied to that recurring invoice"
        )
        created = history(
            "softlayer_invoice_history_created_timestamp_seconds",
            "When that recurring invoice was created, unix time",
        )
        rate = _gauge(
            "softlayer_invoice_history_exchange_rate",
            "Exchange rate that recurring invoice was billed at (localCurrencyExchangeRate): "
            f"1 funding_currency = rate local_currency; absent without one {CACHED}.",
            ["account", "months_ago", "funding_currency", "local_currency"],
        )
        for snap in snapshots:
            if snap.history is None:
                continue
            for months_ago, entry in enumerate(snap.history.invoices):
                labels = [snap.name, str(months_ago)]
                invoice = entry.invoice
                total.add_metric(labels, _usd(invoice.total_usd))
                pre_tax.add_metric(labels, _usd(invoice.pre_tax_usd))
                tax.add_metric(labels, _usd(invoice.tax_usd))
                payments.add_metric(labels, _usd(invoice.payments_usd))
                created.add_metric(labels, _ts(invoice.created))
                if entry.exchange_rate is not None:
                    currencies = [entry.exchange_rate.funding, entry.exchange_rate.local]
                    rate.add_metric([*labels, *currencies], float(entry.exchange_rate.rate))
        yield from (total, pre_tax, tax, payments, created, rate)

    def _billing_info(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        """Yield how each account is billed (exporter.finops.billing)."""

        def account_gauge(name: str, text: str) -> GaugeMetricFamily:
            return _gauge(name, f"{text} {CACHED}.", ["account"])

        info = InfoMetricFamily(
            "softlayer_billing",
            "How the account is billed: currency (billingInfo.currency.keyName; amounts stay "
            f"USD) and account status (accountStatus.name) {CACHED}.",
            labels=["account", "currency", "account_status"],
        )
        anniversary = account_gauge(
            "softlayer_billing_anniversary_day",
            "Day of the month the account is billed (billingInfo.anniversaryDayOfMonth)",
        )
        terms = account_gauge(
            "softlayer_billing_payment_terms",
            "Payment terms of the account as SoftLayer reports them (billingInfo.paymentTerms, "
            "days in practice); absent when SoftLayer sends none",
        )
        discount = _gauge(
            "softlayer_billing_discount_ratio",
            "Account discount on recurring or one-time charges (billingInfo.percentDiscount*, "
            f"as a ratio) {CACHED}.",
            ["account", "charge"],
        )
        rate = _gauge(
            "softlayer_billing_exchange_rate",
            "Current exchange rate of the account's billing currency: 1 funding_currency = "
            f"rate local_currency; absent for USD accounts {CACHED}.",
            ["account", "funding_currency", "local_currency"],
        )
        platform = account_gauge(
            "softlayer_next_invoice_platform_services_usd",
            "Pre-tax platform-services charges of the next invoice (on no billing item)",
        )
        before_discount = account_gauge(
            "softlayer_next_invoice_recurring_before_discount_usd",
            "Recurring part of the next invoice before the account discount",
        )
        for snap in snapshots:
            profile = snap.billing
            if profile is None:
                continue
            status = profile.account_status or (
                None if profile.account_status_id is None else str(profile.account_status_id)
            )
            info.add_metric([snap.name, label_text(profile.currency), label_text(status)], {})
            if profile.anniversary_day is not None:
                anniversary.add_metric([snap.name], profile.anniversary_day)
            if profile.payment_terms is not None:
                terms.add_metric([snap.name], profile.payment_terms)
            for charge, ratio in (
                ("recurring", profile.recurring_discount_ratio),
                ("one_time", profile.one_time_discount_ratio),
            ):
                if ratio is not None:
                    discount.add_metric([snap.name, charge], float(ratio))
            if profile.exchange_rate is not None:
                currencies = [profile.exchange_rate.funding, profile.exchange_rate.local]
                rate.add_metric([snap.name, *currencies], float(profile.exchange_rate.rate))
            if profile.next_invoice_platform_services_usd is not None:
                platform.add_metric([snap.name], _usd(profile.next_invoice_platform_services_usd))
            if profile.next_invoice_recurring_before_discount_usd is not None:
                amount = profile.next_invoice_recurring_before_discount_usd
                before_discount.add_metric([snap.name], _usd(amount))
        yield from (info, anniversary, terms, discount, rate, platform, before_discount)

    def _thresholds(self) -> Iterator[Metric]:
        usd = _gauge(
            "softlayer_alert_threshold_usd",
            "Alert threshold in USD from the configuration.",
            ["account", "kind"],
        )
        seconds = _gauge(
            "softlayer_alert_threshold_seconds",
            "Alert threshold in seconds from the configuration.",
            ["account", "kind"],
        )
        ratio = _gauge(
            "softlayer_alert_threshold_ratio",
            "Alert threshold ratio from the configuration.",
            ["account", "kind"],
        )
        for account in self._config.accounts:
            limits = account.thresholds
            for kind, amount in (
                ("open_invoice_balance", limits.open_invoice_balance_usd),
                ("account_balance", limits.account_balance_usd),
                ("monthly_budget", limits.monthly_budget_usd),
            ):
                if amount is not None:  # null disables the alert: no series at all
                    usd.add_metric([account.name, kind], _usd(amount))
            for kind, age in (
                ("pending_invoice_age", limits.pending_invoice_max_age_seconds),
                ("open_invoice_grace", limits.open_invoice_grace_seconds),
            ):
                if age is not None:
                    seconds.add_metric([account.name, kind], age)
            for kind, value in (
                ("forecast_surge", limits.forecast_surge_ratio),
                ("category_surge", limits.category_surge_ratio),
            ):
                if value is not None:
                    ratio.add_metric([account.name, kind], value)
        yield from (usd, seconds, ratio)

    def _health(self, snapshots: list[AccountSnapshot]) -> Iterator[Metric]:
        up = _gauge(
            "softlayer_up",
            "1 if every source of the account succeeded on its latest attempt.",
            ["account"],
        )
        source_up = _gauge(
            "softlayer_source_up",
            "1 if the source's latest attempt succeeded; "
            "its metrics keep the last good values otherwise.",
            ["account", "source"],
        )
        last_success = _gauge(
            "softlayer_source_last_success_timestamp_seconds",
            "Unix time of the source's latest successful poll.",
            ["account", "source"],
        )
        last_attempt = _gauge(
            "softlayer_source_last_attempt_timestamp_seconds",
            "Unix time of the source's latest poll attempt.",
            ["account", "source"],
        )
        duration = _gauge(
            "softlayer_poll_duration_seconds",
            "Wall time of the account's latest poll cycle.",
            ["account"],
        )
        next_poll = _gauge(
            "softlayer_next_poll_timestamp_seconds",
            "Unix time the account's next poll cycle is due.",
            ["account"],
        )
        for snap in snapshots:
            if snap.sources:  # absent until the account's first poll has ended
                up.add_metric([snap.name], 1 if snap.up else 0)
            for source, status in snap.sources.items():
                labels = [snap.name, str(source)]
                source_up.add_metric(labels, 1 if status.up else 0)
                last_attempt.add_metric(labels, status.last_attempt)
                if status.last_success is not None:
                    last_success.add_metric(labels, status.last_success)
            if snap.poll_duration_seconds is not None:
                duration.add_metric([snap.name], snap.poll_duration_seconds)
            if snap.next_poll is not None:
                next_poll.add_metric([snap.name], snap.next_poll)
        yield from (up, source_up, last_success, last_attempt, duration, next_poll)

    def _api(self) -> Iterator[Metric]:
        if self._api_stats is not None:
            yield from self._api_stats.collect()

    @staticmethod
    def _build_info() -> Metric:
        info = InfoMetricFamily(
            "softlayer_exporter_build",
            "Build information of the exporter.",
            labels=["version", "python_version"],
        )
        info.add_metric([__version__, platform.python_version()], {})
        return info


def track_accounts(api_stats: ApiStats, config: Config) -> None:
    """Export the API error series of every configured account, and of no other, from now on."""
    api_stats.set_accounts((account.name for account in config.accounts), ErrorReason)


def build_registry(
    state: ExporterState,
    api_stats: ApiStats | None,
    config: Config,
    *,
    process_metrics: bool = True,
) -> CollectorRegistry:
    """Build a private registry with the snapshot collector (and ``process_*`` metrics)."""
    # auto_describe off: describe() would call collect() at registration, which is pointless
    # for a collector whose families depend on the data.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state, api_stats, config))
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry
