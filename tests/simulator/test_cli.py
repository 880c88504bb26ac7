"""The softlayer-api-simulator console script: first JSON line, serving, options, errors."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from exporter.simulator.cli import build_parser, main, parse_listen_address
from tests.helpers.processes import simulator_command, simulator_process


@pytest.fixture(name="simulator_process")
def _simulator_process() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    with simulator_process(
        "--seed",
        "3",
        "--accounts",
        "2",
        "--items",
        "12",
        "--fault",
        "internal_error:SoftLayer_Account::getInvoices:1",
    ) as started:
        yield started


async def test_first_line_and_serving(
    simulator_process: tuple[subprocess.Popen[str], dict[str, object]],
) -> None:
    """The first stdout line is JSON with endpoint and credentials that work; faults apply."""
    process, first = simulator_process
    assert set(first) >= {"endpoint", "iam_token_url", "admin_url", "accounts"}
    endpoint = str(first["endpoint"])
    assert endpoint.startswith("http://127.0.0.1:")
    assert endpoint.endswith("/rest/v3.1/")
    accounts = first["accounts"]
    assert isinstance(accounts, list)
    assert len(accounts) == 2
    acct = accounts[0]
    auth = {"Authorization": aiohttp.encode_basic_auth(acct["username"], acct["api_key"])}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.get(
            endpoint + "SoftLayer_Account/getObject.json?objectMask=mask[id]"
        ) as r:
            assert await r.json() == {"id": acct["id"]}
        async with session.get(endpoint + "SoftLayer_Account/getInvoices.json") as r:
            assert r.status == 500  # the --fault fires once
        async with session.get(endpoint + "SoftLayer_Account/getInvoices.json") as r:
            assert r.status == 200
        async with session.get(str(first["admin_url"]) + "stats") as r:
            stats = await r.json()
    assert stats["requests"]["SoftLayer_Account::getInvoices"] == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.mark.e2e
def test_help_documents_the_options() -> None:
    """--help lists every option the README promises."""
    result = subprocess.run(
        [*simulator_command(), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in (
        "--web.listen-address",
        "--seed",
        "--accounts",
        "--items",
        "--invoice-months",
        "--pending-invoice",
        "--latency",
        "--rate-limit",
        "--token-ttl",
        "--fault",
        "--now",
        "--clock-speed",
        "--payment",
        "--payment-terms",
        "--page-cap",
        "--page-cap-without-total",
    ):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--web.listen-address", "nonsense"], "expected HOST:PORT"),
        (["--items", "-3"], "expected an integer >= 0"),
        (["--fault", "explode"], "unknown fault kind 'explode'"),
        (["--latency", "soon"], "expected a number"),
        (["--now", "2026-01-01T00:00:00"], "needs a UTC offset"),
        (["--accounts", "0"], "--accounts must be at least 1"),
        (["--clock-speed", "-1"], "expected a number >= 0"),
        (["--payment", "cash"], "invalid choice"),
        (["--page-cap", "x"], "expected an integer"),
        (["--currency", "XXX"], "invalid choice"),
        (["--recurring-discount", "150"], "expected a percentage 0..100"),
        (["--platform-services", "-5"], "expected a number >= 0"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad options exit with status 2 and say what is wrong."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_listen_address_forms() -> None:
    """host:port, [v6]:port and :port (all interfaces) parse."""
    assert parse_listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen_address("[::1]:8080") == ("::1", 8080)
    assert parse_listen_address(":9779") == ("0.0.0.0", 9779)
    assert build_parser().parse_args([]).listen == ("127.0.0.1", 9779)


@pytest.fixture
def clocked_simulator() -> Iterator[dict[str, Any]]:
    """The console script with the billing clock, payment terms and a page cap set."""
    with simulator_process(
        "--items",
        "12",
        "--now",
        "2026-11-23T06:00:00+00:00",
        "--clock-speed",
        "3600",
        "--payment",
        "invoice",
        "--payment-terms",
        "15",
        "--page-cap",
        "5",
        "--page-cap-without-total",
        "--currency",
        "EUR",
        "--recurring-discount",
        "10",
        "--platform-services",
        "25.5",
    ) as (_, first):
        yield first


async def test_clock_payment_and_page_cap_options(clocked_simulator: dict[str, object]) -> None:
    """--now/--clock-speed start the billing clock, --payment sets the terms served in
    billingInfo, --currency/--recurring-discount/--platform-services the billing terms,
    --page-cap[-without-total] caps list pages."""
    first = clocked_simulator
    accounts = first["accounts"]
    assert isinstance(accounts, list)
    acct = accounts[0]
    auth = {"Authorization": aiohttp.encode_basic_auth(acct["username"], acct["api_key"])}
    endpoint = str(first["endpoint"])
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.get(str(first["admin_url"]) + "clock") as r:
            clock = await r.json()
        async with session.get(
            endpoint + "SoftLayer_Account/getObject.json?objectMask=mask[billingInfo[paymentTerms,"
            "percentDiscountRecurring,currency[keyName]],nextInvoicePlatformServicesTotalAmount]"
        ) as r:
            account = await r.json()
            info = account["billingInfo"]
        async with session.get(f"{first['admin_url']}accounts/{acct['id']}/truth") as r:
            billing = (await r.json())["billing"]
        async with session.get(
            endpoint + "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json"
        ) as r:
            rows = await r.json()
            total = r.headers.get("SoftLayer-Total-Items")
    assert clock["speed"] == 3600
    assert clock["epoch"] >= 1795413600  # 2026-11-23T06:00:00Z, then running
    assert info["paymentTerms"] == 15
    assert (info["percentDiscountRecurring"], info["currency"]) == (10, {"keyName": "EUR"})
    assert account["nextInvoicePlatformServicesTotalAmount"] == 25.5
    assert (billing["currency"], billing["payment_terms"]) == ("EUR", 15)
    assert billing["exchange_rate"]["local_currency"] == "EUR"
    assert (len(rows), total) == (5, None)
