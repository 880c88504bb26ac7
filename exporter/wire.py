"""Parsing SoftLayer wire JSON into the snapshot records of :mod:`exporter.snapshot`.

The wire is loose (real bodies in ``tests/samples/``, provenance in its ``INDEX.md``):
decimals come as strings (``".048"``) or as JSON numbers (softlayer-go's
``datatypes.Float64.UnmarshalJSON`` accepts both for that reason), dates carry varying UTC
offsets, unset properties are ``null`` or simply absent, and ``pendingInvoice`` is missing
when no invoice is open. Everything here either
returns records whose numbers are exactly what the wire said, or raises :class:`DecodeError`
naming the offending path. Nothing guesses: a missing amount is an error, never a zero.

The JSON must be decoded with ``parse_float=Decimal`` (as the client does) so that numbers
such as ``40.32`` never pass through binary floating point. A JSON number may still carry
the noise of a binary double computed on SoftLayer's side (``19.080000000000002`` is what
``.024 * 318`` is as a double): amounts are therefore rounded, half-even, to
:data:`AMOUNT_PLACES` decimal places (one micro-dollar), which recovers the intended value
of every amount below a billion dollars and changes no amount SoftLayer documents.

Next-invoice items and invoice lists arrive page by page; :class:`CategoryAggregator` and
:class:`InvoiceWindowAggregator` fold each page into running totals, so the items of a
100,000-item account are never all held at once.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from pyroaring import BitMap64

from exporter.finops.masks import (
    ACCOUNT_EXTRA_FIELDS,
    BILLING_INFO_EXTRA_FIELDS,
    NEXT_INVOICE_ITEM_EXTRA_FIELDS,
)
from exporter.snapshot import (
    INVOICE_STATUSES,
    INVOICE_TYPES,
    MAX_UNDOCUMENTED_CODES,
    OTHER_CATEGORY,
    UNKNOWN_CODE,
    AccountSummary,
    BillingCycle,
    CategoryTotals,
    InvoiceSummary,
    InvoiceWindow,
    NextInvoiceBreakdown,
    PendingInvoice,
    code_label,
)

__all__ = [
    "ACCOUNT_FIELDS",
    "ACCOUNT_MASK",
    "AMOUNT_PLACES",
    "FINAL_STATUSES",
    "INVOICE_FIELDS",
    "NEXT_INVOICE_ITEM_MASK",
    "RECURRING_TOTAL_MASK",
    "WINDOW_INVOICE_MASK",
    "CategoryAggregator",
    "DecodeError",
    "InvoiceWindowAggregator",
    "ItemObserver",
    "ParsedItem",
    "WindowInvoice",
    "account_mask",
    "accrual",
    "accrue_categories",
    "add_new_ids",
    "fold_categories",
    "parse_account_summary",
    "parse_billing_cycle",
    "parse_bool",
    "parse_datetime",
    "parse_decimal",
    "parse_int",
    "parse_invoice",
    "parse_latest_recurring_invoice",
    "parse_pending_invoice",
    "parse_recurring_total",
    "parse_window_invoice",
    "parse_window_invoices",
    "project_breakdown",
]

#: Billing_Invoice properties behind :class:`InvoiceSummary`. Naming local properties drops
#: the other local ones (address, names...) from the payload.
INVOICE_FIELDS: Final = (
    "id,typeCode,statusCode,createDate,closedDate,invoiceTotalAmount,invoiceTotalPreTaxAmount,"
    "invoiceTotalRecurringAmount,invoiceTotalOneTimeAmount,invoiceTotalOneTimeTaxAmount,"
    "invoiceTotalRecurringTaxAmount,payment,itemCount"
)
#: SoftLayer_Billing_Info properties behind :class:`BillingCycle` (softlayer-go
#: ``datatypes/billing.go``: ``lastBillDate`` "the date on which an account was last
#: billed", ``nextBillDate`` "the date on which an account will be billed next").
BILLING_INFO_FIELDS: Final = "anniversaryDayOfMonth,lastBillDate,nextBillDate"
#: The next invoice's recurring total before account discounts (see
#: :attr:`AccountSummary.items_recurring_usd`).
_BEFORE_DISCOUNT: Final = "nextInvoiceTotalRecurringAmountBeforeAccountDiscount"
#: ``getObject`` properties behind :class:`AccountSummary` (its billing cycle aside).
ACCOUNT_FIELDS: Final = (
    "id,companyName,balance,nextInvoiceTotalAmount,nextInvoiceTotalRecurringAmount,"
    "nextInvoiceTotalOneTimeAmount,nextInvoiceTotalOneTimeTaxAmount,"
    "nextInvoiceTotalRecurringTaxAmount,nextInvoiceTopLevelBillingItemCount,"
    f"{_BEFORE_DISCOUNT}"
)


def account_mask(
    *, summary: bool = True, latest: bool = True, pending: bool = True, billing: bool = True
) -> str:
    """Build the ``getObject`` mask of the parts asked for.

    ``summary`` (:class:`AccountSummary`), ``latest`` and ``pending`` (the invoices),
    ``billing`` (:class:`exporter.finops.records.BillingProfile`): the billing cycle and the
    billing profile share one ``billingInfo[...]``.
    """
    parts = [ACCOUNT_FIELDS] if summary else []
    info = [BILLING_INFO_FIELDS] if summary else []
    if billing:
        parts.append(
            ACCOUNT_EXTRA_FIELDS if summary else f"{ACCOUNT_EXTRA_FIELDS},{_BEFORE_DISCOUNT}"
        )
        info.append(BILLING_INFO_EXTRA_FIELDS)
    if info:
        parts.append(f"billingInfo[{','.join(info)}]")
    if latest:
        parts.append(f"latestRecurringInvoice[{INVOICE_FIELDS}]")
    if pending:
        parts.append(f"pendingInvoice[{INVOICE_FIELDS}]")
    return f"mask[{','.join(parts)}]"


#: One ``SoftLayer_Account::getObject`` feeds four sources: account, latest recurring
#: invoice, pending invoice and billing info (see docs/metrics.md, "Sources").
ACCOUNT_MASK: Final = account_mask()
#: Only the next invoice's recurring total: re-read after an item walk (exporter.steady).
RECURRING_TOTAL_MASK: Final = f"mask[nextInvoiceTotalRecurringAmount,{_BEFORE_DISCOUNT}]"
#: ``getInvoices`` inside the look-back window: only what the per-type/status sums and the
#: last payment failure need.
WINDOW_INVOICE_MASK: Final = "mask[id,typeCode,statusCode,createDate,closedDate,invoiceTotalAmount]"
#: ``getNextInvoiceTopLevelBillingItems``: ``nextInvoiceTotalRecurringAmount`` includes the
#: children, so the children themselves are never fetched. For an hourly item it is the
#: month-to-date accrual (softlayer-cli fixture ``SoftLayer_Virtual_Guest/getObject.json``:
#: ``.036 x 318 h`` for the guest plus ``.024 x 318 h`` for its RAM child), so ``hoursUsed``
#: (month to date, a string) gives the item's effective hourly rate, children included.
NEXT_INVOICE_ITEM_MASK: Final = (
    "mask[id,categoryCode,hourlyFlag,hoursUsed,hourlyRecurringFee,"
    f"nextInvoiceTotalRecurringAmount,category[name],{NEXT_INVOICE_ITEM_EXTRA_FIELDS}]"
)
#: Decimal places every amount is rounded to (see the module docstring).
AMOUNT_PLACES: Final = 6

#: Amounts beyond a quadrillion dollars are not billing data. With :data:`AMOUNT_PLACES`, the
#: bound keeps every sum and difference exact even in Decimal's default 28-digit context.
_MAX_AMOUNT_DIGITS: Final = 15
_QUANTUM: Final = Decimal(1).scaleb(-AMOUNT_PLACES)
_MAX_INT: Final = 2**63
_DECIMAL_STRING = re.compile(r"[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})")
_INT_STRING = re.compile(r"[+-]?\d{1,19}")
#: Sums run in a context wide enough that adding bounded amounts never rounds.
_SUM: Final = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.Overflow])
#: Rates (an amount divided by hours) keep 34 significant digits, far below a micro-dollar.
_RATE: Final = decimal.Context(prec=34, traps=[decimal.InvalidOperation, decimal.Overflow])
_SHOWN_CHARS: Final = 40


class DecodeError(ValueError):
    """A response that does not have the shape or types the exporter relies on."""

    reason: Final = "decode"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _describe(value: object) -> str:
    """Describe an unexpected wire value briefly (bounded length)."""
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
        return f"string {shown!r}"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if value is None:
        return "null"
    return f"{type(value).__name__} {str(value)[:_SHOWN_CHARS]}"


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(path, f"expected an object, got {_describe(value)}")
    return value


def _field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise DecodeError(f"{path}.{key}" if path else key, "missing")
    return obj[key]


def parse_decimal(value: Any, path: str) -> Decimal:
    """Parse a USD amount from a decimal string (``".048"``, ``"-5"``) or a JSON number."""
    result = _to_decimal(value, path)
    if not result.is_finite():
        raise DecodeError(path, f"expected a finite decimal, got {_describe(value)}")
    # adjusted() compares magnitudes without arithmetic, which could overflow the context.
    if not result.is_zero() and result.adjusted() >= _MAX_AMOUNT_DIGITS:
        raise DecodeError(path, "amount out of range")
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_PLACES:
        # Binary-double noise (19.080000000000002): see the module docstring.
        result = result.quantize(_QUANTUM, rounding=decimal.ROUND_HALF_EVEN, context=_SUM)
    if result.is_zero():
        return Decimal(0)  # no "-0" on the wire or in the exposition
    return result


def _to_decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool):
        raise DecodeError(path, f"expected a decimal, got {_describe(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if abs(value) >= 10**_MAX_AMOUNT_DIGITS:
            raise DecodeError(path, "amount out of range")
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError(path, f"expected a finite decimal, got {_describe(value)}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_STRING.fullmatch(text):
            raise DecodeError(path, f"expected a decimal, got {_describe(value)}")
        result = Decimal(text)
    else:
        raise DecodeError(path, f"expected a decimal, got {_describe(value)}")
    return result


def parse_int(value: Any, path: str, *, minimum: int = 0) -> int:
    """Parse an id or count: a JSON integer (or an integral decimal, or a digit string)."""
    if isinstance(value, bool):
        raise DecodeError(path, f"expected an integer, got {_describe(value)}")
    if isinstance(value, int):
        result = value
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and (value.is_zero() or value.adjusted() < 19)
        and value == value.to_integral_value()
    ):
        result = int(value)
    elif isinstance(value, str) and _INT_STRING.fullmatch(value.strip()):
        result = int(value.strip())
    else:
        raise DecodeError(path, f"expected an integer, got {_describe(value)}")
    if not minimum <= result < _MAX_INT:
        raise DecodeError(path, f"integer out of range: {result}")
    return result


def parse_bool(value: Any, path: str) -> bool:
    """Parse a flag: JSON true/false, or the 0/1 integers some SoftLayer flags use."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise DecodeError(path, f"expected a boolean, got {_describe(value)}")


