"""Billing information parsed from the account object: shapes seen on the wire, and bad input."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.finops.billing import label_text, parse_billing_profile, parse_exchange_rate
from exporter.finops.records import ExchangeRate
from exporter.wire import DecodeError

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def account(**billing_info: Any) -> dict[str, Any]:
    return {
        "id": 307608,
        "accountStatusId": 1001,
        "accountStatus": {"id": 1001, "name": "Active"},
        "nextInvoicePlatformServicesTotalAmount": 12.5,
        "nextInvoiceTotalRecurringAmountBeforeAccountDiscount": "1000",
        "billingInfo": {
            "anniversaryDayOfMonth": 4,
            "paymentTerms": None,
            "percentDiscountOnetime": 0,
            "percentDiscountRecurring": 100,
            "currency": {
                "keyName": "EUR",
                "name": "Euro",
                "currentExchangeRate": {
                    "rate": ".9214",
                    "fundingCurrency": {"keyName": "USD"},
                    "localCurrency": {"keyName": "EUR"},
                },
            },
            **billing_info,
        },
    }


def test_capture_shapes_parse() -> None:
    """The softlayer-cli capture's shapes: null terms, integer percentages, Active status,
    decimals as numbers or strings, the rate without a leading zero."""
    profile = parse_billing_profile(account())
    assert profile.currency == "EUR"
    assert profile.currency_name == "Euro"
    assert profile.exchange_rate == ExchangeRate(Decimal(".9214"), "USD", "EUR")
    assert profile.anniversary_day == 4
    assert profile.payment_terms is None
    assert profile.recurring_discount_ratio == 1
    assert profile.one_time_discount_ratio == 0
    assert (profile.account_status_id, profile.account_status) == (1001, "Active")
    assert profile.next_invoice_platform_services_usd == Decimal("12.5")
    assert profile.next_invoice_recurring_before_discount_usd == Decimal(1000)


def test_absent_billing_info_leaves_every_field_empty() -> None:
    """A user without access to billingInfo, a USD account: None, not zero, not an error."""
    profile = parse_billing_profile({"id": 1, "billingInfo": None})
    assert profile.currency is None
    assert profile.exchange_rate is None
    assert profile.anniversary_day is None
    assert profile.recurring_discount_ratio is None
    assert profile.account_status is None
    usd = parse_billing_profile(account(currency={"keyName": "USD", "name": "US Dollar"}))
    assert usd.currency == "USD"
    assert usd.exchange_rate is None


def test_a_capture_without_billing_info_keeps_the_status_id() -> None:
    """The trimmed softlayer-cli getObject capture (no billingInfo, no accountStatus object)
    parses: the accountStatusId is kept, the rest is None."""
    sample = json.loads((SAMPLES / "account_getObject_no_pendingInvoice.json").read_text())
    profile = parse_billing_profile(sample)
    assert (profile.account_status_id, profile.account_status) == (1001, None)
    assert profile.currency is None
    assert profile.next_invoice_platform_services_usd is None


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"paymentTerms": "net 30"}, "account.billingInfo.paymentTerms"),
        ({"percentDiscountRecurring": 150}, "account.billingInfo.percentDiscountRecurring"),
        ({"percentDiscountOnetime": -1}, "account.billingInfo.percentDiscountOnetime"),
        ({"anniversaryDayOfMonth": 42}, "account.billingInfo.anniversaryDayOfMonth"),
        ({"currency": "EUR"}, "account.billingInfo.currency"),
        ({"currency": {"keyName": 978}}, "account.billingInfo.currency.keyName"),
        (
            {"currency": {"keyName": "EUR", "currentExchangeRate": {"rate": "0"}}},
            "account.billingInfo.currency.currentExchangeRate.rate",
        ),
        (
            {"currency": {"keyName": "EUR", "currentExchangeRate": {"rate": "fast"}}},
            "account.billingInfo.currency.currentExchangeRate.rate",
        ),
    ],
)
def test_bad_billing_info_is_a_decode_error_naming_the_path(
    change: dict[str, Any], path: str
) -> None:
    """Wrong types and impossible values fail the billing_info source with the path."""
    with pytest.raises(DecodeError) as caught:
        parse_billing_profile(account(**change))
    assert caught.value.path == path


def test_bad_account_level_fields() -> None:
    """The account object itself, its status and its amounts are type-checked too."""
    for body, path in (
        ([], "account"),
        ({**account(), "accountStatus": "Active"}, "account.accountStatus"),
        ({**account(), "accountStatusId": "x"}, "account.accountStatusId"),
        (
            {**account(), "nextInvoicePlatformServicesTotalAmount": "a lot"},
            "account.nextInvoicePlatformServicesTotalAmount",
        ),
    ):
        with pytest.raises(DecodeError) as caught:
            parse_billing_profile(body)
        assert caught.value.path == path


def test_label_text_bounds_free_text() -> None:
    """Names from SoftLayer become label values only when short and plain."""
    assert label_text("Active") == "Active"
    assert label_text("EUR") == "EUR"
    assert label_text(None) == "unknown"
    assert label_text("") == "unknown"
    assert label_text("a" * 41) == "unknown"
    assert label_text('Active"; DROP') == "unknown"
    assert parse_exchange_rate({"rate": None}, "r") is None
