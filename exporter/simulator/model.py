"""SoftLayer datatypes as the simulator renders them: properties, wire types, relations.

Each datatype is a :class:`TypeDef`: ordered *local* properties (returned by default), scalar
*relational* properties (amounts and counts that appear only when masked) and object/list
relations. Getters work on small reference objects (``BillingItemRef`` ...) that point into
the scenario's columns, so nothing is materialised until a page is rendered. A getter returns
:data:`MISSING` when SoftLayer would omit the key (no ``hostName`` on storage, no
``pendingInvoice`` when there is none) and ``None`` when it sends an explicit ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from exporter.simulator.catalog import CATEGORIES, CURRENCIES, LOCATIONS, NO_LOCATION, Category
from exporter.simulator.scenario import (
    ID_STRIDE,
    INVOICE_ITEM_SPAN,
    ExchangeRate,
    SimAccount,
    SimInvoice,
    exchange_rate,
    tax_of,
)
from exporter.simulator.wireformat import date_str, money_num, money_str


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Sentinel: the key is absent from the response.
MISSING: Final = _Missing()

Getter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Rel:
    """A relational property pointing at another datatype (one object or a list)."""

    target: str
    get: Getter
    many: bool = False


@dataclass(slots=True)
class TypeDef:
    """One SoftLayer datatype."""

    name: str
    local: dict[str, Getter]
    scalar_relational: dict[str, Getter] = field(default_factory=dict)
    relational: dict[str, Rel] = field(default_factory=dict)
    always: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        """Whether ``name`` is any property of this type."""
        return name in self.local or name in self.scalar_relational or name in self.relational


def rate_str(bp: int) -> str:
    """Format a tax rate in basis points as SoftLayer's decimal string (825 -> ``".0825"``)."""
    if bp == 0:
        return "0"
    whole, frac = divmod(bp, 10000)
    return ("" if whole == 0 else str(whole)) + "." + f"{frac:04d}".rstrip("0")


# -- references ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Component:
    """One billable piece of a row: the top-level item (index 0) or one child."""

    code: str
    name: str
    category_id: int
    description: str
    monthly: int  # mills per month (monthly items)
    rate: int  # mills per hour (hourly items)


def components(acct: SimAccount, row: int) -> list[Component]:
    """List the top-level item and its children, as billed."""
    category = acct.category_of(row)
    tier = acct.tier_of(row)
    own = acct.own[row]
    hourly = bool(acct.hourly[row])
    top = Component(
        category.code,
        category.name,
        category.category_id,
        tier.description if tier is not None else category.name,
        0 if hourly else own,
        own if hourly else 0,
    )
    out = [top]
    if tier is not None:
        for child in tier.children:
            out.append(
                Component(
                    child.code,
                    child.name,
                    _child_category_id(child.code),
                    child.description,
                    child.fee,
                    child.rate,
                )
            )
    return out


def _child_category_id(code: str) -> int:
    return 2000 + sum(map(ord, code)) % 997


@dataclass(frozen=True, slots=True)
class AccountRef:
    """SoftLayer_Account."""

    acct: SimAccount
    now: int


@dataclass(frozen=True, slots=True)
class BillingItemRef:
    """SoftLayer_Billing_Item: row ``row`` of an account, child ``child`` (0 = top-level)."""

    acct: SimAccount
    row: int
    child: int = 0

    def component(self) -> Component:
        """Describe what this item bills."""
        return components(self.acct, self.row)[self.child]

    def charge(self) -> int:
        """Return the item's own recurring charge for the cycle (mills)."""
        comp = self.component()
        if self.acct.hourly[self.row]:
            return comp.rate * self.acct.hours[self.row]
        return comp.monthly


@dataclass(frozen=True, slots=True)
class InvoiceRef:
    """SoftLayer_Billing_Invoice."""

    acct: SimAccount
    inv: SimInvoice


