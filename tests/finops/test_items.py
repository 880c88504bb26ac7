"""Datacenter totals and the top-N items folded from the next invoice's item walk."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from exporter.finops.items import ItemInsightsAggregator, datacenter_label, item_name
from exporter.wire import CategoryAggregator, DecodeError


def item(
    item_id: int,
    amount: str,
    *,
    category: str = "guest_core",
    location: Any = "dal10",
    hourly: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item_id,
        "categoryCode": category,
        "hourlyFlag": hourly,
        "nextInvoiceTotalRecurringAmount": Decimal(amount),
        "category": {"name": category},
        **extra,
    }
    if hourly:
        row.update(hoursUsed="10", hourlyRecurringFee=".1")
    if location is not None:
        row["location"] = {"name": location} if isinstance(location, str) else location
    return row


def walk(pages: list[list[dict[str, Any]]], top_items: int = 3, top_datacenters: int = 2) -> Any:
    insights = ItemInsightsAggregator(top_items, top_datacenters)
    categories = CategoryAggregator(observer=insights.observe)
    for page in pages:
        categories.add_page(page)
    return replace(categories.result(20), insights=insights.result())


def test_datacenter_label_takes_the_short_name_and_refuses_free_text() -> None:
    """location.name as is; none without a location; unknown for a name that is no code."""
    assert datacenter_label({"location": {"name": "dal10"}}, "i") == "dal10"
    assert datacenter_label({"location": {"id": 0, "name": "IMS"}}, "i") == "IMS"
    assert datacenter_label({}, "i") == "none"
    assert datacenter_label({"location": None}, "i") == "none"
    assert datacenter_label({"location": {"name": "Dallas 10, room 3!"}}, "i") == "unknown"
    assert datacenter_label({"location": {"name": "x" * 40}}, "i") == "unknown"


@pytest.mark.parametrize(
    ("row", "path"),
    [
        ({"location": "dal10"}, "items[0].location"),
        ({"location": {"name": 10}}, "items[0].location.name"),
    ],
)
def test_bad_location_is_a_decode_error_naming_the_path(row: dict[str, Any], path: str) -> None:
    """A location of the wrong type fails with the path of the offending property."""
    with pytest.raises(DecodeError) as caught:
        datacenter_label(row, "items[0]")
    assert caught.value.path == path


def test_item_name_prefers_the_host_then_the_description() -> None:
    """hostName.domainName, hostName, description, then the fallback; bounded, no controls."""
    assert item_name({"hostName": "web1", "domainName": "ex.com"}, "i", "c") == "web1.ex.com"
    assert item_name({"hostName": "web1", "description": "VS"}, "i", "c") == "web1"
    assert item_name({"description": "Endurance Storage"}, "i", "c") == "Endurance Storage"
    assert item_name({"hostName": "", "description": None}, "i", "guest_core") == "guest_core"
    long = item_name({"description": "y" * 300}, "i", "c")
    assert len(long) == 100
    assert long.endswith("...")
    assert item_name({"description": "a\tb\nc"}, "i", "c") == "a b c"
    with pytest.raises(DecodeError) as caught:
        item_name({"hostName": 42}, "items[3]", "c")
    assert caught.value.path == "items[3].hostName"


def test_top_items_datacenters_and_the_rest_add_up() -> None:
    """Top 3 by amount (ties: lower id first), two datacenters plus other, the rest summed;
    an item repeated by overlapping pages counts once."""
    first = [
        item(1, "10", location="dal10", hostName="a", domainName="x.com"),
        item(2, "50", location="ams01", description="Big server"),
        item(3, "10", location="dal10"),
        item(4, "7.5", location="IMS", category="ssl_certificate"),
    ]
    second = [
        first[-1],  # the overlap: already seen
        item(5, "10", location=None, hourly=True, hostName="h"),
        item(6, "30", location="fra02"),
    ]
    breakdown = walk([first, second])
    insights = breakdown.insights
    assert [(i.item_id, i.amount_usd) for i in insights.top_items] == [
        (2, Decimal(50)),
        (6, Decimal(30)),
        (1, Decimal(10)),  # 1, 3 and 5 tie at 10: the lowest id wins
    ]
    assert insights.top_items[0].name == "Big server"
    assert insights.top_items[2].name == "a.x.com"
    assert insights.other_items == 3
    assert insights.other_items_usd == Decimal("27.5")
    total = sum((c.amount_usd for c in breakdown.categories), Decimal(0))
    assert (
        sum((i.amount_usd for i in insights.top_items), Decimal(0)) + (insights.other_items_usd)
        == total
    )
    sites = {d.name: d for d in insights.datacenters}
    assert list(sites) == ["ams01", "fra02", "other"]
    assert insights.folded_datacenters == 3  # dal10, IMS, none
    assert sites["other"].monthly_usd == Decimal("27.5")
    assert sites["other"].hourly_usd == Decimal(10)
    assert sites["other"].items == 4
    assert sum(d.items for d in insights.datacenters) == 6 == breakdown.item_count


def test_a_datacenter_named_other_is_always_folded() -> None:
    """A location literally named "other" goes into the folded bucket: no duplicate label."""
    insights = walk([[item(1, "5", location="other"), item(2, "1", location="dal10")]]).insights
    assert [d.name for d in insights.datacenters] == ["dal10", "other"]
    assert insights.folded_datacenters == 1


def test_a_bad_item_fails_the_page_before_any_total_moves() -> None:
    """A host name of the wrong type is a decode error for the whole walk (the poller keeps
    the last good breakdown); the category totals did not take the page."""
    insights = ItemInsightsAggregator(3, 3)
    categories = CategoryAggregator(observer=insights.observe)
    with pytest.raises(DecodeError, match=r"items\[1\]\.hostName"):
        categories.add_page([item(1, "5"), item(2, "6", hostName=["x"])])
    assert categories.result(20).categories == ()


def test_no_top_items_puts_everything_in_the_rest() -> None:
    """top_items 0 (not reachable from a config file, possible in code): every item is rest."""
    insights = walk([[item(1, "5"), item(2, "7")]], top_items=0).insights
    assert insights.top_items == ()
    assert (insights.other_items, insights.other_items_usd) == (2, Decimal(12))
