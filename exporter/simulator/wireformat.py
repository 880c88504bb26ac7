"""How the simulator spells money and dates on the wire, exactly as SoftLayer does.

Money is held as integer *mills* (1/1000 USD) everywhere inside the simulator so sums over
200,000 items stay exact and cheap. SoftLayer sends fee and invoice amounts as un-normalised
decimal strings (``".048"``, ``"264111.3"``, ``"0"``) but ``nextInvoiceTotal*`` as JSON numbers
(``3128.47``, ``16``); dates carry a numeric offset and no fractional seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

#: SoftLayer data is Central-time-centric; a fixed CST offset keeps dates deterministic.
CENTRAL: Final = timezone(timedelta(hours=-6))
MILLS_PER_USD: Final = 1000


def mills_to_decimal(mills: int) -> Decimal:
    """Exact Decimal value of an amount held in mills."""
    return Decimal(money_str(mills))


def decimal_to_mills(value: Decimal | int | str) -> int:
    """Convert a USD amount to mills; refuse amounts finer than a tenth of a cent."""
    amount = Decimal(value)
    mills = amount * MILLS_PER_USD
    if mills != mills.to_integral_value():
        raise ValueError(f"amount {value} has more than 3 decimal places")
    return int(mills)


def money_str(mills: int) -> str:
    """Format as SoftLayer's decimal strings: no trailing zeros, no leading ``0.``."""
    if mills == 0:
        return "0"
    sign = "-" if mills < 0 else ""
    whole, frac = divmod(abs(mills), MILLS_PER_USD)
    text = "" if whole == 0 else str(whole)
    if frac:
        text += "." + f"{frac:03d}".rstrip("0")
    return sign + text


def money_num(mills: int) -> int | float:
    """Format as a JSON number the way ``nextInvoiceTotal*`` arrive (``16``, ``3128.47``)."""
    if mills % MILLS_PER_USD == 0:
        return mills // MILLS_PER_USD
    return mills / MILLS_PER_USD


def date_str(epoch: int) -> str:
    """Format an epoch second as ``2021-11-24T15:07:42-06:00``."""
    return datetime.fromtimestamp(epoch, CENTRAL).isoformat()


def aware(epoch: int) -> datetime:
    """Return the aware datetime (Central offset) of an epoch second."""
    return datetime.fromtimestamp(epoch, CENTRAL)


def utc_epoch(moment: datetime) -> int:
    """Epoch seconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