def parse_str(value: Any, path: str) -> str:
    """Parse a string property."""
    if not isinstance(value, str):
        raise DecodeError(path, f"expected a string, got {_describe(value)}")
    return value


def parse_datetime(value: Any, path: str) -> datetime:
    """Parse an ISO-8601 timestamp with an offset (``2021-11-24T15:07:42-06:00``)."""
    if not isinstance(value, str) or len(value) > 64:
        raise DecodeError(path, f"expected a timestamp, got {_describe(value)}")
    try:
        result = datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError(path, f"expected a timestamp, got {_describe(value)}") from None
    if result.tzinfo is None or result.utcoffset() is None:
        # A wall-clock time without an offset is ambiguous; guessing would shift it by hours.
        raise DecodeError(path, f"timestamp without a UTC offset: {_describe(value)}")
    return result


def _optional_datetime(value: Any, path: str) -> datetime | None:
    return None if value is None else parse_datetime(value, path)


def _sum(*amounts: Decimal) -> Decimal:
    total = Decimal(0)
    for amount in amounts:
        total = _SUM.add(total, amount)
    return total


def parse_invoice(value: Any, path: str) -> InvoiceSummary:
    """One Billing_Invoice fetched with :data:`INVOICE_FIELDS`."""
    obj = _object(value, path)

    def money(key: str) -> Decimal:
        return parse_decimal(_field(obj, key, path), f"{path}.{key}")

    # The fields a look-back window counts are the first of the full summary.
    head = parse_window_invoice(obj, path)
    return InvoiceSummary(
        invoice_id=head.invoice_id,
        type_code=head.type_code,
        status_code=head.status_code,
        created=head.created,
        closed=head.closed,
        total_usd=head.total_usd,
        pre_tax_usd=money("invoiceTotalPreTaxAmount"),
        recurring_usd=money("invoiceTotalRecurringAmount"),
        one_time_usd=money("invoiceTotalOneTimeAmount"),
        tax_usd=_sum(
            money("invoiceTotalOneTimeTaxAmount"), money("invoiceTotalRecurringTaxAmount")
        ),
        # SoftLayer leaves ``payment`` null on invoices nothing was paid on yet.
        payments_usd=(
            Decimal(0)
            if obj.get("payment") is None
            else parse_decimal(obj["payment"], f"{path}.payment")
        ),
        item_count=parse_int(_field(obj, "itemCount", path), f"{path}.itemCount"),
    )


