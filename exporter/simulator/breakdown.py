"""Ground truth of where an account's money goes: datacenters, items, invoice categories.

Computed from the scenario's tables and the model's billing rules (the same functions the
API renders from), never from rendered responses, so tests can compare what an exporter
derives from the wire against it:

- :func:`datacenters`: the next invoice per datacenter (``location.name`` of each active
  top-level billing item; SoftLayer files items without a datacenter under the
  ``"No Location"`` pseudo-location ``IMS``, softlayer-cli fixture
  ``SoftLayer_Account/getAllTopLevelBillingItems.json``);
- :func:`ranked_items`: every active top-level item, most expensive first;
- :func:`invoice_categories`: an invoice's top-level lines per ``categoryCode``, children
  included (``totalRecurringAmount`` / ``totalOneTimeAmount``: "An invoice Item's total,
  including any child invoice items", softlayer-go ``datatypes/billing.go``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exporter.simulator.model import BillingItemRef, InvoiceRef, invoice_top_level_items
from exporter.simulator.model import _domain as domain_of
from exporter.simulator.model import _host as host_of
from exporter.simulator.model import _location as location_of
from exporter.simulator.scenario import Scenario, SimAccount
from exporter.simulator.wireformat import mills_to_decimal

__all__ = [
    "DatacenterTruth",
    "InvoiceCategoryTruth",
    "ItemTruth",
    "datacenters",
    "invoice_categories",
    "ranked_items",
]


@dataclass(frozen=True, slots=True)
class DatacenterTruth:
    """Next-invoice amount of the active top-level items of one datacenter (children in)."""

    name: str
    hourly_amount: Decimal
    monthly_amount: Decimal
    items: int

    @property
    def amount(self) -> Decimal:
        """Hourly (month to date) plus monthly."""
        return self.hourly_amount + self.monthly_amount


@dataclass(frozen=True, slots=True)
class ItemTruth:
    """One active top-level billing item as the next invoice bills it.

    ``host`` and ``domain`` are None where SoftLayer sends no ``hostName`` (storage,
    certificates...).
    """

    item_id: int
    category: str
    description: str
    host: str | None
    domain: str | None
    datacenter: str
    amount: Decimal  # nextInvoiceTotalRecurringAmount, children included
    hourly: bool


@dataclass(frozen=True, slots=True)
class InvoiceCategoryTruth:
    """Pre-tax amounts of one category's top-level lines on an invoice, children included."""

    code: str
    recurring: Decimal
    one_time: Decimal
    lines: int


def _account(scenario: Scenario, account_id: int) -> SimAccount:
    scenario.sync()  # run the billing events due, as an API request would
    return scenario.account(account_id)


def ranked_items(scenario: Scenario, account_id: int) -> list[ItemTruth]:
    """Every active top-level billing item, by amount descending, then by id ascending."""
    acct = _account(scenario, account_id)
    items = []
    for row in acct.active_rows():
        category = acct.category_of(row)
        ref = BillingItemRef(acct, row)
        items.append(
            ItemTruth(
                item_id=acct.item_id(row),
                category=category.code,
                description=ref.component().description,
                host=host_of(acct, row) if category.has_host else None,
                domain=domain_of(acct) if category.has_host else None,
                datacenter=location_of(acct, row)[2],
                amount=mills_to_decimal(acct.rec[row]),
                hourly=bool(acct.hourly[row]),
            )
        )
    items.sort(key=lambda item: (-item.amount, item.item_id))
    return items


def datacenters(scenario: Scenario, account_id: int) -> dict[str, DatacenterTruth]:
    """Sum the next invoice's active top-level items per datacenter name."""
    acct = _account(scenario, account_id)
    sums: dict[str, list[int]] = {}
    for row in acct.active_rows():
        name = location_of(acct, row)[2]
        entry = sums.setdefault(name, [0, 0, 0])
        entry[0 if acct.hourly[row] else 1] += acct.rec[row]
        entry[2] += 1
    return {
        name: DatacenterTruth(name, mills_to_decimal(hourly), mills_to_decimal(monthly), count)
        for name, (hourly, monthly, count) in sorted(sums.items())
    }


def invoice_categories(
    scenario: Scenario, account_id: int, invoice_id: int
) -> dict[str, InvoiceCategoryTruth]:
    """Sum an invoice's top-level lines per category code (lines plus their children)."""
    acct = _account(scenario, account_id)
    inv = next((i for i in acct.invoices if i.id == invoice_id), None)
    if inv is None:
        raise ValueError(f"account {account_id} has no invoice {invoice_id}")
    sums: dict[str, list[int]] = {}
    for top in invoice_top_level_items(InvoiceRef(acct, inv)):
        entry = sums.setdefault(top.component().code, [0, 0, 0])
        for line in (top, *top.children()):
            recurring, one_time = line.amounts()
            entry[0] += recurring
            entry[1] += one_time
        entry[2] += 1
    return {
        code: InvoiceCategoryTruth(code, mills_to_decimal(r), mills_to_decimal(o), n)
        for code, (r, o, n) in sorted(sums.items())
    }