@dataclass(frozen=True, slots=True)
class InvoiceItemRef:
    """SoftLayer_Billing_Invoice_Item: position ``pos`` of an invoice, child ``child``."""

    acct: SimAccount
    inv: SimInvoice
    pos: int
    child: int = 0

    @property
    def is_view(self) -> bool:
        """Whether the invoice mirrors billing-item rows (else explicit lines)."""
        return self.inv.view_hi >= 0

    def component(self) -> Component:
        """Describe what this line bills."""
        if self.is_view:
            return components(self.acct, self.pos)[self.child]
        line = self.inv.lines[self.pos]
        category = CATEGORIES[line.category]
        return Component(category.code, category.name, category.category_id, line.description, 0, 0)

    def amounts(self, comp: Component | None = None) -> tuple[int, int]:
        """(recurring, one-time) of this line alone, mills (``comp``: its component, if known)."""
        if not self.is_view:
            line = self.inv.lines[self.pos]
            return line.recurring, line.one_time
        if comp is None:
            comp = self.component()
        hourly = self.acct.hourly[self.pos]
        # The hours billed are those at the cut, not today's (hourly items restart each cycle).
        hours = self.inv.hours if self.inv.hours is not None else self.acct.hours0
        recurring = comp.rate * hours[self.pos] if hourly else comp.monthly
        one_time = 0
        if self.child == 0 and self.pos >= self.inv.view_new_lo:
            one_time = self.acct.setup[self.pos]
        return recurring, one_time

    def children(self) -> list[InvoiceItemRef]:
        """Child lines (only top-level lines of row-mirroring invoices have any)."""
        if self.child or not self.is_view:
            return []
        return [
            InvoiceItemRef(self.acct, self.inv, self.pos, j)
            for j in range(1, self.acct.child_count(self.pos) + 1)
        ]

    def item_id(self) -> int:
        """Return the line's id."""
        return self.inv.id * INVOICE_ITEM_SPAN + self.pos * ID_STRIDE + self.child


# -- helpers shared by getters -------------------------------------------------------------------


def _location(acct: SimAccount, row: int) -> tuple[int, str, str]:
    if not acct.category_of(row).located:
        return NO_LOCATION
    return LOCATIONS[(row * 7 + acct.index * 3) % len(LOCATIONS)]


def _host(acct: SimAccount, row: int) -> str:
    return f"{acct.category_of(row).code.split('_')[0]}{row:06d}"


def _domain(acct: SimAccount) -> str:
    return f"acct{acct.id}.example.com"


def _resource_id(acct: SimAccount, row: int) -> int:
    return 20_000_000 + acct.index * 1_000_000 + row


def _order_item_id(acct: SimAccount, row: int, child: int) -> int:
    return 600_000_000 + acct.index * 8_000_000 + row * ID_STRIDE + child


def _cycle_start(acct: SimAccount, row: int) -> int:
    return max(acct.created_at[row], acct.cycle_start)


def _category(cat: Category) -> tuple[str, int, str, int]:
    return (cat.code, cat.category_id, cat.name, cat.quantity_limit)


def _top_level(ref: BillingItemRef) -> bool:
    return ref.child == 0


def _if(condition: bool, value: Any) -> Any:
    return value if condition else MISSING


# -- SoftLayer_Billing_Item ------------------------------------------------------------------------


def _bi_hourly(r: BillingItemRef) -> bool:
    return bool(r.acct.hourly[r.row])


def _bi_next_recurring(r: BillingItemRef) -> int:
    if r.child:
        return r.charge()
    return r.acct.rec[r.row]


def _bi_next_one_time(r: BillingItemRef) -> int:
    return r.acct.next_one_time(r.row) if r.child == 0 else 0


def _bi_children(r: BillingItemRef) -> list[BillingItemRef]:
    if r.child:
        return []
    return [BillingItemRef(r.acct, r.row, j) for j in range(1, r.acct.child_count(r.row) + 1)]


def _bi_cancel(r: BillingItemRef) -> str | None:
    at = r.acct.cancel_at[r.row]
    return date_str(at) if at else None


def _bi_top_cat(r: BillingItemRef) -> Category:
    return r.acct.category_of(r.row)