def _month_before(moment: datetime) -> datetime:
    """Return the same wall time a calendar month earlier (day clamped to the month's end)."""
    year, month = (moment.year - 1, 12) if moment.month == 1 else (moment.year, moment.month - 1)
    return moment.replace(year=year, month=month, day=min(moment.day, _days_in(year, month)))


def _days_in(year: int, month: int) -> int:
    following = datetime(year + (month == 12), month % 12 + 1, 1)
    return (following - datetime(year, month, 1)).days


def parse_billing_cycle(value: Any, path: str = "account.billingInfo") -> BillingCycle | None:
    """Parse ``billingInfo[...]`` of :data:`BILLING_INFO_FIELDS`; ``None`` without a next bill.

    An account billed otherwise than monthly (or a user without access to billing info) has
    no ``billingInfo`` or no ``nextBillDate``: then there is no cycle to export.
    """
    if value is None:
        return None
    info = _object(value, path)
    end = _optional_datetime(info.get("nextBillDate"), f"{path}.nextBillDate")
    if end is None:
        return None
    start = _optional_datetime(info.get("lastBillDate"), f"{path}.lastBillDate")
    if start is None or start >= end:
        # The cycle is the month up to the anniversary (SoftLayer bills monthly on
        # anniversaryDayOfMonth); lastBillDate is missing on accounts never billed yet.
        start = _month_before(end)
    return BillingCycle(start=start, end=end)


