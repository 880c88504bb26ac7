"""Hand-built snapshots, configs and API statistics for collector and server tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret, Thresholds
from exporter.finops.records import (
    BillingProfile,
    DatacenterTotals,
    ExchangeRate,
    HistoryInvoice,
    InvoiceCategories,
    InvoiceCategory,
    InvoiceHistory,
    ItemInsights,
    TopItem,
)
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    AccountSnapshot,
    AccountSummary,
    BillingCycle,
    CategoryTotals,
    ExporterState,
    InvoiceSummary,
    InvoiceWindow,
    NextInvoiceBreakdown,
    PendingInvoice,
    Source,
    SourceStatus,
)

PLANTED_KEY = "PLANTEDsecretKEY0123456789abcdefDONOTLEAK"
CYCLE_START = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
CYCLE_END = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
LAST_PAYMENT_FAILURE = datetime(2026, 9, 4, 11, 0, tzinfo=UTC)

LATEST = InvoiceSummary(
    invoice_id=101,
    type_code="RECURRING",
    status_code="CLOSED",
    created=datetime(2026, 10, 1, 5, 0, tzinfo=UTC),
    closed=datetime(2026, 10, 2, 6, 30, tzinfo=UTC),
    total_usd=Decimal("1100.10"),
    pre_tax_usd=Decimal("1000.00"),
    recurring_usd=Decimal("900.00"),
    one_time_usd=Decimal("100.00"),
    tax_usd=Decimal("100.10"),
    payments_usd=Decimal("1100.10"),
    item_count=42,
)
PENDING = InvoiceSummary(
    invoice_id=102,
    type_code="RECURRING",
    status_code="OPEN",
    created=datetime(2026, 11, 1, 5, 0, tzinfo=UTC),
    closed=None,
    total_usd=Decimal("1210.50"),
    pre_tax_usd=Decimal("1100.25"),
    recurring_usd=Decimal("1000.25"),
    one_time_usd=Decimal("100.00"),
    tax_usd=Decimal("110.25"),
    payments_usd=Decimal("200.00"),
    item_count=45,
)


def window() -> InvoiceWindow:
    counts = {(t, s): 0 for t in INVOICE_TYPES for s in INVOICE_STATUSES}
    amounts = {(t, s): Decimal(0) for t in INVOICE_TYPES for s in INVOICE_STATUSES}
    counts[("RECURRING", "CLOSED")] = 2
    amounts[("RECURRING", "CLOSED")] = Decimal("2200.20")
    counts[("RECURRING", "OPEN")] = 1
    amounts[("RECURRING", "OPEN")] = Decimal("1210.50")
    counts[("ONE-TIME-CHARGE", "CLOSED")] = 1
    amounts[("ONE-TIME-CHARGE", "CLOSED")] = Decimal("0.048")
    return InvoiceWindow(
        since=datetime(2026, 8, 25, tzinfo=UTC),
        counts=MappingProxyType(counts),
        amounts_usd=MappingProxyType(amounts),
        last_payment_failure=LAST_PAYMENT_FAILURE,
    )


EURO = ExchangeRate(rate=Decimal(".9214"), funding="USD", local="EUR")
INSIGHTS = ItemInsights(
    datacenters=(
        DatacenterTotals("dal10", Decimal("200.25"), Decimal("700.5"), 3),
        DatacenterTotals("IMS", Decimal(0), Decimal("9.99"), 1),
        DatacenterTotals("other", Decimal("300.2"), Decimal("190.01"), 3),
    ),
    folded_datacenters=2,
    top_items=(
        TopItem(100000016, "db1.example.com", "server", "dal10", False, Decimal("700.5")),
        TopItem(
            100000024,
            "Endurance Storage",
            "storage_service_enterprise",
            "IMS",
            True,
            Decimal("9.99"),
        ),
    ),
    other_items_usd=Decimal("690.46"),
    other_items=5,
)
BILLING = BillingProfile(
    currency="EUR",
    currency_name="Euro",
    exchange_rate=EURO,
    anniversary_day=4,
    payment_terms=30,
    recurring_discount_ratio=Decimal("0.1"),
    one_time_discount_ratio=Decimal(0),
    account_status_id=1001,
    account_status="Active",
    next_invoice_platform_services_usd=Decimal("123.45"),
    next_invoice_recurring_before_discount_usd=Decimal("1556.33"),
)
HISTORY = InvoiceHistory(
    invoices=(HistoryInvoice(PENDING, EURO), HistoryInvoice(LATEST, None)),
    latest_categories=InvoiceCategories(
        invoice_id=102,
        categories=(
            InvoiceCategory("server", Decimal("800.25"), Decimal("100"), 2),
            InvoiceCategory("other", Decimal("200"), Decimal(0), 7),
        ),
        folded=3,
        lines=9,
    ),
)


def sources(
    up: Mapping[Source, bool], now: float = 1_800_000_000.0
) -> Mapping[Source, SourceStatus]:
    result = {}
    for source in Source:
        ok = up.get(source, True)
        result[source] = SourceStatus(
            up=ok,
            last_attempt=now,
            last_success=now if ok else now - 900.0,
            last_error=None if ok else 'HTTP 500: SoftLayer_Exception_Public: <Internal> & "oops"',
            last_error_reason=None if ok else "server",
        )
    return MappingProxyType(result)


def full_snapshot(
    name: str = "prod", *, pending: bool = True, down: Iterable[Source] = ()
) -> AccountSnapshot:
    return AccountSnapshot(
        name=name,
        summary=AccountSummary(
            account_id=123456,
            company_name='ACME "Cloud" & Co',
            balance_usd=Decimal("-12.34"),
            next_invoice_pre_tax_usd=Decimal("1500.75"),
            next_invoice_recurring_usd=Decimal("1400.70"),
            next_invoice_one_time_usd=Decimal("100.05"),
            next_invoice_tax_usd=Decimal("150.08"),
            next_invoice_item_count=7,
            billing_cycle=BillingCycle(start=CYCLE_START, end=CYCLE_END),
        ),
        latest_recurring_invoice=LATEST,
        pending_invoice=PendingInvoice(PENDING if pending else None),
        invoices=window(),
        next_invoice=NextInvoiceBreakdown(
            categories=(
                CategoryTotals(
                    "server",
                    "Server",
                    Decimal("1000.50"),
                    1,
                    2,
                    hourly_usd=Decimal("200.25"),
                    hourly_rate_usd=Decimal("0.5"),
                    projected_usd=Decimal("1100.50"),
                ),
                CategoryTotals(
                    "guest_core",
                    "",
                    Decimal("300.20"),
                    3,
                    0,
                    hourly_usd=Decimal("300.20"),
                    hourly_rate_usd=Decimal("1.5"),
                    projected_usd=Decimal("600.20"),
                ),
                CategoryTotals(
                    "other", "Other", Decimal("100.00"), 0, 1, projected_usd=Decimal(100)
                ),
            ),
            folded_categories=4,
            item_count=7,
            projected_pre_tax_usd=Decimal("1900.75"),
            insights=INSIGHTS,
        ),
        billing=BILLING,
        history=HISTORY,
        sources=sources(dict.fromkeys(down, False)),
        poll_duration_seconds=2.5,
        next_poll=1_800_000_900.0,
    )


def account(name: str = "prod", thresholds: Thresholds | None = None) -> AccountConfig:
    return AccountConfig(
        name=name,
        endpoint="http://127.0.0.1:1/rest/v3.1/",
        auth=AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret(PLANTED_KEY), username="user"),
        thresholds=thresholds or Thresholds(),
    )


def config(*accounts: AccountConfig) -> Config:
    return Config(accounts=accounts or (account(),), invoice_lookback_seconds=90 * 86400.0)


def state(*snapshots: AccountSnapshot) -> ExporterState:
    result = ExporterState(tuple(s.name for s in snapshots))
    for snap in snapshots:
        result.publish(snap)
    return result


def api_stats() -> ApiStats:
    """Real API statistics with fixed numbers: 5 getObject and 3 getInvoices attempts."""
    stats = ApiStats()
    # le=0.1: 1, le=1.0: 4, +Inf: 5, sum 2.75
    for seconds in (0.05, 0.5, 0.5, 0.5, 1.2):
        stats.record_request("prod", "getObject", "200", seconds)
    # all above 1 s: sum 61.5
    for code in ("500", "500", "none"):
        stats.record_request("prod", "getInvoices", code, 20.5)
    for reason in ("server", "server", "timeout"):
        stats.record_error("prod", reason)
    return stats