BILLING_ITEM = TypeDef(
    "SoftLayer_Billing_Item",
    local={
        "allowCancellationFlag": lambda r: 1,
        "associatedBillingItemId": lambda r: _if(bool(r.child), str(r.acct.item_id(r.row))),
        "cancellationDate": _bi_cancel,
        "categoryCode": lambda r: r.component().code,
        "createDate": lambda r: date_str(r.acct.created_at[r.row]),
        "currentHourlyCharge": lambda r: _if(_bi_hourly(r), money_str(r.charge())),
        "cycleStartDate": lambda r: date_str(_cycle_start(r.acct, r.row) + (1 if r.child else 0)),
        "description": lambda r: r.component().description,
        "domainName": lambda r: _if(_top_level(r) and _bi_top_cat(r).has_host, _domain(r.acct)),
        "hostName": lambda r: _if(_top_level(r) and _bi_top_cat(r).has_host, _host(r.acct, r.row)),
        "hourlyRecurringFee": lambda r: _if(_bi_hourly(r), money_str(r.component().rate)),
        "hoursUsed": lambda r: _if(_bi_hourly(r), str(r.acct.hours[r.row])),
        "id": lambda r: r.acct.item_id(r.row, r.child),
        "laborFee": lambda r: "0",
        "laborFeeTaxRate": lambda r: "0",
        "lastBillDate": lambda r: date_str(_cycle_start(r.acct, r.row)),
        "modifyDate": lambda r: date_str(_cycle_start(r.acct, r.row) + 4),
        "nextBillDate": lambda r: date_str(r.acct.next_bill),
        "notes": lambda r: _if(_top_level(r) and _bi_top_cat(r).notes, _domain(r.acct)),
        "oneTimeFee": lambda r: "0",
        "oneTimeFeeTaxRate": lambda r: "0",
        "orderItemId": lambda r: _order_item_id(r.acct, r.row, r.child),
        "parentId": lambda r: r.acct.item_id(r.row) if r.child else None,
        "recurringFee": lambda r: money_str(r.charge()),
        "recurringFeeTaxRate": lambda r: rate_str(r.acct.tax_bp),
        "recurringMonths": lambda r: 1,
        "serviceProviderId": lambda r: 1,
        "setupFee": lambda r: money_str(r.acct.setup[r.row] if r.child == 0 else 0),
        "setupFeeTaxRate": lambda r: rate_str(r.acct.tax_bp),
        "resourceTableId": lambda r: _if(
            _top_level(r) and _bi_top_cat(r).has_resource, _resource_id(r.acct, r.row)
        ),
    },
    scalar_relational={
        "hourlyFlag": _bi_hourly,
        "nextInvoiceTotalRecurringAmount": lambda r: money_num(_bi_next_recurring(r)),
        "nextInvoiceTotalOneTimeAmount": lambda r: money_num(_bi_next_one_time(r)),
        # SLDN: "deprecated and will always be zero".
        "nextInvoiceTotalRecurringTaxAmount": lambda r: 0,
        "nextInvoiceTotalOneTimeTaxAmount": lambda r: money_num(
            tax_of(_bi_next_one_time(r), r.acct.tax_bp)
        ),
        "childCount": lambda r: 0 if r.child else r.acct.child_count(r.row),
    },
    relational={
        "category": Rel(
            "SoftLayer_Product_Item_Category",
            lambda r: (
                _category(_bi_top_cat(r))
                if r.child == 0
                else (r.component().code, r.component().category_id, r.component().name, 1)
            ),
        ),
        "children": Rel("SoftLayer_Billing_Item", _bi_children, many=True),
        "nextInvoiceChildren": Rel("SoftLayer_Billing_Item", _bi_children, many=True),
        "nonZeroNextInvoiceChildren": Rel(
            "SoftLayer_Billing_Item",
            lambda r: [c for c in _bi_children(r) if c.charge()],
            many=True,
        ),
        "location": Rel("SoftLayer_Location", lambda r: _location(r.acct, r.row)),
        "orderItem": Rel("SoftLayer_Billing_Order_Item", lambda r: r),
        "parent": Rel(
            "SoftLayer_Billing_Item",
            lambda r: BillingItemRef(r.acct, r.row) if r.child else MISSING,
        ),
    },
)

PRODUCT_ITEM_CATEGORY = TypeDef(
    "SoftLayer_Product_Item_Category",
    local={
        "categoryCode": lambda c: c[0],
        "id": lambda c: c[1],
        "name": lambda c: c[2],
        "quantityLimit": lambda c: c[3],
    },
)

LOCATION = TypeDef(
    "SoftLayer_Location",
    local={
        "id": lambda loc: loc[0],
        "longName": lambda loc: loc[1],
        "name": lambda loc: loc[2],
        "statusId": lambda loc: 2,
    },
)

ORDER_ITEM = TypeDef(
    "SoftLayer_Billing_Order_Item",
    local={
        "id": lambda r: _order_item_id(r.acct, r.row, r.child),
        "description": lambda r: r.component().description,
    },
    relational={"order": Rel("SoftLayer_Billing_Order", lambda r: r)},
)

ORDER = TypeDef(
    "SoftLayer_Billing_Order",
    local={
        "id": lambda r: 80_000_000 + r.acct.index * 1_000_000 + r.row // 3,
        "createDate": lambda r: date_str(r.acct.created_at[r.row]),
        "status": lambda r: "COMPLETE",
    },
    relational={
        "userRecord": Rel("SoftLayer_User_Customer", lambda r: r.acct.users[r.row % 2]),
    },
)

