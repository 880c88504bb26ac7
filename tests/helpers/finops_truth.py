"""Every FinOps series one account should serve, from the simulator's ground truth alone.

Shared by the tests that compare the collector's output with the truth: datacenters and top
items of the next invoice, the latest recurring invoice by category, the invoice history and
the billing information (see docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from exporter.simulator import Scenario
from exporter.simulator.breakdown import datacenters, invoice_categories, ranked_items

Key = tuple[str, frozenset[tuple[str, str]]]
#: Families of the FinOps sources (prefixes), for tests that select billing series by prefix.
FINOPS_PREFIXES = (
    "softlayer_next_invoice_datacenter_",
    "softlayer_next_invoice_folded_datacenters",
    "softlayer_next_invoice_top_item_",
    "softlayer_next_invoice_other_items",
    "softlayer_next_invoice_platform_services_",
    "softlayer_next_invoice_recurring_before_discount_",
    "softlayer_invoice_category_",
    "softlayer_invoice_folded_categories",
    "softlayer_invoice_history_",
    "softlayer_billing_info",
    "softlayer_billing_anniversary_",
    "softlayer_billing_payment_terms",
    "softlayer_billing_discount_",
    "softlayer_billing_exchange_",
)


def key(metric: str, /, **labels: str) -> Key:
    return (metric, frozenset(labels.items()))


def item_label(host: str | None, domain: str | None, description: str) -> str:
    """The ``name`` label the exporter gives an item (exporter.finops.items.item_name)."""
    name = (f"{host}.{domain}" if domain else host) if host else description
    return name if len(name) <= 100 else name[:97] + "..."


def expected_finops(
    name: str,
    scenario: Scenario,
    account_id: int,
    *,
    top_items: int = 10,
    history_months: int = 13,
) -> Iterator[tuple[Key, float]]:
    """Yield every FinOps series of one account (no datacenter or category folding)."""
    truth = scenario.truth(account_id)
    # Where the next invoice's money goes.
    sites = datacenters(scenario, account_id)
    for site in sites.values():
        for billing, amount in (("hourly", site.hourly_amount), ("monthly", site.monthly_amount)):
            labels = {"account": name, "datacenter": site.name, "billing": billing}
            yield key("softlayer_next_invoice_datacenter_usd", **labels), float(amount)
        yield (
            key("softlayer_next_invoice_datacenter_items", account=name, datacenter=site.name),
            float(site.items),
        )
    yield key("softlayer_next_invoice_folded_datacenters", account=name), 0.0
    ranked = ranked_items(scenario, account_id)
    for item in ranked[:top_items]:
        labels = {
            "account": name,
            "item_id": str(item.item_id),
            "name": item_label(item.host, item.domain, item.description),
            "category": item.category,
            "datacenter": item.datacenter,
            "billing": "hourly" if item.hourly else "monthly",
        }
        yield key("softlayer_next_invoice_top_item_usd", **labels), float(item.amount)
    rest = ranked[top_items:]
    yield (
        key("softlayer_next_invoice_other_items_usd", account=name),
        float(sum((item.amount for item in rest), Decimal(0))),
    )
    yield key("softlayer_next_invoice_other_items", account=name), float(len(rest))
    # The latest recurring invoice by category.
    latest = truth.latest_recurring_invoice
    if latest is not None:
        for code, part in invoice_categories(scenario, account_id, latest.id).items():
            labels = {"account": name, "invoice": "latest_recurring", "category": code}
            for charge, amount in (("recurring", part.recurring), ("one_time", part.one_time)):
                yield key("softlayer_invoice_category_usd", **labels, charge=charge), float(amount)
            yield key("softlayer_invoice_category_lines", **labels), float(part.lines)
        yield (
            key("softlayer_invoice_folded_categories", account=name, invoice="latest_recurring"),
            0.0,
        )
    # The history: recurring invoices, newest first.
    recurring = sorted(
        (inv for inv in truth.invoices if inv.type_code == "RECURRING"),
        key=lambda inv: inv.created,
        reverse=True,
    )
    for months_ago, invoice in enumerate(recurring[:history_months]):
        labels = {"account": name, "months_ago": str(months_ago)}
        for metric, value in (
            ("total_usd", invoice.total),
            ("pre_tax_usd", invoice.pre_tax),
            ("tax_usd", invoice.tax),
            ("payments_usd", invoice.payments),
        ):
            yield key(f"softlayer_invoice_history_{metric}", **labels), float(value)
        yield (
            key("softlayer_invoice_history_created_timestamp_seconds", **labels),
            invoice.created.timestamp(),
        )
        if invoice.exchange_rate is not None:
            rate = invoice.exchange_rate
            yield (
                key(
                    "softlayer_invoice_history_exchange_rate",
                    **labels,
                    funding_currency="USD",
                    local_currency=rate.local,
                ),
                float(rate.rate),
            )
    # How the account is billed.
    info = truth.billing
    assert info is not None
    yield (
        key(
            "softlayer_billing_info",
            account=name,
            currency=info.currency,
            account_status=info.account_status,
        ),
        1.0,
    )
    yield key("softlayer_billing_anniversary_day", account=name), float(truth.anniversary_day)
    if info.payment_terms is not None:
        yield key("softlayer_billing_payment_terms", account=name), float(info.payment_terms)
    for charge, percent in (
        ("recurring", info.recurring_discount_percent),
        ("one_time", info.one_time_discount_percent),
    ):
        yield key("softlayer_billing_discount_ratio", account=name, charge=charge), percent / 100
    if info.exchange_rate is not None:
        labels = {
            "account": name,
            "funding_currency": "USD",
            "local_currency": info.exchange_rate.local,
        }
        yield key("softlayer_billing_exchange_rate", **labels), float(info.exchange_rate.rate)
    yield (
        key("softlayer_next_invoice_platform_services_usd", account=name),
        float(info.next_invoice_platform_services),
    )
    yield (
        key("softlayer_next_invoice_recurring_before_discount_usd", account=name),
        float(info.next_invoice_recurring_before_discount),
    )
