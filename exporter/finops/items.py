"""Datacenter totals and the top-N items of the next invoice, from the existing item walk.

:class:`ItemInsightsAggregator` observes the items :class:`exporter.wire.CategoryAggregator`
folds: the category aggregator parses each row, deduplicates it by id (pages overlap) and
hands every new item to :meth:`ItemInsightsAggregator.observe` with its id, category and
amount. The walk's mask only grows by ``hostName,domainName,description,location[name]``
(:data:`exporter.finops.masks.NEXT_INVOICE_ITEM_EXTRA_FIELDS`), so no request is added.

Memory is bounded whatever the account's size: one entry per datacenter seen (SoftLayer has a
few dozen) and a heap of ``top_items`` items. An item's name is parsed only when it enters
the heap.

Sources: ``location`` is a SoftLayer_Location (``id``, ``longName``, ``name``), ``name`` the
datacenter's short name such as ``dal10``; items without a datacenter carry the
``"No Location"`` pseudo-location ``IMS`` (softlayer-cli fixture
``SoftLayer_Account/getAllTopLevelBillingItems.json``) or no ``location`` at all (its
``getInvoiceTopLevelItems`` fixture); ``hostName`` is absent on items without a host (the
softlayer-python documentation's "Dealing with KeyError Exceptions"). The amount is
``nextInvoiceTotalRecurringAmount``, children included (see :mod:`exporter.wire`).
"""

from __future__ import annotations

import decimal
import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from exporter.finops.records import (
    NO_DATACENTER,
    OTHER,
    UNKNOWN,
    DatacenterTotals,
    ItemInsights,
    TopItem,
)
from exporter.wire import DecodeError, ParsedItem, accrual, parse_str

__all__ = [
    "MAX_NAME_CHARS",
    "ItemInsightsAggregator",
    "accrue_insights",
    "datacenter_label",
    "item_name",
]

#: Longest item name exported as a label value (host names and descriptions are free text).
MAX_NAME_CHARS: Final = 100
#: What a datacenter name looks like (``dal10``, ``IMS``, ``sao01``).
_DATACENTER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
#: Sums run wide enough never to round bounded amounts (see exporter.wire).
#: Distinct raw location names whose label is remembered (SoftLayer has a few dozen).
_MAX_CACHED_NAMES: Final = 256
_SUM: Final = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.Overflow])


def datacenter_label(item: Mapping[str, Any], where: str) -> str:
    """Return the datacenter label of a billing item: ``location.name``, shape-checked.

    No ``location`` (absent or null) is :data:`NO_DATACENTER`; a name that is not a short
    code is :data:`UNKNOWN` (never free text as a label).
    """
    location = item.get("location")
    if location is None:
        return NO_DATACENTER
    if not isinstance(location, dict):
        raise DecodeError(f"{where}.location", "expected an object")
    raw = location.get("name")
    if raw is None:
        return NO_DATACENTER
    name = parse_str(raw, f"{where}.location.name")
    return name if _DATACENTER.fullmatch(name) else UNKNOWN


def _optional_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    return "" if value is None else parse_str(value, f"{where}.{key}").strip()


def item_name(item: Mapping[str, Any], where: str, fallback: str) -> str:
    """Name an item for people: ``hostName.domainName``, else ``description``, else ``fallback``.

    Cut to :data:`MAX_NAME_CHARS` characters; control characters become spaces.
    """
    host = _optional_str(item, "hostName", where)
    domain = _optional_str(item, "domainName", where)
    if host:
        name = f"{host}.{domain}" if domain else host
    else:
        name = _optional_str(item, "description", where) or fallback
    name = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in name)
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."


@dataclass(slots=True)
class _Site:
    """Running totals of one datacenter."""

    name: str
    hourly: Decimal = Decimal(0)
    monthly: Decimal = Decimal(0)
    items: int = 0
    rate: Decimal = Decimal(0)

    @property
    def amount(self) -> Decimal:
        return _SUM.add(self.hourly, self.monthly)


