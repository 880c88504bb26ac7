"""The baseline refresh: what one would write with the official ``softlayer`` client.

Synchronous, one request at a time, ``client.call(..., iter=True, limit=<page size>)`` for the
paged lists (which returns the whole list), then the same aggregation our exporter publishes:
per-category totals of the next invoice (folded to the top N) and invoice counts and amounts
per (type, status) inside the look-back window. The masks and the invoice filter are our
poller's own, passed in as a :class:`Request` that the driver builds
(:func:`benchmarks.refresh.poller_request`), so both sides ask for the same data with the same
page size while this process imports nothing of ours: its memory is the official client's.

The only addition to plain client usage is a retry on the API's rate-limit fault; without it
the baseline aborts on the first ``RateLimitExceeded`` at low latencies, which would make the
comparison meaningless rather than fair. Retries are counted and reported.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypedDict

import SoftLayer  # type: ignore[import-untyped]
from SoftLayer import transports

__all__ = ["BaselineResult", "Request", "refresh"]


class Request(TypedDict):
    """What our poller asks for (JSON from the driver): masks, and the window's filter."""

    since: float
    account_mask: str
    invoice_mask: str
    invoice_filter: dict[str, Any]
    item_mask: str


class RateLimitRetry:
    """Wraps the REST transport and retries the API's rate-limit fault with a short backoff."""

    def __init__(self, transport: Any) -> None:
        # create_client_from_env looks for ``.transport`` to pick the auth driver.
        self.transport = transport
        self.retries = 0

    def __call__(self, request: Any) -> Any:
        delay = 0.05
        while True:
            try:
                return self.transport(request)
            except SoftLayer.SoftLayerAPIError as error:
                if "rate limit" not in str(error.faultString).lower() or self.retries > 10_000:
                    raise
                self.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


@dataclass
class BaselineResult:
    """What the baseline refresh produced, in the shape the driver compares."""

    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    folded_categories: int = 0
    item_count: int = 0
    window_counts: dict[str, int] = field(default_factory=dict)
    window_amount: Decimal = Decimal(0)
    since: float = 0.0
    retries: int = 0


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


ORDER_BY_ID = {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}


def refresh(
    endpoint: str,
    username: str,
    api_key: str,
    *,
    page_size: int,
    request: Request,
    top_categories: int,
    timeout: float = 120.0,
) -> BaselineResult:
    """One full refresh of one account, the way the official client is meant to be used."""
    transport = RateLimitRetry(transports.RestTransport(endpoint_url=endpoint, timeout=timeout))
    client = SoftLayer.create_client_from_env(
        username=username, api_key=api_key, endpoint_url=endpoint, transport=transport
    )
    result = BaselineResult()

    # One getObject feeds account totals, the latest recurring and the pending invoice.
    client.call("Account", "getObject", mask=request["account_mask"])

    result.since = request["since"]
    since = datetime.fromtimestamp(result.since, tz=UTC)
    invoices = client.call(
        "Account",
        "getInvoices",
        iter=True,
        limit=page_size,
        mask=request["invoice_mask"],
        filter=request["invoice_filter"],
    )
    for invoice in invoices:
        created = datetime.fromisoformat(invoice["createDate"])
        if created < since:  # the filter asked for a day more; cut exactly here
            continue
        key = f"{invoice['typeCode']}/{invoice['statusCode']}"
        result.window_counts[key] = result.window_counts.get(key, 0) + 1
        result.window_amount += _money(invoice.get("invoiceTotalAmount"))

    items = client.call(
        "Account",
        "getNextInvoiceTopLevelBillingItems",
        iter=True,
        limit=page_size,
        mask=request["item_mask"],
        filter={"nextInvoiceTopLevelBillingItems": {"id": ORDER_BY_ID}},
    )
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    hourly: dict[str, int] = defaultdict(int)
    monthly: dict[str, int] = defaultdict(int)
    names: dict[str, str] = {}
    for item in items:
        code = item.get("categoryCode") or "unknown"
        amounts[code] += _money(item.get("nextInvoiceTotalRecurringAmount"))
        if item.get("hourlyFlag"):
            hourly[code] += 1
        else:
            monthly[code] += 1
        names[code] = (item.get("category") or {}).get("name") or code
    result.item_count = len(items)

    ranked = sorted(amounts, key=lambda code: (-amounts[code], code))
    for code in ranked[:top_categories]:
        result.categories[code] = {
            "name": names[code],
            "amount": amounts[code],
            "hourly": hourly[code],
            "monthly": monthly[code],
        }
    rest = ranked[top_categories:]
    if rest:
        result.folded_categories = len(rest)
        result.categories["other"] = {
            "name": "other",
            "amount": sum((amounts[c] for c in rest), Decimal(0)),
            "hourly": sum(hourly[c] for c in rest),
            "monthly": sum(monthly[c] for c in rest),
        }
    result.retries = transport.retries
    return result