USER_CUSTOMER = TypeDef(
    "SoftLayer_User_Customer",
    local={
        "displayName": lambda u: u.display_name,
        "email": lambda u: u.email if u.email is not None else MISSING,
        # Real captures carry iamId even when the mask does not name it.
        "iamId": lambda u: u.iam_id,
        "id": lambda u: u.id,
        "username": lambda u: u.username,
    },
    relational={"userStatus": Rel("SoftLayer_User_Customer_Status", lambda u: u)},
    always=("iamId",),
)

USER_STATUS = TypeDef(
    "SoftLayer_User_Customer_Status",
    local={
        "id": lambda u: u.status_id,
        "keyName": lambda u: u.status_key,
        "name": lambda u: u.status_name,
    },
)

# -- SoftLayer_Billing_Currency, _ExchangeRate, SoftLayer_Account_Status --------------------------
# Properties from the SLDN datatype pages (softlayer/githubio_source
# content/reference/datatypes/SoftLayer_Billing_Currency{,_ExchangeRate}) and softlayer-go
# datatypes/billing.go; no captured response exists (softlayer-api.md section 5 item 2), so
# the values are INFERRED (see exporter.simulator.catalog.CURRENCIES and scenario.exchange_rate).


@dataclass(frozen=True, slots=True)
class CurrencyRef:
    """SoftLayer_Billing_Currency ``code``; ``moment`` picks its ``currentExchangeRate``."""

    code: str
    moment: int


def _current_rate(c: CurrencyRef) -> Any:
    rate = exchange_rate(c.code, c.moment)
    return MISSING if rate is None else rate


BILLING_CURRENCY = TypeDef(
    "SoftLayer_Billing_Currency",
    local={
        "id": lambda c: CURRENCIES[c.code].id,
        "keyName": lambda c: c.code,
        "name": lambda c: CURRENCIES[c.code].name,
    },
    relational={
        # SLDN: "The current exchange rate"; USD has nothing to exchange (INFERRED: absent).
        "currentExchangeRate": Rel("SoftLayer_Billing_Currency_ExchangeRate", _current_rate),
    },
)

EXCHANGE_RATE = TypeDef(
    "SoftLayer_Billing_Currency_ExchangeRate",
    local={
        "effectiveDate": lambda x: date_str(x.effective),
        "expirationDate": lambda x: date_str(x.expiration),
        "id": lambda x: x.id,
        # A decimal (SLDN type); sent as a string like every other SoftLayer decimal
        # property in the captures (softlayer-api.md section 3.1).
        "rate": lambda x: _decimal_str(x.rate),
    },
    relational={
        "fundingCurrency": Rel(
            "SoftLayer_Billing_Currency", lambda x: CurrencyRef("USD", x.effective)
        ),
        "localCurrency": Rel(
            "SoftLayer_Billing_Currency", lambda x: CurrencyRef(x.local, x.effective)
        ),
    },
)

ACCOUNT_STATUS = TypeDef(
    "SoftLayer_Account_Status",
    # softlayer-cli fixture SoftLayer_Account/getObject_missingPendingInvoice.json:
    # "accountStatus": {"id": 1001, "name": "Active"}.
    local={
        "id": lambda a: a.account_status_id,
        "name": lambda a: a.account_status_name,
    },
)


def _decimal_str(value: Decimal) -> str:
    """SoftLayer's decimal strings drop the leading zero: ``.9214`` (softlayer-api.md 3.1)."""
    text = format(value, "f")
    return text[1:] if text.startswith("0.") else text


def _exchange_rate_or_missing(rate: ExchangeRate | None) -> Any:
    return MISSING if rate is None else rate


# -- SoftLayer_Billing_Invoice_Item ----------------------------------------------------------------


def _ii_tax(r: InvoiceItemRef, which: int) -> int:
    return tax_of(r.amounts()[which], r.inv.tax_bp)


def _ii_total(r: InvoiceItemRef, which: int, taxed: bool) -> int:
    if r.child or not r.is_view:
        refs = [r, *r.children()]
        if taxed:
            return sum(_ii_tax(x, which) for x in refs)
        return sum(x.amounts()[which] for x in refs)
    # A row-mirroring top-level line: build its components once, not once per child.
    total = 0
    for child, comp in enumerate(components(r.acct, r.pos)):
        line = r if child == 0 else InvoiceItemRef(r.acct, r.inv, r.pos, child)
        amount = line.amounts(comp)[which]
        total += tax_of(amount, r.inv.tax_bp) if taxed else amount
    return total


def _ii_top(r: InvoiceItemRef) -> bool:
    return r.child == 0 and r.is_view


def _ii_cat(r: InvoiceItemRef) -> Category:
    if r.is_view:
        return r.acct.category_of(r.pos)
    return CATEGORIES[r.inv.lines[r.pos].category]


