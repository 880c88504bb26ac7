"""``--backfill.months N --backfill.output FILE``: past months as timestamped OpenMetrics.

After an install or a restart Prometheus knows nothing of past invoices. This mode fetches
the newest ``N`` recurring invoices of every account (:func:`~exporter.finops.history.
fetch_recurring_invoices`, one request) and each one's lines by category
(:func:`~exporter.finops.history.fetch_invoice_categories`, one paged walk per invoice),
then writes the series the live exporter would have served for ``invoice="latest_recurring"``
while each invoice was the latest one, every ``step`` seconds, with timestamps, in the
OpenMetrics text format that ``promtool tsdb create-blocks-from openmetrics`` turns into
TSDB blocks (see docs/metrics.md, "Backfilling the past months").

Reconstruction, per invoice, from its ``createDate`` to the next one's:

- the invoice value families (total, pre-tax, recurring, one-time, tax, item count,
  created time) are constant;
- payments and the open balance: nothing paid until ``closedDate``, then what SoftLayer
  reports as paid (``payment``); the status state set: ``OPEN`` until ``closedDate`` (every
  invoice is created OPEN and closes when paid, SLDN SoftLayer_Billing_Invoice), then its
  status;
- ``softlayer_invoice_category_usd`` per category and charge, folded like the live series.

Samples sit on multiples of ``step`` since the epoch, so Grafana's step-aligned queries with
a step of at least ``step`` always find one. Samples within :data:`HEAD_MARGIN_SECONDS` of now
are left out: Prometheus' head block owns that range (promtool's documentation advises
against backfilling it), and the live exporter covers it.

The output file is written to a temporary name and renamed when complete: a failure leaves
an existing file untouched and no partial one behind.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final, TextIO

import aiohttp
import structlog

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, Config
from exporter.configspec import parse_duration
from exporter.finops.history import fetch_invoice_categories, fetch_recurring_invoices
from exporter.finops.records import HistoryInvoice, InvoiceCategories
from exporter.snapshot import INVOICE_STATUSES, code_label
from exporter.softlayer import SoftLayerClient, SoftLayerError
from exporter.wire import DecodeError

__all__ = [
    "DEFAULT_LABELS",
    "HEAD_MARGIN_SECONDS",
    "MAX_MONTHS",
    "BackfillError",
    "BackfillOptions",
    "backfill_command",
    "options_from_flags",
    "parse_label",
    "render",
    "run_backfill",
]

#: Labels every backfilled series carries unless ``--backfill.label`` sets them: the mixin's
#: default job, and an instance name of its own (the dashboards merge instances by account).
DEFAULT_LABELS: Final = (("job", "softlayer"), ("instance", "backfill"))
#: Leave the newest 3 hours out: Prometheus' head block range.
HEAD_MARGIN_SECONDS: Final = 3 * 3600.0
#: Ten years of monthly invoices; SoftLayer's getInvoices is asked for them in one page.
MAX_MONTHS: Final = 120
#: Labels the exporter sets itself; ``--backfill.label`` may not override them.
RESERVED_LABELS: Final = frozenset(
    {"account", "invoice", "invoice_type", "status", "category", "charge", "__name__"}
)
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INVOICE: Final = "latest_recurring"

_log = structlog.get_logger()


class BackfillError(Exception):
    """The backfill failed; the message says for which account and why (secret-free)."""


def parse_label(text: str) -> tuple[str, str]:
    """Parse ``--backfill.label NAME=VALUE``; ValueError with a clear message if malformed."""
    name, sep, value = text.partition("=")
    if not sep or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        msg = f"expected NAME=VALUE with a Prometheus label name, got {text[:60]!r}"
        raise ValueError(msg)
    if name in RESERVED_LABELS:
        msg = f"label {name!r} is set by the exporter itself"
        raise ValueError(msg)
    return name, value


@dataclass(frozen=True, slots=True)
class BackfillOptions:
    """What to write: ``months`` invoices per account, one sample per ``step`` seconds."""

    months: int
    step_seconds: float = 3600.0
    labels: tuple[tuple[str, str], ...] = DEFAULT_LABELS
    #: Categories kept per invoice before folding; None: the configuration's top_categories.
    top_categories: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.months <= MAX_MONTHS:
            msg = f"--backfill.months must be within 1..{MAX_MONTHS}, got {self.months}"
            raise ValueError(msg)
        if not 60 <= self.step_seconds <= 86400:
            msg = "--backfill.step must be within 1m..1d"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class AccountHistory:
    """One account's recurring invoices, newest first, each with its categories."""

    account: str
    invoices: tuple[tuple[HistoryInvoice, InvoiceCategories], ...]