def parse_account_summary(value: Any) -> AccountSummary:
    """Parse the account source from getObject fetched with :data:`ACCOUNT_MASK`."""
    obj = _object(value, "account")

    def money(key: str) -> Decimal:
        return parse_decimal(_field(obj, key, "account"), f"account.{key}")

    company = obj.get("companyName")
    return AccountSummary(
        account_id=parse_int(_field(obj, "id", "account"), "account.id"),
        company_name="" if company is None else parse_str(company, "account.companyName"),
        balance_usd=money("balance"),
        next_invoice_pre_tax_usd=money("nextInvoiceTotalAmount"),
        next_invoice_recurring_usd=money("nextInvoiceTotalRecurringAmount"),
        next_invoice_one_time_usd=money("nextInvoiceTotalOneTimeAmount"),
        next_invoice_tax_usd=_sum(
            money("nextInvoiceTotalOneTimeTaxAmount"), money("nextInvoiceTotalRecurringTaxAmount")
        ),
        next_invoice_item_count=parse_int(
            _field(obj, "nextInvoiceTopLevelBillingItemCount", "account"),
            "account.nextInvoiceTopLevelBillingItemCount",
        ),
        billing_cycle=parse_billing_cycle(obj.get("billingInfo")),
        next_invoice_recurring_before_discount_usd=_optional_money(obj, _BEFORE_DISCOUNT),
    )


def parse_recurring_total(value: Any) -> Decimal:
    """Parse getObject with RECURRING_TOTAL_MASK as :attr:`AccountSummary.items_recurring_usd`."""
    obj = _object(value, "account")
    before = _optional_money(obj, _BEFORE_DISCOUNT)
    if before is not None:
        return before
    key = "nextInvoiceTotalRecurringAmount"
    return parse_decimal(_field(obj, key, "account"), f"account.{key}")