def _ii_location(r: InvoiceItemRef) -> Any:
    if not _ii_cat(r).located:
        return MISSING
    if not r.is_view:
        return LOCATIONS[(r.pos + r.acct.index) % len(LOCATIONS)]
    return _location(r.acct, r.pos)


INVOICE_ITEM = TypeDef(
    "SoftLayer_Billing_Invoice_Item",
    local={
        "billingItemId": lambda r: r.acct.item_id(r.pos, r.child) if r.is_view else None,
        "categoryCode": lambda r: r.component().code,
        "createDate": lambda r: date_str(r.inv.created + 9 + (1 if r.child else 0)),
        "description": lambda r: r.component().description,
        "domainName": lambda r: _if(_ii_top(r) and _ii_cat(r).has_host, _domain(r.acct)),
        "hostName": lambda r: _if(_ii_top(r) and _ii_cat(r).has_host, _host(r.acct, r.pos)),
        "hourlyFlag": lambda r: bool(r.is_view and r.acct.hourly[r.pos]),
        "id": lambda r: r.item_id(),
        "invoiceId": lambda r: r.inv.id,
        "laborAfterTaxAmount": lambda r: "0",
        "laborFee": lambda r: "0",
        "laborFeeTaxRate": lambda r: "0",
        "laborTaxAmount": lambda r: "0",
        "notes": lambda r: _if(
            _ii_top(r) and _ii_cat(r).code.startswith("storage"),
            f"SL-{r.acct.item_id(r.pos)}",
        ),
        "oneTimeAfterTaxAmount": lambda r: money_str(r.amounts()[1] + _ii_tax(r, 1)),
        "oneTimeFee": lambda r: money_str(r.amounts()[1]),
        "oneTimeFeeTaxRate": lambda r: rate_str(r.inv.tax_bp),
        "oneTimeTaxAmount": lambda r: money_str(_ii_tax(r, 1)),
        "parentId": lambda r: r.inv.id * INVOICE_ITEM_SPAN + r.pos * ID_STRIDE if r.child else None,
        "recurringAfterTaxAmount": lambda r: money_str(r.amounts()[0] + _ii_tax(r, 0)),
        "recurringFee": lambda r: money_str(r.amounts()[0]),
        "recurringFeeTaxRate": lambda r: rate_str(r.inv.tax_bp),
        "recurringTaxAmount": lambda r: money_str(_ii_tax(r, 0)),
        "resourceTableId": lambda r: _if(
            _ii_top(r) and _ii_cat(r).has_resource, _resource_id(r.acct, r.pos)
        ),
        "serviceProviderId": lambda r: 1,
        "setupAfterTaxAmount": lambda r: "0",
        "setupFee": lambda r: "0",
        "setupFeeTaxRate": lambda r: "0",
        "setupTaxAmount": lambda r: "0",
    },
    scalar_relational={
        "totalRecurringAmount": lambda r: money_str(_ii_total(r, 0, False)),
        "totalOneTimeAmount": lambda r: money_str(_ii_total(r, 1, False)),
        "totalRecurringTaxAmount": lambda r: money_str(_ii_total(r, 0, True)),
        "totalOneTimeTaxAmount": lambda r: money_str(_ii_total(r, 1, True)),
        "childCount": lambda r: len(r.children()),
    },
    relational={
        "category": Rel(
            "SoftLayer_Product_Item_Category",
            lambda r: (r.component().code, r.component().category_id, r.component().name, 1),
        ),
        "children": Rel("SoftLayer_Billing_Invoice_Item", lambda r: r.children(), many=True),
        "associatedChildren": Rel(
            "SoftLayer_Billing_Invoice_Item", lambda r: r.children(), many=True
        ),
        "nonZeroAssociatedChildren": Rel(
            "SoftLayer_Billing_Invoice_Item",
            lambda r: [c for c in r.children() if any(c.amounts())],
            many=True,
        ),
        "location": Rel("SoftLayer_Location", _ii_location),
        "billingItem": Rel(
            "SoftLayer_Billing_Item",
            lambda r: BillingItemRef(r.acct, r.pos, r.child) if r.is_view else MISSING,
        ),
        "invoice": Rel("SoftLayer_Billing_Invoice", lambda r: InvoiceRef(r.acct, r.inv)),
    },
    # The getInvoiceTopLevelItems capture carries notes although the mask does not name it.
    always=("notes",),
)

# -- SoftLayer_Billing_Invoice ---------------------------------------------------------------------


