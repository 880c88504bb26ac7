"""Secrets end to end: valid, recognisable keys (classic and IAM) planted in a real process.

tests/cli and tests/server already plant a wrong key (auth fails) in --once and in-process
endpoints. Here the planted keys are the accounts' real credentials, so they are sent on the
wire and IAM tokens get issued; a serving exporter process runs at debug level through clean
cycles and a set of faults, every endpoint is fetched, and a --once run is added. Every output
is then searched for the keys, their Basic-auth encodings and any issued IAM token.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import aiohttp
import pytest

from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer
from tests.helpers.processes import run_exporter

from .conftest import (
    ExporterProcess,
    account_yaml,
    classic_auth,
    fast_header,
    iam_auth,
    write_config,
)

pytestmark = pytest.mark.e2e

CLASSIC_KEY = "PLANTEDclassicKEYe2e0123456789abcdefDONOTLEAK"
IAM_KEY = "PLANTEDiamKEYe2e0123456789abcdefDONOTLEAK"
#: The simulator's IAM tokens look like ``sim.<token_urlsafe(24)>``.
TOKEN = re.compile(r"sim\.[A-Za-z0-9_-]{20,}")
NAMES = ["classic", "iam"]


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    scenario = Scenario.generate(
        seed=9,
        accounts=[
            AccountSpec(items=6, pending_invoice=True, invoice_months=3),
            AccountSpec(items=6, pending_invoice=True, invoice_months=3),
        ],
    )
    scenario.accounts[0].api_key = CLASSIC_KEY
    scenario.accounts[1].iam_api_key = IAM_KEY
    return scenario


@pytest.fixture(name="sim_rate_limit")
def _sim_rate_limit() -> int:
    """The simulated API's rate limit: low, as a real account's can be."""
    return 50


def forbidden(scenario: Scenario) -> list[str]:
    """The keys and every encoding of them that goes on the wire."""
    username = scenario.accounts[0].username
    return [
        CLASSIC_KEY,
        IAM_KEY,
        base64.b64encode(f"{username}:{CLASSIC_KEY}".encode()).decode(),
        base64.b64encode(f"apikey:{IAM_KEY}".encode()).decode(),
    ]


async def test_planted_valid_keys_appear_in_no_output(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """Classic and IAM keys that really authenticate: after clean and faulty cycles at debug
    level, no log line, endpoint, error message or --once output holds a key or a token."""
    env = {"SL_CLASSIC": CLASSIC_KEY, "SL_IAM": IAM_KEY}
    config = write_config(
        tmp_path / "config.yaml",
        [
            account_yaml(
                "classic", sim.endpoint, classic_auth(scenario.accounts[0].username, "SL_CLASSIC")
            ),
            account_yaml("iam", sim.endpoint, iam_auth(sim.iam_token_url, "SL_IAM")),
        ],
        fast_header(20),
    )
    outputs: dict[str, str] = {}
    proc = ExporterProcess(config, env, "--log.level", "debug")
    async with proc, aiohttp.ClientSession() as session:
        first = await proc.more_polls(NAMES, 1)
        assert {e["outcome"] for e in first.values()} == {"ok"}
        assert sim.stats.token_requests >= 1  # the IAM account really exchanged its key
        for path in ("/metrics", "/", "/healthz", "/readyz"):
            outputs[f"clean {path}"] = (await proc.get(session, path))[1]
        # Faults whose error messages the exporter keeps, logs and shows.
        for acct in scenario.accounts:
            for kind, method in (
                (FaultKind.UNAUTHORIZED, "SoftLayer_Account::getObject"),
                (FaultKind.TOKEN_EXPIRED, "SoftLayer_Account::getInvoices"),
                (FaultKind.MALFORMED_JSON, "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"),
            ):
                sim.add_fault(FaultRule(kind=kind, method=method, account_id=acct.id))
        await proc.more_polls(NAMES, 1)
        faulty = await proc.more_polls(NAMES, 1)
        assert {e["outcome"] for e in faulty.values()} == {"failed"}
        for path in ("/metrics", "/", "/healthz", "/readyz"):
            outputs[f"faulty {path}"] = (await proc.get(session, path))[1]
        assert 'reason="auth"' in outputs["faulty /metrics"]
        sim.clear_faults()
        await proc.more_polls(NAMES, 1)
        assert await proc.terminate() == 0
    outputs["serve stderr"] = "\n".join(proc.stderr_lines)
    outputs["serve stdout"] = proc.stdout.decode()

    code, out, err = await run_exporter(
        "--config.file", str(config), "--once", "--log.level", "debug", env=env
    )
    assert code == 0, err
    outputs["once stdout"], outputs["once stderr"] = out, err

    for where, text in outputs.items():
        assert text or where == "serve stdout", where
        for secret in forbidden(scenario):
            assert secret not in text, f"{secret[:12]}... leaked in {where}"
        assert not TOKEN.search(text), f"an IAM token leaked in {where}"