def _optional_money(obj: Mapping[str, Any], key: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else parse_decimal(value, f"account.{key}")


def parse_latest_recurring_invoice(value: Any) -> InvoiceSummary | None:
    """Parse the latest RECURRING invoice; ``None`` for an account that never had one."""
    obj = _object(value, "account")
    invoice = obj.get("latestRecurringInvoice")
    if invoice is None:
        return None
    return parse_invoice(invoice, "account.latestRecurringInvoice")


def parse_pending_invoice(value: Any) -> PendingInvoice:
    """Parse the open invoice; the key is absent (or null) when none is open (normal)."""
    obj = _object(value, "account")
    invoice = obj.get("pendingInvoice")
    if invoice is None:
        return PendingInvoice(invoice=None)
    return PendingInvoice(invoice=parse_invoice(invoice, "account.pendingInvoice"))


def _page_list(page: Any, path: str) -> list[Any]:
    # Some list methods send a bare object instead of a one-element array.
    if isinstance(page, dict):
        return [page]
    if not isinstance(page, list):
        raise DecodeError(path, f"expected a list, got {_describe(page)}")
    return page


def add_new_ids(seen: BitMap64, ids: list[int]) -> list[bool]:
    """Add ``ids`` to ``seen``; for each, whether it was new (not stored, not earlier in ``ids``).

    Pages of a changing account can overlap, so an item must count once however often it
    comes back. A ``set[int]`` of the ids held ~70 bytes per id (14 MiB at 200k items, the one
    thing in a refresh that grew with the account); a roaring bitmap holds sparse ids in 1-2
    bytes each (0.21 MiB for 200k ids at the simulator's stride of 8; docs/performance.md) and
    stays exact. Ids are non-negative and below 2**63 (:func:`parse_int`), inside
    ``BitMap64``'s unsigned 64-bit range.
    """
    flags = []
    for item_id in ids:
        new = item_id not in seen
        if new:
            seen.add(item_id)
        flags.append(new)
    return flags


@dataclass
class _Category:
    name: str
    amount: Decimal
    hourly: int
    monthly: int
    hourly_amount: Decimal
    hourly_rate: Decimal


def _hourly_rate(item: Mapping[str, Any], accrued: Decimal, where: str) -> Decimal:
    """Effective hourly rate of an hourly item, children included.

    ``nextInvoiceTotalRecurringAmount`` (children included) over ``hoursUsed`` (month to
    date). An item with no hour used yet this cycle has accrued nothing to divide: its own
    ``hourlyRecurringFee`` is the best rate known (its children's rates are not fetched).
    """
    raw_hours = item.get("hoursUsed")
    hours = None if raw_hours is None else parse_decimal(raw_hours, f"{where}.hoursUsed")
    if hours is not None and hours < 0:
        raise DecodeError(f"{where}.hoursUsed", "negative")
    if hours:
        return _RATE.divide(accrued, hours)
    return parse_decimal(_field(item, "hourlyRecurringFee", where), f"{where}.hourlyRecurringFee")


#: One item as :class:`CategoryAggregator` parsed it: ``(id, categoryCode, amount, hourly
#: rate or None for a monthly item, category name)``; ``amount`` is
#: ``nextInvoiceTotalRecurringAmount``, children included.
ParsedItem = tuple[int, str, Decimal, Decimal | None, str]
#: Sees each page once, after deduplication: ``(rows, parsed, fresh, path)``, where
#: ``parsed[i]`` is ``rows[i]`` parsed and ``fresh[i]`` says whether it is new to the walk.
ItemObserver = Callable[[list[Any], list[ParsedItem], list[bool], str], None]


class CategoryAggregator:
    """Running per-category totals of next-invoice top-level billing items.

    Feed pages in any order with :meth:`add_page`; each item counts once even if paging over
    a changing account returns it twice. Only the totals are kept, never the items.
    ``observer`` (e.g. :class:`exporter.finops.items.ItemInsightsAggregator`) sees every
    page once, parsed and deduplicated, before the totals take it.
    """

    def __init__(self, observer: ItemObserver | None = None) -> None:
        self._categories: dict[str, _Category] = {}
        self._seen = BitMap64()
        self._observer = observer

    @property
    def item_count(self) -> int:
        """Distinct top-level items aggregated so far."""
        return len(self._seen)

    def add_page(self, page: Any, path: str = "items") -> int:
        """Fold one page (a list of Billing_Item objects) into the totals.

        Returns how many of its items were new (not on an earlier page).
        """
        parsed: list[ParsedItem] = []
        rows = _page_list(page, path)
        for index, raw in enumerate(rows):
            where = f"{path}[{index}]"
            item = _object(raw, where)
            item_id = parse_int(_field(item, "id", where), f"{where}.id")
            code = parse_str(_field(item, "categoryCode", where), f"{where}.categoryCode")
            if not code:
                raise DecodeError(f"{where}.categoryCode", "empty")
            amount = parse_decimal(
                _field(item, "nextInvoiceTotalRecurringAmount", where),
                f"{where}.nextInvoiceTotalRecurringAmount",
            )
            hourly = parse_bool(_field(item, "hourlyFlag", where), f"{where}.hourlyFlag")
            rate = _hourly_rate(item, amount, where) if hourly else None
            name = ""
            category = item.get("category")
            if category is not None:
                raw_name = _object(category, f"{where}.category").get("name")
                if raw_name is not None:
                    name = parse_str(raw_name, f"{where}.category.name")
            parsed.append((item_id, code, amount, rate, name))
        # One page of parsed items at a time (bounded by the page size), deduplicated at once.
        fresh = add_new_ids(self._seen, [item[0] for item in parsed])
        if self._observer is not None:
            self._observer(rows, parsed, fresh, path)
        for (_, code, amount, rate, name), new in zip(parsed, fresh, strict=True):
            if not new:
                continue
            totals = self._categories.get(code)
            if totals is None:
                totals = self._categories[code] = _Category(
                    name, Decimal(0), 0, 0, Decimal(0), Decimal(0)
                )
            elif not totals.name:
                totals.name = name
            totals.amount = _SUM.add(totals.amount, amount)
            if rate is not None:
                totals.hourly += 1
                totals.hourly_amount = _SUM.add(totals.hourly_amount, amount)
                totals.hourly_rate = _SUM.add(totals.hourly_rate, rate)
            else:
                totals.monthly += 1
        return sum(fresh)

    def totals(self) -> tuple[CategoryTotals, ...]:
        """Return every category's totals, none folded, ordered by code."""
        return tuple(
            self._totals(code, self._categories[code]) for code in sorted(self._categories)
        )

    def result(self, top_n: int) -> NextInvoiceBreakdown:
        """Return the ``top_n`` categories by amount, the rest folded (see fold_categories)."""
        return fold_categories(self.totals(), top_n, self.item_count)

    @staticmethod
    def _totals(code: str, totals: _Category) -> CategoryTotals:
        return CategoryTotals(
            code=code,
            name=totals.name or code,  # SoftLayer sends "" for some categories' names
            amount_usd=totals.amount,
            hourly_items=totals.hourly,
            monthly_items=totals.monthly,
            hourly_usd=totals.hourly_amount,
            hourly_rate_usd=totals.hourly_rate,
        )


def fold_categories(
    categories: Iterable[CategoryTotals], top_n: int, item_count: int
) -> NextInvoiceBreakdown:
    """Keep the ``top_n`` categories by amount, fold the rest into ``other``.

    A category whose own code is ``other`` always goes into the folded bucket, so the label
    cannot appear twice.
    """
    by_code = {c.code: c for c in categories}
    ranked = sorted(
        (code for code in by_code if code != OTHER_CATEGORY),
        key=lambda code: (-by_code[code].amount_usd, code),
    )
    kept = ranked[: max(0, top_n)]
    folded = [c for code, c in by_code.items() if code not in kept]
    result = [by_code[code] for code in kept]
    if folded:
        result.append(
            CategoryTotals(
                code=OTHER_CATEGORY,
                name=OTHER_CATEGORY,
                amount_usd=_sum(*(part.amount_usd for part in folded)),
                hourly_items=sum(part.hourly_items for part in folded),
                monthly_items=sum(part.monthly_items for part in folded),
                hourly_usd=_sum(*(part.hourly_usd for part in folded)),
                hourly_rate_usd=_sum(*(part.hourly_rate_usd for part in folded)),
            )
        )
    return NextInvoiceBreakdown(
        categories=tuple(result), folded_categories=len(folded), item_count=item_count
    )


def accrual(hourly_rate_usd: Decimal, hours: int) -> Decimal:
    """Return what ``hours`` hours at ``hourly_rate_usd`` add, rounded to :data:`AMOUNT_PLACES`."""
    return _round(_SUM.multiply(hourly_rate_usd, hours)) if hours else Decimal(0)


def accrue_categories(
    categories: Iterable[CategoryTotals], hours: int
) -> tuple[CategoryTotals, ...]:
    """Add ``hours`` hours of hourly accrual to every category, at its effective hourly rate.

    Every running hourly item accrues the same hours, so a category's month-to-date amount
    grows by its summed effective rate per hour (softlayer-api.md section 8 item 1: amount =
    rate x ``hoursUsed``, children included). Exact as long as the items and their prices are
    those the rates were taken from; :mod:`exporter.steady` checks that before using it.
    """
    accrued = []
    for c in categories:
        extra = accrual(c.hourly_rate_usd, hours)
        accrued.append(
            c
            if not extra
            else replace(
                c,
                amount_usd=_SUM.add(c.amount_usd, extra),
                hourly_usd=_SUM.add(c.hourly_usd, extra),
            )
        )
    return tuple(accrued)


def project_breakdown(
    breakdown: NextInvoiceBreakdown, pre_tax_usd: Decimal, hours_left: Decimal
) -> NextInvoiceBreakdown:
    """Project the hourly part of every category, and the pre-tax total, to the cycle's end.

    Projected = amount so far + effective hourly rate x hours left, rounded to
    :data:`AMOUNT_PLACES`: it assumes every hourly item keeps running until the anniversary
    and nothing is ordered or cancelled meanwhile.
    """
    hours = max(Decimal(0), hours_left)
    categories = tuple(
        replace(
            c, projected_usd=_round(_SUM.add(c.amount_usd, _SUM.multiply(c.hourly_rate_usd, hours)))
        )
        for c in breakdown.categories
    )
    rate = _sum(*(c.hourly_rate_usd for c in breakdown.categories))
    projected = _round(_SUM.add(pre_tax_usd, _SUM.multiply(rate, hours)))
    return replace(breakdown, categories=categories, projected_pre_tax_usd=projected)


def _round(amount: Decimal) -> Decimal:
    rounded = amount.quantize(_QUANTUM, rounding=decimal.ROUND_HALF_EVEN, context=_SUM)
    return Decimal(0) if rounded.is_zero() else rounded


class _CodeBounds:
    """Maps type or status codes to bounded label values (see :func:`code_label`)."""

    def __init__(self, documented: tuple[str, ...]) -> None:
        self._documented = frozenset(documented)
        self.admitted: dict[str, str] = {}  # undocumented code -> its label value

    def label(self, code: str) -> str:
        if code in self._documented:
            return code
        known = self.admitted.get(code)
        if known is not None:
            return known
        shaped = code_label(code)
        undocumented = sum(1 for value in self.admitted.values() if value != UNKNOWN_CODE)
        if shaped != UNKNOWN_CODE and undocumented >= MAX_UNDOCUMENTED_CODES:
            shaped = UNKNOWN_CODE
        if len(self.admitted) < 4 * MAX_UNDOCUMENTED_CODES:  # remembered only to log once
            self.admitted[code] = shaped
        return shaped


#: Invoice statuses after which SoftLayer documents no further change: paid, or closed
#: unpaid (softlayer-api.md section 8 item 4).
FINAL_STATUSES: Final = frozenset({"CLOSED", "CLOSED_FAILED"})


@dataclass(frozen=True, slots=True)
class WindowInvoice:
    """The fields of one invoice the look-back window counts (:data:`WINDOW_INVOICE_MASK`)."""

    invoice_id: int
    type_code: str
    status_code: str
    created: datetime
    closed: datetime | None
    total_usd: Decimal

    @property
    def final(self) -> bool:
        """Whether the invoice is closed, so that nothing about it changes any more."""
        return self.status_code in FINAL_STATUSES


def parse_window_invoice(value: Any, where: str) -> WindowInvoice:
    """Parse one Billing_Invoice fetched with :data:`WINDOW_INVOICE_MASK`."""
    invoice = _object(value, where)
    return WindowInvoice(
        invoice_id=parse_int(_field(invoice, "id", where), f"{where}.id"),
        type_code=parse_str(_field(invoice, "typeCode", where), f"{where}.typeCode"),
        status_code=parse_str(_field(invoice, "statusCode", where), f"{where}.statusCode"),
        created=parse_datetime(_field(invoice, "createDate", where), f"{where}.createDate"),
        closed=_optional_datetime(invoice.get("closedDate"), f"{where}.closedDate"),
        total_usd=parse_decimal(
            _field(invoice, "invoiceTotalAmount", where), f"{where}.invoiceTotalAmount"
        ),
    )


def parse_window_invoices(page: Any, path: str = "invoices") -> list[WindowInvoice]:
    """Parse a page of Billing_Invoice objects (see :func:`parse_window_invoice`)."""
    return [
        parse_window_invoice(raw, f"{path}[{index}]")
        for index, raw in enumerate(_page_list(page, path))
    ]


class InvoiceWindowAggregator:
    """Counts and sums of invoices created since ``since``, per (type, status).

    Invoices older than ``since`` are dropped here too, because SoftLayer ignores a filter
    it cannot parse and would then send every invoice the account ever had. Type or status
    codes outside SoftLayer's documented lists are counted under their own code when it has
    the shape of a code, at most :data:`~exporter.snapshot.MAX_UNDOCUMENTED_CODES` of each,
    else under :data:`~exporter.snapshot.UNKNOWN_CODE`; :attr:`undocumented` lists them.
    """

    def __init__(self, since: datetime) -> None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        self.since = since
        self._counts = {(t, s): 0 for t in INVOICE_TYPES for s in INVOICE_STATUSES}
        self._amounts = {(t, s): Decimal(0) for t in INVOICE_TYPES for s in INVOICE_STATUSES}
        self._types = _CodeBounds(INVOICE_TYPES)
        self._statuses = _CodeBounds(INVOICE_STATUSES)
        self._last_failure: datetime | None = None
        self._seen = BitMap64()

    @property
    def undocumented(self) -> list[tuple[str, str]]:
        """``(kind, code)`` of each undocumented code seen; ``kind`` is ``type`` or ``status``."""
        return [("type", code) for code in self._types.admitted] + [
            ("status", code) for code in self._statuses.admitted
        ]

    def add_page(self, page: Any, path: str = "invoices") -> int:
        """Fold one page of Billing_Invoice objects into the window.

        Returns how many of its invoices were new (not on an earlier page), counting those
        older than the window too, so that the caller can compare with the list's total.
        """
        return self.add(parse_window_invoices(page, path))

    def add(self, invoices: list[WindowInvoice]) -> int:
        """Fold parsed invoices into the window; returns how many were new (see add_page)."""
        fresh = add_new_ids(self._seen, [invoice.invoice_id for invoice in invoices])
        for invoice, new in zip(invoices, fresh, strict=True):
            if not new or invoice.created < self.since:
                continue
            key = (self._types.label(invoice.type_code), self._statuses.label(invoice.status_code))
            self._counts[key] = self._counts.get(key, 0) + 1
            self._amounts[key] = _SUM.add(self._amounts.get(key, Decimal(0)), invoice.total_usd)
            closed = invoice.closed
            if invoice.status_code == "CLOSED_FAILED" and closed is not None:
                self._last_failure = max(closed, self._last_failure or closed)
        return sum(fresh)

    def result(self) -> InvoiceWindow:
        """Return the window: all 6 x 3 documented pairs (zeros included) and any others seen."""
        return InvoiceWindow(
            since=self.since,
            counts=MappingProxyType(dict(self._counts)),
            amounts_usd=MappingProxyType(dict(self._amounts)),
            last_payment_failure=self._last_failure,
        )