def invoice_top_level_items(ref: InvoiceRef) -> Sequence[InvoiceItemRef]:
    """Top-level lines of an invoice, lazily (``pos`` is the billing-item row of a view)."""
    rows = ref.inv.rows if ref.inv.rows is not None else range(ref.inv.top_level_count)
    return LazyRows(rows, lambda pos: InvoiceItemRef(ref.acct, ref.inv, pos))


def invoice_all_items(ref: InvoiceRef) -> list[InvoiceItemRef]:
    """Every line, children right after their parent (``getItems``)."""
    out: list[InvoiceItemRef] = []
    for top in invoice_top_level_items(ref):
        out.append(top)
        out.extend(top.children())
    return out


def _open_recurring(ref: InvoiceRef) -> bool:
    return ref.inv.status_code == "OPEN" and ref.inv.type_code == "RECURRING"


INVOICE = TypeDef(
    "SoftLayer_Billing_Invoice",
    local={
        "accountId": lambda r: r.acct.id,
        "address1": lambda r: "4849 Alpha Rd",
        "city": lambda r: "Dallas",
        "claimedTaxExemptTxFlag": lambda r: False,
        "closedDate": lambda r: date_str(r.inv.closed) if r.inv.closed is not None else None,
        "companyName": lambda r: r.acct.company_name,
        "country": lambda r: r.acct.country,
        "createDate": lambda r: date_str(r.inv.created),
        "documentsGeneratedFlag": lambda r: r.inv.status_code != "OPEN",
        "email": lambda r: r.acct.users[0].email,
        # The pending recurring invoice has no ending balance yet (captures agree).
        "endingBalance": lambda r: _if(not _open_recurring(r), money_str(r.inv.ending_balance)),
        "firstName": lambda r: "Billing",
        "id": lambda r: r.inv.id,
        "lastName": lambda r: "Owner",
        "modifyDate": lambda r: date_str(r.inv.modified),
        "officePhone": lambda r: "2817874579",
        "postalCode": lambda r: "75244-4608",
        "startingBalance": lambda r: money_str(r.inv.starting_balance),
        "state": lambda r: "TX",
        "statusCode": lambda r: r.inv.status_code,
        "taxStatusId": lambda r: 6 if r.inv.tax_bp else 5,
        "taxTypeId": lambda r: 6,
        "typeCode": lambda r: r.inv.type_code,
    },
    scalar_relational={
        "amount": lambda r: money_str(r.inv.total),
        "invoiceTotalAmount": lambda r: money_str(r.inv.total),
        "invoiceTotalPreTaxAmount": lambda r: money_str(r.inv.pre_tax),
        "invoiceTotalOneTimeAmount": lambda r: money_str(r.inv.one_time),
        "invoiceTotalOneTimeTaxAmount": lambda r: money_str(r.inv.one_time_tax),
        "invoiceTotalRecurringAmount": lambda r: money_str(r.inv.recurring),
        "invoiceTotalRecurringTaxAmount": lambda r: money_str(r.inv.recurring_tax),
        "payment": lambda r: money_str(r.inv.payments),
        "itemCount": lambda r: r.inv.item_count,
        "invoiceTopLevelItemCount": lambda r: r.inv.top_level_count,
        "paymentCount": lambda r: 1 if r.inv.payments else 0,
    },
    relational={
        "items": Rel("SoftLayer_Billing_Invoice_Item", invoice_all_items, many=True),
        "invoiceTopLevelItems": Rel(
            "SoftLayer_Billing_Invoice_Item", invoice_top_level_items, many=True
        ),
        # SLDN Billing_Invoice: "Exchange rate used for billing this invoice"; absent on a
        # USD account's invoices (INFERRED: no capture shows either case).
        "localCurrencyExchangeRate": Rel(
            "SoftLayer_Billing_Currency_ExchangeRate",
            lambda r: _exchange_rate_or_missing(r.acct.invoice_exchange_rate(r.inv)),
        ),
    },
)

# -- SoftLayer_Billing_Info ------------------------------------------------------------------------

# Properties and types from softlayer-go datatypes/billing.go (Billing_Info, Billing_Info_Cycle);
# no captured response exists, so dates use the format of every other SoftLayer date.


def _previous_bill(acct: SimAccount) -> int:
    return acct.previous_anniversary(acct.cycle_start)


def _last_payment(acct: SimAccount) -> str | None:
    paid = [inv.closed for inv in acct.invoices if inv.closed is not None and inv.payments > 0]
    return date_str(max(paid)) if paid else None


