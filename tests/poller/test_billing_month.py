"""A replayed billing cycle: the exporter on the simulator's clock, every series against truth.

Two accounts cross their anniversaries: one paying by invoice (3-day terms), one whose card
fails. The billing clock steps hour by hour (then by six hours); after every step the poller
runs one cycle on the same simulated time and every billing series the collector serves is
compared with the simulator's ground truth, both ways (nothing missing, nothing extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client.registry import CollectorRegistry

from exporter.metrics import build_registry
from exporter.poller import Poller
from exporter.simulator import AccountSpec, AccountTruth, Scenario, SimulatorServer
from exporter.snapshot import INVOICE_STATUSES, INVOICE_TYPES, ExporterState
from tests.helpers.finops_truth import FINOPS_PREFIXES, expected_finops
from tests.helpers.simapi import make_config

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
#: Both anniversaries fall in the first two days, and no item is scheduled to end.
SEED = 12
LOOKBACK = 120 * 86_400.0
#: Families that carry billing figures (the rest is health, API and threshold series).
BILLING = (
    "softlayer_account_balance_usd",
    "softlayer_invoice_",
    "softlayer_pending_invoice_present",
    "softlayer_recent_invoices",
    "softlayer_next_invoice_",
    "softlayer_billing_cycle_",
    *FINOPS_PREFIXES,
)
INVOICE_VALUES = {
    "softlayer_invoice_total_usd": "total",
    "softlayer_invoice_pre_tax_usd": "pre_tax",
    "softlayer_invoice_recurring_usd": "recurring",
    "softlayer_invoice_one_time_usd": "one_time",
    "softlayer_invoice_tax_usd": "tax",
    "softlayer_invoice_payments_usd": "payments",
}

Key = tuple[str, frozenset[tuple[str, str]]]


def key(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def served(registry: CollectorRegistry) -> dict[Key, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(BILLING)
    }


def expected(name: str, truth: AccountTruth, now: float) -> Iterator[tuple[Key, float]]:
    """Every billing series one account should serve, from the truth alone."""
    yield key("softlayer_account_balance_usd", account=name), float(truth.balance)
    for which, invoice in (
        ("latest_recurring", truth.latest_recurring_invoice),
        ("pending", truth.pending_invoice),
    ):
        if invoice is None:
            continue
        labels = {"account": name, "invoice": which, "invoice_type": invoice.type_code}
        for metric, field in INVOICE_VALUES.items():
            yield key(metric, **labels), float(getattr(invoice, field))
        open_balance = invoice.total - invoice.payments
        yield key("softlayer_invoice_open_balance_usd", **labels), float(open_balance)
        yield key("softlayer_invoice_items", **labels), float(invoice.item_count)
        yield (
            key("softlayer_invoice_created_timestamp_seconds", **labels),
            invoice.created.timestamp(),
        )
        if invoice.closed is not None:
            yield (
                key("softlayer_invoice_closed_timestamp_seconds", **labels),
                invoice.closed.timestamp(),
            )
        for status in INVOICE_STATUSES:
            state = 1.0 if status == invoice.status_code else 0.0
            yield key("softlayer_invoice_status", account=name, invoice=which, status=status), state
    present = 0.0 if truth.pending_invoice is None else 1.0
    yield key("softlayer_pending_invoice_present", account=name), present
    since = datetime.fromtimestamp(now, UTC) - timedelta(seconds=LOOKBACK)
    window = [inv for inv in truth.invoices if inv.created >= since]
    for type_code in INVOICE_TYPES:
        for status in INVOICE_STATUSES:
            matching = [i for i in window if (i.type_code, i.status_code) == (type_code, status)]
            labels = {"account": name, "invoice_type": type_code, "status": status}
            yield key("softlayer_recent_invoices", **labels), float(len(matching))
            amount = sum((i.total for i in matching), Decimal(0))
            yield key("softlayer_recent_invoices_amount_usd", **labels), float(amount)
    yield key("softlayer_recent_invoices_window_seconds", account=name), LOOKBACK
    failures = [i.closed for i in window if i.status_code == "CLOSED_FAILED" and i.closed]
    if failures:
        yield (
            key("softlayer_invoice_last_payment_failure_timestamp_seconds", account=name),
            max(failures).timestamp(),
        )
    yield key("softlayer_next_invoice_pre_tax_usd", account=name), float(truth.next_invoice_pre_tax)
    yield (
        key("softlayer_next_invoice_recurring_usd", account=name),
        float(truth.next_invoice_recurring),
    )
    yield (
        key("softlayer_next_invoice_one_time_usd", account=name),
        float(truth.next_invoice_one_time),
    )
    yield key("softlayer_next_invoice_tax_usd", account=name), float(truth.next_invoice_tax)
    yield key("softlayer_next_invoice_items", account=name), float(truth.next_invoice_item_count)
    yield (
        key("softlayer_next_invoice_projected_pre_tax_usd", account=name),
        float(truth.projected_pre_tax(now)),
    )
    yield key("softlayer_next_invoice_folded_categories", account=name), 0.0
    hours_left = truth.hours_left(now)
    for code, category in truth.categories.items():
        labels = {"account": name, "category": code}
        for billing, amount, count in (
            ("hourly", category.hourly_amount, category.hourly_items),
            ("monthly", category.monthly_amount, category.monthly_items),
        ):
            yield (
                key("softlayer_next_invoice_category_usd", **labels, billing=billing),
                float(amount),
            )
            yield (
                key("softlayer_next_invoice_category_items", **labels, billing=billing),
                float(count),
            )
        yield (
            key("softlayer_next_invoice_category_projected_usd", **labels),
            float(category.projected(hours_left)),
        )
    yield (
        key("softlayer_billing_cycle_start_timestamp_seconds", account=name),
        truth.cycle_start.timestamp(),
    )
    yield (
        key("softlayer_billing_cycle_end_timestamp_seconds", account=name),
        truth.cycle_end.timestamp(),
    )


def steps() -> Iterator[timedelta]:
    """Hour by hour for three days, then every six hours for four more."""
    yield from (timedelta(hours=1) for _ in range(72))
    yield from (timedelta(hours=6) for _ in range(16))


async def test_a_billing_cycle_replayed_hour_by_hour_matches_truth_in_every_series() -> None:
    """Across both anniversaries: hourly accrual, the invoice cut OPEN, paid after 3 days or
    failed the same day; every billing series equals the truth at every step."""
    specs = [
        AccountSpec(items=40, pending_invoice=False, payment="invoice", payment_terms_days=3),
        AccountSpec(items=25, pending_invoice=False, payment="card_failed"),
    ]
    scenario = Scenario.generate(seed=SEED, accounts=specs, now=START)
    assert not any(any(acct.cancel_at) for acct in scenario.accounts)
    names = {acct.id: f"acct{i}" for i, acct in enumerate(scenario.accounts)}
    history: dict[str, list[tuple[datetime, dict[Key, float]]]] = {n: [] for n in names.values()}
    async with SimulatorServer(scenario, rate_limit_per_second=None) as sim:
        config = make_config(sim, scenario, invoice_lookback_seconds=LOOKBACK, page_size=10)
        state = ExporterState(tuple(names.values()))
        poller = Poller(config, state, clock=scenario.clock.time)
        registry = build_registry(state, poller.api_stats, config, process_metrics=False)
        try:
            for step in steps():
                moment = scenario.advance(step)
                assert await poller.poll_once()
                samples = served(registry)
                now = scenario.clock.time()
                for acct in scenario.accounts:
                    name = names[acct.id]
                    want = dict(expected(name, scenario.truth(acct.id), now))
                    want.update(expected_finops(name, scenario, acct.id))
                    got = {k: v for k, v in samples.items() if ("account", name) in k[1]}
                    assert got.keys() == want.keys(), (moment, set(got) ^ set(want))
                    for series, value in want.items():
                        assert abs(got[series] - value) <= 1e-6 * max(1.0, abs(value)), (
                            moment,
                            series,
                            got[series],
                            value,
                        )
                    history[name].append((moment, got))
        finally:
            await poller.aclose()
    check_story(scenario, history)


def value(samples: dict[Key, float], name: str, **labels: str) -> Any:
    return samples.get(key(name, **labels))


def check_story(
    scenario: Scenario, history: dict[str, list[tuple[datetime, dict[Key, float]]]]
) -> None:
    """What the month looked like through the exporter, told from the served series."""
    paid, failed = scenario.accounts
    for acct, name, settled_status in (
        (paid, "acct0", "CLOSED"),
        (failed, "acct1", "CLOSED_FAILED"),
    ):
        invoices = scenario.truth(acct.id).invoices
        cut = next(inv for inv in reversed(invoices) if inv.type_code == "RECURRING")
        anniversary = cut.created
        series = history[name]
        before = [s for m, s in series if m < anniversary]
        after = [s for m, s in series if m >= anniversary]
        assert before, name
        assert after, name
        hourly = [
            sum(v for k, v in s.items() if k[0] == "softlayer_next_invoice_category_usd"
                and ("billing", "hourly") in k[1])
            for s in before
        ]  # fmt: skip
        assert hourly == sorted(hourly)  # month-to-date accrual only grows within the cycle
        assert hourly[-1] > hourly[0]
        # On the anniversary the hourly part restarts; the projection is what was billed.
        projected = value(before[-1], "softlayer_next_invoice_projected_pre_tax_usd", account=name)
        assert abs(projected - float(cut.pre_tax)) < 1e-6
        pending = {"account": name, "invoice": "pending", "status": "OPEN"}
        assert value(after[0], "softlayer_invoice_status", **pending) == 1
        assert value(before[-1], "softlayer_invoice_status", **pending) is None
        latest = {"account": name, "invoice": "latest_recurring", "status": settled_status}
        assert value(series[-1][1], "softlayer_invoice_status", **latest) == 1
        assert value(series[-1][1], "softlayer_pending_invoice_present", account=name) == 0
        start = value(after[0], "softlayer_billing_cycle_start_timestamp_seconds", account=name)
        assert start == anniversary.timestamp()
    failure = value(
        history["acct1"][-1][1],
        "softlayer_invoice_last_payment_failure_timestamp_seconds",
        account="acct1",
    )
    assert failure is not None
    assert value(
        history["acct0"][-1][1],
        "softlayer_invoice_payments_usd",
        account="acct0",
        invoice="latest_recurring",
        invoice_type="RECURRING",
    ) == value(
        history["acct0"][-1][1],
        "softlayer_invoice_total_usd",
        account="acct0",
        invoice="latest_recurring",
        invoice_type="RECURRING",
    )
