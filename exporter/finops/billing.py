"""Billing information from the account object: currency, exchange rate, terms, discounts, status.

The poller's single ``SoftLayer_Account::getObject`` already asks for these
(:data:`exporter.finops.masks.ACCOUNT_EXTRA_FIELDS` and ``BILLING_INFO_EXTRA_FIELDS`` are part
of :data:`exporter.wire.ACCOUNT_MASK`): source ``billing_info`` costs no request of its own.

What each property is (SLDN datatype pages in softlayer/githubio_source and softlayer-go's
generated ``datatypes``):

- ``billingInfo.anniversaryDayOfMonth``: "The day of the month that a SoftLayer customer is
  billed"; ``paymentTerms``: "The payment terms for an account" (an integer without a
  documented unit; the softlayer-cli ``getObject`` captures send ``null``);
  ``percentDiscountRecurring`` / ``percentDiscountOnetime``: "The percentage discount received
  on all recurring / one-time charges on a customer's monthly bill" (integers; captures show
  0 and 100); ``currency``: "Currency to be used by this customer account", a
  SoftLayer_Billing_Currency (``keyName``, ``name``, ``currentExchangeRate``: "The current
  exchange rate", a SoftLayer_Billing_Currency_ExchangeRate with ``rate``,
  ``fundingCurrency`` and ``localCurrency``);
- ``accountStatusId`` ("A number reflecting the state of an account") and ``accountStatus``
  ("An account's status presented in a more detailed data type", ``{"id": 1001, "name":
  "Active"}`` in the softlayer-cli fixture ``getObject_missingPendingInvoice.json``);
- ``nextInvoicePlatformServicesTotalAmount``: "The pre-tax platform services total amount of
  an account's next invoice"; ``nextInvoiceTotalRecurringAmountBeforeAccountDiscount``: the
  next invoice's recurring total before the account discount (softlayer-go
  ``datatypes/account.go``). Platform services are not billing items and discounts apply to
  account totals, so neither shows in item sums (softlayer-api.md section 8 item 7).

Every amount stays USD; the currency and its rate describe how the account is billed
locally. Missing or ``null`` properties are ``None`` (their series are absent); a property of
the wrong type is a :class:`~exporter.wire.DecodeError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

from exporter.finops.records import UNKNOWN, BillingProfile, ExchangeRate
from exporter.wire import DecodeError, parse_decimal, parse_int, parse_str

__all__ = ["label_text", "parse_billing_profile", "parse_exchange_rate"]

T = TypeVar("T")
_PATH: Final = "account"
#: Label values taken from SoftLayer's own names (a currency key, a status name) are short
#: words; anything else is exported as ``unknown``.
_LABEL_TEXT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.()/-]{0,39}")


def label_text(value: str | None) -> str:
    """Return ``value`` if it can serve as a bounded label value, else ``unknown``."""
    if value is None or not _LABEL_TEXT.fullmatch(value):
        return UNKNOWN
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError(path, "expected an object")
    return value


def _optional(
    obj: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], T]
) -> T | None:
    value = obj.get(key)
    return None if value is None else parse(value, f"{path}.{key}")


def _key_name(currency: Any, path: str) -> str | None:
    obj = _mapping(currency, path)
    return None if obj is None else _optional(obj, "keyName", path, parse_str)


def parse_exchange_rate(value: Any, path: str) -> ExchangeRate | None:
    """Parse a SoftLayer_Billing_Currency_ExchangeRate (``rate`` and the two currencies)."""
    obj = _mapping(value, path)
    if obj is None or obj.get("rate") is None:
        return None
    rate = parse_decimal(obj["rate"], f"{path}.rate")
    if rate <= 0:
        raise DecodeError(f"{path}.rate", "an exchange rate must be positive")
    funding = _key_name(obj.get("fundingCurrency"), f"{path}.fundingCurrency")
    local = _key_name(obj.get("localCurrency"), f"{path}.localCurrency")
    return ExchangeRate(rate=rate, funding=label_text(funding), local=label_text(local))


def _percent(info: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    value = info.get(key)
    if value is None:
        return None
    percent = parse_decimal(value, f"{path}.{key}")
    if not 0 <= percent <= 100:
        raise DecodeError(f"{path}.{key}", f"a percentage must be within 0..100, got {percent}")
    return percent / 100


def parse_billing_profile(value: Any) -> BillingProfile:
    """Parse source ``billing_info`` from the getObject body of ``wire.ACCOUNT_MASK``."""
    account = _mapping(value, _PATH)
    if account is None:
        raise DecodeError(_PATH, "expected an object")
    info_path = f"{_PATH}.billingInfo"
    info = _mapping(account.get("billingInfo"), info_path) or {}
    currency_path = f"{info_path}.currency"
    currency = _mapping(info.get("currency"), currency_path) or {}
    # The percentages are integers on SLDN; a decimal string is accepted like every amount.
    status = _mapping(account.get("accountStatus"), f"{_PATH}.accountStatus") or {}
    anniversary = _optional(info, "anniversaryDayOfMonth", info_path, parse_int)
    if anniversary is not None and not 1 <= anniversary <= 31:
        raise DecodeError(f"{info_path}.anniversaryDayOfMonth", f"not a day: {anniversary}")
    status_id = _optional(account, "accountStatusId", _PATH, parse_int)
    status_name = _optional(status, "name", f"{_PATH}.accountStatus", parse_str)
    return BillingProfile(
        currency=_optional(currency, "keyName", currency_path, parse_str),
        currency_name=_optional(currency, "name", currency_path, parse_str),
        exchange_rate=parse_exchange_rate(
            currency.get("currentExchangeRate"), f"{currency_path}.currentExchangeRate"
        ),
        anniversary_day=anniversary,
        payment_terms=_optional(info, "paymentTerms", info_path, parse_int),
        recurring_discount_ratio=_percent(info, "percentDiscountRecurring", info_path),
        one_time_discount_ratio=_percent(info, "percentDiscountOnetime", info_path),
        account_status_id=status_id,
        account_status=status_name,
        next_invoice_platform_services_usd=_optional(
            account, "nextInvoicePlatformServicesTotalAmount", _PATH, parse_decimal
        ),
        next_invoice_recurring_before_discount_usd=_optional(
            account, "nextInvoiceTotalRecurringAmountBeforeAccountDiscount", _PATH, parse_decimal
        ),
    )
