"""The backfill mode: reconstruction of past months, OpenMetrics shape, flags and failures."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.finops.backfill import (
    HEAD_MARGIN_SECONDS,
    AccountHistory,
    BackfillOptions,
    options_from_flags,
    parse_label,
    render,
)
from exporter.finops.records import HistoryInvoice, InvoiceCategories, InvoiceCategory
from exporter.snapshot import InvoiceSummary

HOUR = 3600
T0 = datetime(2026, 1, 4, 5, 0, tzinfo=UTC)  # on an hour: grid points fall on the boundaries


def invoice(
    invoice_id: int, created: datetime, closed: datetime | None, status: str
) -> InvoiceSummary:
    return InvoiceSummary(
        invoice_id=invoice_id,
        type_code="RECURRING",
        status_code=status,
        created=created,
        closed=closed,
        total_usd=Decimal("110.5"),
        pre_tax_usd=Decimal(100),
        recurring_usd=Decimal(90),
        one_time_usd=Decimal(10),
        tax_usd=Decimal("10.5"),
        payments_usd=Decimal("110.5") if status == "CLOSED" else Decimal(0),
        item_count=4,
    )


def categories(invoice_id: int, code: str) -> InvoiceCategories:
    part = InvoiceCategory(code, Decimal(90), Decimal(10), 2)
    return InvoiceCategories(invoice_id=invoice_id, categories=(part,), folded=0, lines=2)


def history() -> AccountHistory:
    """Two invoices 10 hours apart; the older paid after 3 hours, the newer failed after 2."""
    older = invoice(1, T0, T0 + timedelta(hours=3), "CLOSED")
    newer = invoice(2, T0 + timedelta(hours=10), T0 + timedelta(hours=12), "CLOSED_FAILED")
    return AccountHistory(
        'prod "eu"',
        (
            (HistoryInvoice(newer, None), categories(2, "guest_core")),
            (HistoryInvoice(older, None), categories(1, "server")),
        ),
    )


def samples(text: str) -> dict[tuple[str, str], dict[int, str]]:
    """``(metric, labels) -> {timestamp: value}`` of an OpenMetrics text."""
    found: dict[tuple[str, str], dict[int, str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+) (\d+)", line)
        assert match, line
        name, labels, value, stamp = match.groups()
        found.setdefault((name, labels), {})[int(stamp)] = value
    return found


def test_each_invoice_holds_until_the_next_payments_from_closing() -> None:
    """Hourly samples from each invoice's creation to the next; payments, open balance and
    status switch at closedDate; categories follow the invoice; labels escaped and extra
    labels appended; the newest 3 hours are left out."""
    now = (T0 + timedelta(hours=15)).timestamp() + HEAD_MARGIN_SECONDS
    out = io.StringIO()
    options = BackfillOptions(months=2, labels=(("instance", "a:1"), ("job", "softlayer")))
    count = render([history()], options, now, out)
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    found = samples(text)
    assert count == sum(len(v) for v in found.values())
    base = (
        r'account="prod \"eu\"",invoice="latest_recurring",invoice_type="RECURRING",'
        'instance="a:1",job="softlayer"'
    )
    start = int(T0.timestamp())
    hours = [start + h * HOUR for h in range(15)]  # up to the cutoff at T0 + 15h (excluded)
    total = found[("softlayer_invoice_total_usd", base)]
    assert sorted(total) == hours
    assert set(total.values()) == {"110.5"}
    payments = found[("softlayer_invoice_payments_usd", base)]
    paid = {t: v for t, v in payments.items() if v != "0"}
    assert sorted(paid) == hours[3:10]  # paid at +3h, replaced by the newer invoice at +10h
    open_balance = found[("softlayer_invoice_open_balance_usd", base)]
    assert open_balance[hours[2]] == "110.5"
    assert open_balance[hours[3]] == "0"
    assert open_balance[hours[14]] == "110.5"  # failed: nothing paid
    tail = 'instance="a:1",job="softlayer"'
    status = {
        code: found[
            (
                "softlayer_invoice_status",
                f'account="prod \\"eu\\"",invoice="latest_recurring",status="{code}",{tail}',
            )
        ]
        for code in ("OPEN", "CLOSED", "CLOSED_FAILED")
    }
    assert [status[c][hours[1]] for c in ("OPEN", "CLOSED", "CLOSED_FAILED")] == ["1", "0", "0"]
    assert [status[c][hours[5]] for c in ("OPEN", "CLOSED", "CLOSED_FAILED")] == ["0", "1", "0"]
    assert [status[c][hours[11]] for c in ("OPEN", "CLOSED", "CLOSED_FAILED")] == ["1", "0", "0"]
    assert [status[c][hours[12]] for c in ("OPEN", "CLOSED", "CLOSED_FAILED")] == ["0", "0", "1"]
    server = [k for k in found if k[0] == "softlayer_invoice_category_usd" and "server" in k[1]]
    assert {sorted(found[k])[-1] for k in server} == {hours[9]}
    assert len(server) == 2  # recurring and one_time
    created = found[("softlayer_invoice_created_timestamp_seconds", base)]
    assert created[hours[9]] == str(start)
    assert created[hours[10]] == str(hours[10])
    # Every family once, in one block, each series' samples in time order.
    families = re.findall(r"^# TYPE (\w+) gauge$", text, re.MULTILINE)
    assert len(families) == len(set(families)) == 11
    for series in found.values():
        assert list(series) == sorted(series)


def test_samples_sit_on_the_step_grid() -> None:
    """A 15-minute step: every timestamp a multiple of 900 s, none before the first invoice."""
    now = (T0 + timedelta(hours=20)).timestamp()
    out = io.StringIO()
    render([history()], BackfillOptions(months=2, step_seconds=900), now, out)
    stamps = {t for series in samples(out.getvalue()).values() for t in series}
    assert all(t % 900 == 0 for t in stamps)
    assert min(stamps) == int(T0.timestamp())
    assert max(stamps) < now - HEAD_MARGIN_SECONDS


def test_flags_are_checked_together() -> None:
    """Months and output go together; labels are NAME=VALUE and may not replace ours."""
    options = options_from_flags(13, "h.om", "30m", ["instance=exporter:9877", "env=prod"])
    assert options.step_seconds == 1800
    assert dict(options.labels) == {"job": "softlayer", "instance": "exporter:9877", "env": "prod"}
    for months, output, step, labels, problem in (
        (13, None, "1h", [], "go together"),
        (None, "h.om", "1h", [], "go together"),
        (0, "h.om", "1h", [], "within 1..120"),
        (121, "h.om", "1h", [], "within 1..120"),
        (13, "h.om", "soon", [], "--backfill.step"),
        (13, "h.om", "10s", [], "1m..1d"),
        (13, "h.om", "1h", ["job"], "NAME=VALUE"),
        (13, "h.om", "1h", ["9x=1"], "NAME=VALUE"),
        (13, "h.om", "1h", ["account=other"], "set by the exporter"),
    ):
        with pytest.raises(ValueError, match=problem):
            options_from_flags(months, output, step, labels)
    assert parse_label("job=") == ("job", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backfill.months", "13"], "go together"),
        (["--backfill.output", "x.om"], "go together"),
        (["--backfill.months", "0", "--backfill.output", "x.om"], "within 1..120"),
        (
            [
                "--backfill.months",
                "13",
                "--backfill.output",
                "x.om",
                "--backfill.label",
                "status=x",
            ],
            "set by the exporter",
        ),
        (["--backfill.months", "x", "--backfill.output", "x.om"], "invalid int value"),
    ],
)
def test_bad_backfill_flags_exit_2_and_write_nothing(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad backfill flags: exit 2 with the problem, no file written."""
    try:
        code = main(["--demo", *argv])
    except SystemExit as exit_:  # argparse's own type errors
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.om").exists()
    assert not Path("x.om").exists()


def test_the_demo_backfill_writes_a_complete_file(tmp_path: Path) -> None:
    """--demo with the backfill flags: exit 0 and a complete OpenMetrics file."""
    output = tmp_path / "history.om"
    argv = ["--demo", "--backfill.months", "2", "--backfill.output", str(output)]
    assert main([*argv, "--backfill.label", "instance=demo:9877"]) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# TYPE softlayer_invoice_total_usd gauge\n")
    assert text.endswith("# EOF\n")
    assert 'instance="demo:9877",job="softlayer"' in text
