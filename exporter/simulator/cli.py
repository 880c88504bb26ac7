"""``softlayer-api-simulator``: serve a generated SoftLayer account set on a local port.

The first line on stdout is one JSON object with the endpoint, the IAM token URL, the admin
URL and every account's credentials, so scripts can point any SoftLayer client at it::

    softlayer-api-simulator --web.listen-address 127.0.0.1:0 --seed 7 --accounts 2 --items 40

``--clock-speed 3600`` runs the billing clock one simulated hour per real second (hourly
accrual, the anniversary's recurring invoice, its payment); the admin API moves it too
(``POST /__admin/clock {"advance": "36h"}``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from exporter.simulator.catalog import CURRENCIES
from exporter.simulator.faults import FaultKind, FaultRule, parse_fault_spec
from exporter.simulator.scenario import PAYMENT_METHODS, AccountSpec, Scenario
from exporter.simulator.server import SimulatorServer


def parse_listen_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` / ``:port`` (all interfaces)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104  ":PORT" means every interface, by choice
    return host, int(port_text)


def _fault(value: str) -> FaultRule:
    try:
        return parse_fault_spec(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_Number = TypeVar("_Number", int, float)


def _non_negative(parse: Callable[[str], _Number], what: str) -> Callable[[str], _Number]:
    """Return an argparse type that parses ``what`` ("an integer", "a number") and rejects < 0."""

    def convert(value: str) -> _Number:
        try:
            number = parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"expected {what} >= 0, got {number}")
        return number

    return convert


_non_negative_int = _non_negative(int, "an integer")
_non_negative_float = _non_negative(float, "a number")


def _percent(value: str) -> int:
    number = _non_negative_int(value)
    if number > 100:
        raise argparse.ArgumentTypeError(f"expected a percentage 0..100, got {number}")
    return number


def _aware(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 timestamp, got {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--now needs a UTC offset, e.g. 2026-11-23T06:00:00+00:00")
    return moment


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    kinds = ", ".join(k.value for k in FaultKind)
    parser = argparse.ArgumentParser(
        prog="softlayer-api-simulator",
        description=(
            "Serve a deterministic, generated SoftLayer REST API (SoftLayer_Account, "
            "SoftLayer_Billing_Invoice, SoftLayer_Billing_Item) plus an IAM token endpoint "
            "and an /__admin/ control API. Prints one JSON line with the endpoint and the "
            "accounts' credentials, then serves until interrupted."
        ),
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        type=parse_listen_address,
        default=("127.0.0.1", 9779),
        metavar="HOST:PORT",
        help="where to listen; port 0 picks a free port (default 127.0.0.1:9779)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument(
        "--accounts", type=_non_negative_int, default=1, help="number of accounts (default 1)"
    )
    parser.add_argument(
        "--items",
        type=_non_negative_int,
        default=40,
        help="top-level billing items per account, up to 200000 and beyond (default 40)",
    )
    parser.add_argument(
        "--invoice-months",
        type=_non_negative_int,
        default=12,
        help="months of invoice history per account (default 12)",
    )
    parser.add_argument(
        "--pending-invoice",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="whether the latest recurring invoice is still OPEN (default yes)",
    )
    parser.add_argument(
        "--now",
        type=_aware,
        default=None,
        help="start the billing clock here (ISO-8601 with offset; default: now)",
    )
    parser.add_argument(
        "--latency",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="delay every API answer (default 0)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_non_negative_int,
        default=50,
        metavar="N",
        help="requests per second per account before HTTP 500 RateLimitExceeded; 0 = off "
        "(default 50, like SoftLayer)",
    )
    parser.add_argument(
        "--token-ttl",
        type=_non_negative_float,
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of IAM tokens from /identity/token (default 3600)",
    )
    parser.add_argument(
        "--clock-speed",
        type=_non_negative_float,
        default=0.0,
        metavar="X",
        help="simulated seconds per real second of the billing clock; 0 stands still and "
        "only POST /__admin/clock moves it (default 0)",
    )
    parser.add_argument(
        "--payment",
        choices=PAYMENT_METHODS,
        default="card",
        help="how recurring invoices cut by the billing clock are paid: card (same day), "
        "invoice (after --payment-terms days), card_failed (CLOSED_FAILED) (default card)",
    )
    parser.add_argument(
        "--payment-terms",
        type=_non_negative_int,
        default=30,
        metavar="DAYS",
        help="payment terms of --payment invoice, in days (default 30)",
    )
    parser.add_argument(
        "--currency",
        choices=sorted(CURRENCIES),
        default="USD",
        help="the accounts' billing currency (billingInfo.currency); amounts stay USD, "
        "invoices carry the month's exchange rate (default USD)",
    )
    parser.add_argument(
        "--recurring-discount",
        type=_percent,
        default=0,
        metavar="PERCENT",
        help="billingInfo.percentDiscountRecurring, applied to the account's totals (default 0)",
    )
    parser.add_argument(
        "--platform-services",
        type=_non_negative_float,
        default=0.0,
        metavar="USD",
        help="monthly platform-services charge on the next and the recurring invoices "
        "(nextInvoicePlatformServicesTotalAmount; default 0)",
    )
    parser.add_argument(
        "--page-cap",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="serve at most N rows per list page whatever resultLimit asks; 0 = no cap",
    )
    parser.add_argument(
        "--page-cap-without-total",
        action="store_true",
        help="capped list pages come without SoftLayer-Total-Items",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[:METHOD][:TIMES]",
        help=(
            "inject a fault (repeatable), e.g. internal_error:SoftLayer_Account::getInvoices:3; "
            f"kinds: {kinds}"
        ),
    )
    return parser


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Generate, serve, print the JSON line and wait for ``stop`` (or a signal)."""
    pending = args.pending_invoice and args.invoice_months > 0
    scenario = Scenario.generate(
        seed=args.seed,
        accounts=[
            AccountSpec(
                items=args.items,
                pending_invoice=pending,
                invoice_months=args.invoice_months,
                payment=args.payment,
                payment_terms_days=args.payment_terms,
                currency=args.currency,
                recurring_discount_percent=args.recurring_discount,
                platform_services=Decimal(repr(args.platform_services)).quantize(Decimal("0.001")),
            )
            for _ in range(args.accounts)
        ],
        now=args.now,
        speed=args.clock_speed,
    )
    host, port = args.listen
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with SimulatorServer(
        scenario,
        host=host,
        port=port,
        latency_seconds=args.latency,
        rate_limit_per_second=args.rate_limit or None,
        token_ttl_seconds=args.token_ttl,
        faults=args.fault,
    ) as sim:
        if args.page_cap:
            sim.set_page_cap(args.page_cap, total_header=not args.page_cap_without_total)
        line = {
            "endpoint": sim.endpoint,
            "iam_token_url": sim.iam_token_url,
            "admin_url": sim.admin_url,
            "accounts": [a.credentials() for a in scenario.accounts],
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"softlayer-api-simulator: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