BILLING_INFO_CYCLE = TypeDef(
    "SoftLayer_Billing_Info_Cycle",
    local={
        "currentCycleStartDate": lambda a: date_str(a.cycle_start),
        "currentCycleEndDate": lambda a: date_str(a.next_bill),
        "nextCycleStartDate": lambda a: date_str(a.next_bill),
        "previousCycleStartDate": lambda a: date_str(_previous_bill(a)),
        "previousCycleEndDate": lambda a: date_str(a.cycle_start),
    },
)

BILLING_INFO = TypeDef(
    "SoftLayer_Billing_Info",
    local={
        "accountId": lambda a: a.id,
        "anniversaryDayOfMonth": lambda a: a.anniversary_day,
        "createDate": lambda a: date_str(a.created),
        "id": lambda a: 900_000 + a.index,
        "lastBillDate": lambda a: date_str(a.cycle_start),
        "lastPaymentDate": _last_payment,
        "modifyDate": lambda a: date_str(a.created),
        "nextBillDate": lambda a: date_str(a.next_bill),
        # SLDN Billing_Info: "The payment terms for an account" (integer); the softlayer-cli
        # captures send null, which the simulator does for accounts paying by card.
        "paymentTerms": lambda a: a.payment_terms(),
        # "The percentage discount received on all one-time / recurring charges on a
        # customer's monthly bill" (integers; captures show 0 and 100).
        "percentDiscountOnetime": lambda a: a.one_time_discount,
        "percentDiscountRecurring": lambda a: a.recurring_discount,
    },
    relational={
        "currentBillingCycle": Rel("SoftLayer_Billing_Info_Cycle", lambda a: a),
        # "Currency to be used by this customer account."
        "currency": Rel(
            "SoftLayer_Billing_Currency", lambda a: CurrencyRef(a.currency, a.accrued_h * 3600)
        ),
    },
)

# -- SoftLayer_Account -----------------------------------------------------------------------------


def _next(ref: AccountRef, which: int) -> int:
    return ref.acct.next_totals()[which]


def _balance(ref: AccountRef) -> int:
    return sum(inv.total - inv.payments for inv in ref.acct.invoices)


def account_invoices(ref: AccountRef) -> list[InvoiceRef]:
    """Every invoice, oldest first (SoftLayer's default order)."""
    return [InvoiceRef(ref.acct, inv) for inv in ref.acct.invoices]


def next_invoice_items(ref: AccountRef) -> Sequence[BillingItemRef]:
    """Top-level items on the next invoice, in id order."""
    return LazyRows(ref.acct.active_rows(), lambda row: BillingItemRef(ref.acct, row))


def all_top_level_items(ref: AccountRef) -> Sequence[BillingItemRef]:
    """Every top-level item, cancelled ones included."""
    return LazyRows(range(ref.acct.item_count), lambda row: BillingItemRef(ref.acct, row))


def pending_invoice(ref: AccountRef) -> Any:
    """Return the pending invoice reference, or MISSING."""
    inv = ref.acct.pending()
    return InvoiceRef(ref.acct, inv) if inv is not None else MISSING


def latest_recurring_invoice(ref: AccountRef) -> Any:
    """Return the latest RECURRING invoice reference, or MISSING."""
    inv = ref.acct.latest_recurring()
    return InvoiceRef(ref.acct, inv) if inv is not None else MISSING


def latest_recurring_pending_invoice(ref: AccountRef) -> Any:
    """Return the latest RECURRING invoice if it is still OPEN, or MISSING."""
    inv = ref.acct.latest_recurring()
    if inv is None or inv.status_code != "OPEN":
        return MISSING
    return InvoiceRef(ref.acct, inv)


def _pending_amount(ref: AccountRef, attr: str) -> Any:
    inv = ref.acct.pending()
    return money_num(getattr(inv, attr)) if inv is not None else MISSING


def _count(name: str) -> Getter:
    return lambda ref: ref.acct.count_properties()[name]


_COUNT_NAMES: Final = (
    "blockDeviceTemplateGroupCount",
    "dedicatedHostCount",
    "domainCount",
    "hardwareCount",
    "networkStorageCount",
    "networkVlanCount",
    "openTicketCount",
    "subnetCount",
    "userCount",
    "virtualGuestCount",
)