# -- fetching -----------------------------------------------------------------------------------


async def fetch_account(
    client: SoftLayerClient, account: str, months: int, top_categories: int
) -> AccountHistory:
    """Fetch one account's history: 1 + one paged walk per invoice requests."""
    invoices = await fetch_recurring_invoices(client, months)
    walks = [
        fetch_invoice_categories(client, entry.invoice.invoice_id, top_categories)
        for entry in invoices
    ]
    categories = await asyncio.gather(*walks)
    return AccountHistory(account, tuple(zip(invoices, categories, strict=True)))


async def fetch_all(config: Config, options: BackfillOptions) -> list[AccountHistory]:
    """Fetch every account concurrently; BackfillError naming the first account that failed."""
    stats = ApiStats()
    async with aiohttp.ClientSession(raise_for_status=False) as session:

        async def one(account: AccountConfig) -> AccountHistory:
            client = SoftLayerClient(account, config, session, stats)
            try:
                top = options.top_categories or config.top_categories
                return await fetch_account(client, account.name, options.months, top)
            except (SoftLayerError, DecodeError) as exc:
                msg = f"account {account.name}: {exc}"
                raise BackfillError(msg) from None

        return list(await asyncio.gather(*(one(a) for a in config.accounts)))


# -- reconstruction -----------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]
#: A piece of time during which every series of an account is constant.
Piece = tuple[float, float, dict[tuple[str, Labels], Decimal]]

#: The families written, with their HELP, in output order.
FAMILIES: Final = (
    ("softlayer_invoice_total_usd", "Invoice total including tax (backfilled)."),
    ("softlayer_invoice_pre_tax_usd", "Invoice total before tax (backfilled)."),
    ("softlayer_invoice_recurring_usd", "Recurring charges, before tax (backfilled)."),
    (
        "softlayer_invoice_one_time_usd",
        "One-time, setup and labor charges, before tax (backfilled).",
    ),
    ("softlayer_invoice_tax_usd", "Tax on the invoice (backfilled)."),
    ("softlayer_invoice_payments_usd", "Payments applied to the invoice (backfilled)."),
    (
        "softlayer_invoice_open_balance_usd",
        "Invoice total minus payments: what is still owed (backfilled).",
    ),
    ("softlayer_invoice_items", "Billing items on the invoice, children included (backfilled)."),
    (
        "softlayer_invoice_created_timestamp_seconds",
        "When the invoice was created, unix time (backfilled).",
    ),
    ("softlayer_invoice_status", "Invoice status as a state set (backfilled)."),
    (
        "softlayer_invoice_category_usd",
        "Pre-tax amount of a billing category on the invoice, children included, by charge "
        "(backfilled).",
    ),
)


def _pieces(history: AccountHistory, cutoff: float) -> list[Piece]:
    """Cut the account's time into pieces of constant values, oldest first."""
    ordered = list(reversed(history.invoices))  # oldest first
    pieces: list[Piece] = []
    for index, (entry, categories) in enumerate(ordered):
        invoice = entry.invoice
        start = invoice.created.timestamp()
        end = (
            ordered[index + 1][0].invoice.created.timestamp()
            if index + 1 < len(ordered)
            else cutoff
        )
        end = min(end, cutoff)
        if end <= start:
            continue
        base: Labels = (
            ("account", history.account),
            ("invoice", _INVOICE),
            ("invoice_type", code_label(invoice.type_code)),
        )
        constant = {
            ("softlayer_invoice_total_usd", base): invoice.total_usd,
            ("softlayer_invoice_pre_tax_usd", base): invoice.pre_tax_usd,
            ("softlayer_invoice_recurring_usd", base): invoice.recurring_usd,
            ("softlayer_invoice_one_time_usd", base): invoice.one_time_usd,
            ("softlayer_invoice_tax_usd", base): invoice.tax_usd,
            ("softlayer_invoice_items", base): Decimal(invoice.item_count),
            ("softlayer_invoice_created_timestamp_seconds", base): Decimal(int(start)),
        }
        for part in categories.categories:
            for charge, amount in (
                ("recurring", part.recurring_usd),
                ("one_time", part.one_time_usd),
            ):
                labels: Labels = (
                    ("account", history.account),
                    ("invoice", _INVOICE),
                    ("category", part.code),
                    ("charge", charge),
                )
                constant[("softlayer_invoice_category_usd", labels)] = amount
        closed = invoice.closed.timestamp() if invoice.closed is not None else math.inf
        final_status = code_label(invoice.status_code)

        split = min(max(closed, start), end)
        if split > start:
            opened = _state(base, invoice.total_usd, "OPEN", Decimal(0))
            pieces.append((start, split, {**constant, **opened}))
        if split < end:
            settled = _state(base, invoice.total_usd, final_status, invoice.payments_usd)
            pieces.append((split, end, {**constant, **settled}))
    return pieces


