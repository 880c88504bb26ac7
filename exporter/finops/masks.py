"""objectMask fragments of the FinOps sources.

Kept apart so that :mod:`exporter.wire` can add them to the masks it owns without importing
the parsers (which import it).

Every property is documented on SLDN and in softlayer-go's generated ``datatypes``; the
citations are at the parsers that read them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCOUNT_EXTRA_FIELDS",
    "BILLING_INFO_EXTRA_FIELDS",
    "EXCHANGE_RATE_FIELDS",
    "NEXT_INVOICE_ITEM_EXTRA_FIELDS",
]

#: SoftLayer_Billing_Currency_ExchangeRate: the rate and the two currencies' key names.
EXCHANGE_RATE_FIELDS: Final = "rate,fundingCurrency[keyName],localCurrency[keyName]"
#: SoftLayer_Account properties besides the summary's: status, platform services (the
#: recurring total before the discount is one of the summary's, exporter.wire.ACCOUNT_FIELDS).
ACCOUNT_EXTRA_FIELDS: Final = (
    "accountStatusId,accountStatus[name],nextInvoicePlatformServicesTotalAmount"
)
#: SoftLayer_Billing_Info properties besides the billing cycle's.
BILLING_INFO_EXTRA_FIELDS: Final = (
    "paymentTerms,percentDiscountRecurring,percentDiscountOnetime,"
    f"currency[keyName,name,currentExchangeRate[{EXCHANGE_RATE_FIELDS}]]"
)
#: SoftLayer_Billing_Item properties for the datacenter totals and the top-N items.
NEXT_INVOICE_ITEM_EXTRA_FIELDS: Final = "hostName,domainName,description,location[name]"
