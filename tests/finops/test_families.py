"""The FinOps families in the collector: absent when unknown, bounded labels, fallbacks."""

from __future__ import annotations

from dataclasses import replace

from exporter.finops.records import BillingProfile
from exporter.metrics import SnapshotCollector
from tests.helpers import builders as b

FINOPS = (
    "softlayer_billing_info",
    "softlayer_billing_anniversary_day",
    "softlayer_billing_payment_terms",
    "softlayer_billing_discount_ratio",
    "softlayer_billing_exchange_rate",
    "softlayer_next_invoice_platform_services_usd",
    "softlayer_next_invoice_recurring_before_discount_usd",
)


def samples(snapshot: object) -> list[tuple[str, dict[str, str], float]]:
    collector = SnapshotCollector(b.state(snapshot), None, b.config())  # type: ignore[arg-type]
    return [(s.name, s.labels, s.value) for f in collector.collect() for s in f.samples]


def test_unknown_billing_fields_leave_their_series_absent() -> None:
    """A profile SoftLayer sent almost nothing for: the info series alone, with the status
    id as the status and unknown as the currency; no zero stands in for a missing value."""
    empty = BillingProfile(
        currency=None,
        currency_name=None,
        exchange_rate=None,
        anniversary_day=None,
        payment_terms=None,
        recurring_discount_ratio=None,
        one_time_discount_ratio=None,
        account_status_id=1001,
        account_status=None,
        next_invoice_platform_services_usd=None,
        next_invoice_recurring_before_discount_usd=None,
    )
    found = [s for s in samples(replace(b.full_snapshot(), billing=empty)) if s[0] in FINOPS]
    assert found == [
        ("softlayer_billing_info", {"account": "prod", "currency": "unknown",
                                    "account_status": "1001"}, 1.0),
    ]  # fmt: skip


def test_free_text_never_becomes_a_label() -> None:
    """A status name that is free text is exported as unknown."""
    odd = replace(b.BILLING, account_status='Suspended "for now" <b>', currency="E U R!")
    (info,) = [s for s in samples(replace(b.full_snapshot(), billing=odd)) if s[0] == FINOPS[0]]
    assert info[1] == {"account": "prod", "currency": "unknown", "account_status": "unknown"}


def test_no_finops_series_before_the_sources_succeed() -> None:
    """Without billing, history or insights (sources never succeeded) nothing is exported."""
    bare = replace(
        b.full_snapshot(),
        billing=None,
        history=None,
        next_invoice=replace(b.full_snapshot().next_invoice, insights=None),  # type: ignore[type-var]
    )
    names = {name for name, _, _ in samples(bare)}
    prefixes = ("softlayer_invoice_history", "softlayer_invoice_category", "softlayer_billing_info")
    assert not {n for n in names if n.startswith(prefixes)}
    assert not {n for n in names if "datacenter" in n or "top_item" in n or "other_items" in n}
    assert not names & set(FINOPS)


def test_top_items_are_bounded_by_the_snapshot() -> None:
    """One series per top item, each with its own item_id; the rest in one sum."""
    found = [s for s in samples(b.full_snapshot()) if s[0] == "softlayer_next_invoice_top_item_usd"]
    assert [s[1]["item_id"] for s in found] == ["100000016", "100000024"]
    assert found[1][1] == {
        "account": "prod",
        "item_id": "100000024",
        "name": "Endurance Storage",
        "category": "storage_service_enterprise",
        "datacenter": "IMS",
        "billing": "hourly",
    }