ACCOUNT = TypeDef(
    "SoftLayer_Account",
    local={
        "id": lambda r: r.acct.id,
        "companyName": lambda r: r.acct.company_name,
        "accountStatusId": lambda r: r.acct.account_status_id,
        "brandId": lambda r: r.acct.brand_id,
        "country": lambda r: r.acct.country,
        "createDate": lambda r: date_str(r.acct.created),
        "statusDate": lambda r: None,
    },
    scalar_relational={
        "balance": lambda r: money_num(_balance(r)),
        # "pre-tax total amount of an account's next invoice" (SLDN getNextInvoiceTotalAmount):
        # after the account discounts, platform services included (INFERRED, see
        # SimAccount._apply_account_terms).
        "nextInvoiceTotalAmount": lambda r: money_num(
            _next(r, 0) + _next(r, 1) + r.acct.platform_services
        ),
        "nextInvoiceTotalRecurringAmount": lambda r: money_num(_next(r, 0)),
        # softlayer-go datatypes/account.go; every recurring amount is eligible (INFERRED).
        "nextInvoiceTotalRecurringAmountBeforeAccountDiscount": lambda r: money_num(
            r.acct.next_totals_before_discount()[0]
        ),
        "nextInvoiceRecurringAmountEligibleForAccountDiscount": lambda r: money_num(
            r.acct.next_totals_before_discount()[0]
        ),
        # "The pre-tax platform services total amount of an account's next invoice."
        "nextInvoicePlatformServicesTotalAmount": lambda r: money_num(r.acct.platform_services),
        "nextInvoiceTotalTaxableRecurringAmount": lambda r: money_num(
            _next(r, 0) if r.acct.tax_bp else 0
        ),
        "nextInvoiceTotalOneTimeAmount": lambda r: money_num(_next(r, 1)),
        "nextInvoiceTotalRecurringTaxAmount": lambda r: money_num(_next(r, 2)),
        "nextInvoiceTotalOneTimeTaxAmount": lambda r: money_num(_next(r, 3)),
        "nextInvoiceTopLevelBillingItemCount": lambda r: _next(r, 4),
        "pendingInvoiceTotalAmount": lambda r: _pending_amount(r, "total"),
        "pendingInvoiceTotalRecurringAmount": lambda r: _pending_amount(r, "recurring"),
        "pendingInvoiceTotalRecurringTaxAmount": lambda r: _pending_amount(r, "recurring_tax"),
        "pendingInvoiceTotalOneTimeAmount": lambda r: _pending_amount(r, "one_time"),
        "pendingInvoiceTotalOneTimeTaxAmount": lambda r: _pending_amount(r, "one_time_tax"),
        "invoiceCount": lambda r: len(r.acct.invoices),
        "allTopLevelBillingItemCount": lambda r: r.acct.item_count,
        **{name: _count(name) for name in _COUNT_NAMES},
    },
    relational={
        # softlayer-go datatypes/account.go: "An account's status presented in a more
        # detailed data type."
        "accountStatus": Rel("SoftLayer_Account_Status", lambda r: r.acct),
        "billingInfo": Rel("SoftLayer_Billing_Info", lambda r: r.acct),
        "pendingInvoice": Rel("SoftLayer_Billing_Invoice", pending_invoice),
        "latestRecurringInvoice": Rel("SoftLayer_Billing_Invoice", latest_recurring_invoice),
        "latestRecurringPendingInvoice": Rel(
            "SoftLayer_Billing_Invoice", latest_recurring_pending_invoice
        ),
        "invoices": Rel("SoftLayer_Billing_Invoice", account_invoices, many=True),
        "openRecurringInvoices": Rel(
            "SoftLayer_Billing_Invoice",
            lambda r: [
                i
                for i in account_invoices(r)
                if i.inv.status_code == "OPEN" and i.inv.type_code == "RECURRING"
            ],
            many=True,
        ),
        "nextInvoiceTopLevelBillingItems": Rel(
            "SoftLayer_Billing_Item", next_invoice_items, many=True
        ),
        "allTopLevelBillingItems": Rel("SoftLayer_Billing_Item", all_top_level_items, many=True),
    },
)

TYPES: Final[dict[str, TypeDef]] = {
    t.name: t
    for t in (
        ACCOUNT,
        ACCOUNT_STATUS,
        BILLING_CURRENCY,
        BILLING_INFO,
        BILLING_INFO_CYCLE,
        EXCHANGE_RATE,
        INVOICE,
        INVOICE_ITEM,
        BILLING_ITEM,
        PRODUCT_ITEM_CATEGORY,
        LOCATION,
        ORDER_ITEM,
        ORDER,
        USER_CUSTOMER,
        USER_STATUS,
    )
}


class LazyRows(Sequence[Any]):
    """A read-only sequence that builds each element from an index only when asked."""

    __slots__ = ("_indices", "_make")

    def __init__(self, indices: Sequence[int], make: Callable[[int], Any]) -> None:
        self._indices = indices
        self._make = make

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._make(i) for i in self._indices[index]]
        return self._make(self._indices[index])