class ItemInsightsAggregator:
    """Folds the walk's new items into datacenter totals and a top-``top_items`` heap.

    Pass :meth:`observe` to ``CategoryAggregator(observer=...)``; once the walk is complete,
    :meth:`result` goes with the category breakdown (``NextInvoiceBreakdown.insights``).
    """

    def __init__(self, top_items: int, top_datacenters: int) -> None:
        self._top_items = max(0, top_items)
        self._top_datacenters = max(0, top_datacenters)
        self._datacenters: dict[str, _Site] = {}
        # Raw location names seen -> their datacenter's totals (bounded, see _site).
        self._by_raw: dict[str, _Site] = {}
        # Min-heap of (amount, -id, item): the root is the cheapest kept item (among equal
        # amounts, the highest id), the first to leave when a dearer one comes.
        self._heap: list[tuple[Decimal, int, TopItem]] = []

    def observe(
        self, rows: list[Any], parsed: list[ParsedItem], fresh: list[bool], path: str
    ) -> None:
        """Take one page of the walk, as the category side parsed and deduplicated it."""
        heap = self._heap
        limit = self._top_items
        for index, new in enumerate(fresh):
            if not new:
                continue
            item_id, category, amount, rate, _ = parsed[index]
            item = rows[index]
            site = self._site(item, path, index)
            if rate is None:
                site.monthly = _SUM.add(site.monthly, amount)
            else:
                site.hourly = _SUM.add(site.hourly, amount)
                site.rate = _SUM.add(site.rate, rate)
            site.items += 1
            if not limit:
                continue
            # Most items are cheaper than the cheapest kept one: one comparison, then on.
            if len(heap) >= limit and (amount, -item_id) <= (heap[0][0], heap[0][1]):
                continue
            top = TopItem(
                item_id=item_id,
                name=item_name(item, f"{path}[{index}]", category),
                category=category,
                datacenter=site.name,
                hourly=rate is not None,
                amount_usd=amount,
                hourly_rate_usd=Decimal(0) if rate is None else rate,
            )
            if len(heap) >= limit:
                heapq.heapreplace(heap, (amount, -item_id, top))
            else:
                heapq.heappush(heap, (amount, -item_id, top))

    def _site(self, item: Mapping[str, Any], path: str, index: int) -> _Site:
        """Return the running totals of the item's datacenter (labels cached per raw name)."""
        location = item.get("location")
        raw = location.get("name") if isinstance(location, dict) else None
        site = self._by_raw.get(raw) if isinstance(raw, str) else None
        if site is not None:
            return site
        label = datacenter_label(item, f"{path}[{index}]")
        site = self._datacenters.get(label)
        if site is None:
            site = self._datacenters[label] = _Site(label)
        if isinstance(raw, str) and len(self._by_raw) < _MAX_CACHED_NAMES:
            self._by_raw[raw] = site
        return site

    def result(self) -> ItemInsights:
        """Return the datacenters (top ``top_datacenters`` plus ``other``) and the top items."""
        ranked = sorted(
            (name for name in self._datacenters if name != OTHER),
            key=lambda name: (-self._datacenters[name].amount, name),
        )
        kept = ranked[: self._top_datacenters]
        folded = [name for name in self._datacenters if name not in kept]
        datacenters = [self._totals(name, [self._datacenters[name]]) for name in kept]
        if folded:
            datacenters.append(self._totals(OTHER, [self._datacenters[n] for n in folded]))
        top = tuple(entry[2] for entry in sorted(self._heap, key=lambda e: (-e[0], -e[1])))
        rest = Decimal(0)
        for site in self._datacenters.values():
            rest = _SUM.add(rest, site.amount)
        for item in top:
            rest = _SUM.subtract(rest, item.amount_usd)
        return ItemInsights(
            datacenters=tuple(datacenters),
            folded_datacenters=len(folded),
            top_items=top,
            other_items_usd=rest,
            other_items=sum(site.items for site in self._datacenters.values()) - len(top),
        )

    @staticmethod
    def _totals(name: str, parts: list[_Site]) -> DatacenterTotals:
        hourly, monthly, rate, items = Decimal(0), Decimal(0), Decimal(0), 0
        for part in parts:
            hourly = _SUM.add(hourly, part.hourly)
            monthly = _SUM.add(monthly, part.monthly)
            rate = _SUM.add(rate, part.rate)
            items += part.items
        return DatacenterTotals(
            name=name, hourly_usd=hourly, monthly_usd=monthly, items=items, hourly_rate_usd=rate
        )


def accrue_insights(insights: ItemInsights, hours: int) -> ItemInsights:
    """Add ``hours`` hours of hourly accrual to the datacenters, the top items and the rest.

    The counterpart of :func:`exporter.wire.accrue_categories` for a poll that found the
    items unchanged (:mod:`exporter.steady`): every running hourly item accrues the same
    hours at its effective rate. The top set is re-ranked among itself; an item outside it
    that would overtake one inside shows at the next walk (at most ``full_walk_interval``).
    """
    if not hours:
        return insights
    datacenters = tuple(
        replace(site, hourly_usd=_SUM.add(site.hourly_usd, accrual(site.hourly_rate_usd, hours)))
        for site in insights.datacenters
    )
    top = sorted(
        (
            replace(
                item, amount_usd=_SUM.add(item.amount_usd, accrual(item.hourly_rate_usd, hours))
            )
            for item in insights.top_items
        ),
        key=lambda item: (-item.amount_usd, item.item_id),
    )
    rate = Decimal(0)
    for site in insights.datacenters:
        rate = _SUM.add(rate, site.hourly_rate_usd)
    for item in insights.top_items:
        rate = _SUM.subtract(rate, item.hourly_rate_usd)
    return replace(
        insights,
        datacenters=datacenters,
        top_items=tuple(top),
        other_items_usd=_SUM.add(insights.other_items_usd, accrual(rate, hours)),
    )