def _state(
    base: Labels, total: Decimal, status: str, paid: Decimal
) -> dict[tuple[str, Labels], Decimal]:
    """Payments, open balance and the status state set while the invoice is ``status``."""
    values = {
        ("softlayer_invoice_payments_usd", base): paid,
        ("softlayer_invoice_open_balance_usd", base): total - paid,
    }
    documented = (*INVOICE_STATUSES, *((status,) if status not in INVOICE_STATUSES else ()))
    for code in documented:
        labels: Labels = (base[0], base[1], ("status", code))
        values[("softlayer_invoice_status", labels)] = Decimal(int(code == status))
    return values


def _grid(start: float, end: float, step: float) -> Iterator[int]:
    """Multiples of ``step`` in ``[start, end)``."""
    first = math.ceil(start / step) * step
    t = first
    while t < end:
        yield int(t)
        t += step


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Decimal) -> str:
    return "0" if value.is_zero() else format(value, "f")


def render(
    histories: Sequence[AccountHistory], options: BackfillOptions, now: float, out: TextIO
) -> int:
    """Write the OpenMetrics exposition of every history; return the number of samples."""
    cutoff = now - HEAD_MARGIN_SECONDS
    pieces = {h.account: _pieces(h, cutoff) for h in histories}
    extra = tuple(options.labels)
    written = 0
    for family, help_text in FAMILIES:
        out.write(f"# TYPE {family} gauge\n# HELP {family} {help_text}\n")
        for account in sorted(pieces):
            series = sorted(
                {labels for _, _, values in pieces[account] for f, labels in values if f == family}
            )
            for labels in series:
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in (*labels, *extra))
                for start, end, values in pieces[account]:
                    value = values.get((family, labels))
                    if value is None:
                        continue
                    text = _number(value)
                    for t in _grid(start, end, options.step_seconds):
                        out.write(f"{family}{{{rendered}}} {text} {t}\n")
                        written += 1
    out.write("# EOF\n")
    return written


def _write_atomically(path: Path, write: Callable[[TextIO], int]) -> int:
    """Write to a temporary file next to ``path`` and rename it over ``path`` when done."""
    fd, temporary = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            count = write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


async def run_backfill(
    config: Config,
    options: BackfillOptions,
    output: str,
    *,
    clock: Callable[[], float] = time.time,
    stdout: TextIO | None = None,
) -> int:
    """Fetch, render and write; return the number of samples (BackfillError on failure).

    ``output`` ``-`` writes to ``stdout``. Nothing is written unless every account succeeded.
    """
    histories = await fetch_all(config, options)
    now = clock()
    if output == "-":
        assert stdout is not None  # noqa: S101  the CLI passes sys.stdout
        count = render(histories, options, now, stdout)
    else:
        try:
            count = _write_atomically(
                Path(output), lambda out: render(histories, options, now, out)
            )
        except OSError as exc:
            msg = f"cannot write {output}: {exc.strerror or type(exc).__name__}"
            raise BackfillError(msg) from None
    _log.info(
        "backfill",
        accounts=[h.account for h in histories],
        invoices={h.account: len(h.invoices) for h in histories},
        samples=count,
        output=output,
    )
    return count


def options_from_flags(
    months: int | None,
    output: str | None,
    step: str,
    labels: Sequence[str],
) -> BackfillOptions:
    """Check the ``--backfill.*`` flags together; ValueError naming the flag otherwise."""
    if months is None or output is None:
        msg = "--backfill.months and --backfill.output go together"
        raise ValueError(msg)
    try:
        step_seconds = parse_duration(step)
    except ValueError as exc:
        msg = f"--backfill.step: {exc}"
        raise ValueError(msg) from None
    parsed = dict(DEFAULT_LABELS)
    for text in labels:
        try:
            name, value = parse_label(text)
        except ValueError as exc:
            msg = f"--backfill.label: {exc}"
            raise ValueError(msg) from None
        parsed[name] = value
    return BackfillOptions(
        months=months,
        step_seconds=step_seconds,
        labels=tuple(sorted(parsed.items())),
    )


async def backfill_command(
    config: Config, options: BackfillOptions, output: str, stdout: TextIO
) -> int:
    """Run the backfill for the CLI: exit 0, or 1 with the failure logged (nothing written)."""
    try:
        await run_backfill(config, options, output, stdout=stdout)
    except BackfillError as exc:
        _log.error("backfill_failed", error=str(exc), output=output)
        return 1
    return 0
