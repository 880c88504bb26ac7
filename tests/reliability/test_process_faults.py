"""Process-level fault matrix: the real exporter process against the simulator over loopback.

One exporter process polls one account per fault kind (plus a clean control account and an
IAM account), so every fault runs in the same cycles: the process stays up, /metrics keeps
the last good values, the affected source goes down with the right error reason, every
account logs exactly one poll event per cycle, everything recovers on the next cycle once the
faults clear, and no account ever exceeds its request budget. Separately, the API's port
refuses connections, then accepts them again on the same port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer

from .conftest import (
    ExporterProcess,
    Gate,
    Samples,
    account_yaml,
    classic_auth,
    data_of,
    fast_header,
    iam_auth,
    value,
    write_config,
)

pytestmark = pytest.mark.e2e

GET_INVOICES = "SoftLayer_Account::getInvoices"
GET_ITEMS = "SoftLayer_Account::getNextInvoiceTopLevelBillingItems"
#: Requests per second per account: the exporter's budget and the simulator's own limit, so a
#: single request over budget would come back as RateLimitExceeded on a clean account.
BUDGET = 5


@dataclass(frozen=True)
class Case:
    kind: FaultKind
    method: str
    reason: str  # softlayer_api_errors_total{reason}
    source_down: str | None  # the source that goes down; None: the client copes, values exact
    extra: dict[str, int | float]


CASES = [
    Case(FaultKind.UNAUTHORIZED, GET_INVOICES, "auth", "invoices", {}),
    Case(FaultKind.NOT_FOUND, GET_INVOICES, "client", "invoices", {}),
    Case(FaultKind.RATE_LIMIT, GET_INVOICES, "rate_limited", "invoices", {}),
    Case(FaultKind.INTERNAL_ERROR, GET_INVOICES, "server", "invoices", {}),
    Case(FaultKind.INTERNAL_ERROR_HTTP200, GET_INVOICES, "server", "invoices", {}),
    Case(FaultKind.MALFORMED_JSON, GET_INVOICES, "decode", "invoices", {}),
    Case(FaultKind.TRUNCATED_JSON, GET_INVOICES, "decode", "invoices", {}),
    Case(FaultKind.EMPTY_BODY, GET_INVOICES, "decode", "invoices", {}),
    Case(FaultKind.CONNECTION_RESET, GET_INVOICES, "network", "invoices", {}),
    Case(FaultKind.HANG, GET_INVOICES, "timeout", "invoices", {}),
    # Classic auth has no token to renew: an expired-token answer is an auth failure.
    Case(FaultKind.TOKEN_EXPIRED, GET_INVOICES, "auth", "invoices", {}),
    # Deliberate deviations (docs/reliability.md): these are answers the real API gives and
    # the client reads them exactly, so the source stays up with the true values.
    Case(FaultKind.MISSING_TOTAL_ITEMS, GET_ITEMS, "", None, {}),
    Case(FaultKind.WRONG_TYPES, GET_ITEMS, "", None, {}),
    Case(FaultKind.WRONG_TYPES, GET_INVOICES, "", None, {}),
    # Too large a page fails with Internal Error; the pager halves it (100, 50, 25): success.
    Case(FaultKind.LARGE_PAGE_ERROR, GET_ITEMS, "server", None, {"max_page_size": 30}),
    Case(FaultKind.LATENCY, GET_INVOICES, "", None, {"latency_seconds": 0.2}),
]
IAM = "iam"
CONTROL = "control"


def name_of(index: int) -> str:
    case = CASES[index]
    return f"f{index}_{case.kind.value}"


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(
        seed=11,
        accounts=[AccountSpec(items=7, pending_invoice=True, invoice_months=4)] * (len(CASES) + 2),
    )


@pytest.fixture(name="sim")
async def _sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(
        scenario, host="127.0.0.1", port=0, latency_seconds=0.0, rate_limit_per_second=BUDGET
    ) as sim:
        yield sim


def make_config(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario, port: int | None = None
) -> dict[str, str]:
    """Write the config of every account (through ``port`` instead of the simulator's)."""
    endpoint, token_url = sim.endpoint, sim.iam_token_url
    if port is not None:
        endpoint = endpoint.replace(f":{sim.port}/", f":{port}/")
        token_url = token_url.replace(f":{sim.port}/", f":{port}/")
    env: dict[str, str] = {}
    accounts = []
    names = [name_of(i) for i in range(len(CASES))] + [CONTROL, IAM]
    for index, (name, acct) in enumerate(zip(names, scenario.accounts, strict=True)):
        env[f"SL_KEY_{index}"] = acct.iam_api_key if name == IAM else acct.api_key
        auth = (
            iam_auth(token_url, f"SL_KEY_{index}")
            if name == IAM
            else classic_auth(acct.username, f"SL_KEY_{index}")
        )
        accounts.append(account_yaml(name, endpoint, auth))
    write_config(tmp_path / "config.yaml", accounts, fast_header(BUDGET))
    return env


def errors(samples: Samples, account: str, reason: str) -> float:
    return value(samples, "softlayer_api_errors_total", account=account, reason=reason)


def assert_one_poll_per_account_per_cycle(proc: ExporterProcess, names: list[str]) -> None:
    """All accounts are polled together, so their poll-event counts never drift apart."""
    counts = {n: len(proc.polls(n)) for n in names}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    for name in names:
        for event in proc.polls(name):
            assert event["outcome"] in {"ok", "partial", "failed"}
            assert isinstance(event["duration_seconds"], float | int)
            assert isinstance(event["sources_failed"], list)


async def next_whole_cycle(proc: ExporterProcess, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each account's poll event of the first cycle that starts from now.

    The cycle in flight may have started before the change the caller just made.
    """
    await proc.more_polls(names, 1)
    return await proc.more_polls(names, 1)


async def ok_with_good_values(
    proc: ExporterProcess, session: aiohttp.ClientSession, names: list[str], good: Samples
) -> Samples:
    """The next whole cycle is clean everywhere and serves the good values again."""
    last = await next_whole_cycle(proc, names)
    assert {n: e["outcome"] for n, e in last.items()} == dict.fromkeys(names, "ok")
    samples = await proc.scrape(session)
    for name in names:
        assert value(samples, "softlayer_up", account=name) == 1, name
        assert data_of(samples, name) == data_of(good, name), name
    return samples


async def clean_baseline(
    proc: ExporterProcess, session: aiohttp.ClientSession, scenario: Scenario, names: list[str]
) -> Samples:
    """Scrape after a whole clean cycle: every account up with the simulator's true values."""
    last = await next_whole_cycle(proc, names)
    assert {n: e["outcome"] for n, e in last.items()} == dict.fromkeys(names, "ok")
    good = await proc.scrape(session)
    for name in names:
        assert value(good, "softlayer_up", account=name) == 1
        assert len(data_of(good, name)) > 20, name  # the comparisons that follow bite
    for name, acct in zip(names, scenario.accounts, strict=True):
        truth = scenario.truth(acct.id)
        assert value(good, "softlayer_account_balance_usd", account=name) == float(truth.balance)
        assert value(good, "softlayer_next_invoice_pre_tax_usd", account=name) == float(
            truth.next_invoice_pre_tax
        )
    return good


async def test_every_fault_in_one_real_exporter_process(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """Every fault kind at once against a real exporter process: stays up, last good values
    served, the right source down and reason counted, one poll event per account per cycle,
    recovery on the next cycle once they clear, no account over its budget."""
    env = make_config(tmp_path, sim, scenario)
    names = [name_of(i) for i in range(len(CASES))] + [CONTROL, IAM]
    proc = ExporterProcess(tmp_path / "config.yaml", env)
    async with proc, aiohttp.ClientSession() as session:
        good = await clean_baseline(proc, session, scenario, names)

        # Every fault at once, one account each, plus an expired IAM token.
        for index, case in enumerate(CASES):
            sim.add_fault(
                FaultRule(
                    kind=case.kind,
                    method=case.method,
                    account_id=scenario.accounts[index].id,
                    **case.extra,  # type: ignore[arg-type]
                )
            )
        tokens_before = sim.stats.token_requests
        iam_id = scenario.accounts[names.index(IAM)].id
        sim.add_fault(FaultRule(kind=FaultKind.TOKEN_EXPIRED, account_id=iam_id, times=1))
        last = await next_whole_cycle(proc, names)
        faulted = await proc.scrape(session)
        assert proc.proc is not None
        assert proc.proc.returncode is None
        for index, case in enumerate(CASES):
            name = name_of(index)
            event = last[name]
            source_up = {
                s: value(faulted, "softlayer_source_up", account=name, source=s)
                for s in ("account", "invoices", "next_invoice_items")
            }
            if case.source_down is None:
                assert event["outcome"] == "ok", (name, event)
                assert set(source_up.values()) == {1.0}, name
            else:
                assert event["outcome"] == "partial", (name, event)
                assert event["sources_failed"] == [case.source_down], (name, event)
                assert source_up[case.source_down] == 0, name
                assert value(faulted, "softlayer_up", account=name) == 0, name
            if case.reason:
                assert errors(faulted, name, case.reason) > errors(good, name, case.reason), name
            # The last good values, unchanged, whatever happened.
            assert data_of(faulted, name) == data_of(good, name), name
        for name in (CONTROL, IAM):
            assert last[name]["outcome"] == "ok", last[name]
            assert data_of(faulted, name) == data_of(good, name)
        # The expired token was re-exchanged and the call retried once: still up, one auth
        # error counted, one more token exchange.
        assert errors(faulted, IAM, "auth") == errors(good, IAM, "auth") + 1
        assert sim.stats.token_requests == tokens_before + 1

        # The faults clear; the next full cycle is clean everywhere.
        sim.clear_faults()
        recovered = await ok_with_good_values(proc, session, names, good)

        # Budget: the simulator limits each account to BUDGET/s too, so one request over
        # budget would have been answered RateLimitExceeded; only the RATE_LIMIT fault's
        # account may show that reason. The overall peak is bounded by accounts x budget.
        rate_limited_case = name_of(
            next(i for i, c in enumerate(CASES) if c.kind is FaultKind.RATE_LIMIT)
        )
        for name in names:
            if name != rate_limited_case:
                assert errors(recovered, name, "rate_limited") == 0, name
        assert 0 < sim.stats.max_per_second <= BUDGET * len(names)

        assert_one_poll_per_account_per_cycle(proc, names)
        assert await proc.terminate() == 0
    assert not [e for e in proc.events if e.get("level") in ("error", "critical")], proc.events


async def test_connection_refused_then_back_on_the_same_port(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """The API's port refusing connections: every account fails with reason network and
    keeps its last values, the process stays up; once the same port accepts again, the next
    cycle recovers everywhere."""
    names = [name_of(i) for i in range(len(CASES))] + [CONTROL, IAM]
    async with Gate(sim.port) as gate:
        env = make_config(tmp_path, sim, scenario, port=gate.port)
        proc = ExporterProcess(tmp_path / "config.yaml", env)
        async with proc, aiohttp.ClientSession() as session:
            good = await clean_baseline(proc, session, scenario, names)

            await gate.close()
            last = await next_whole_cycle(proc, names)
            refused = await proc.scrape(session)
            for name in names:
                assert last[name]["outcome"] == "failed", last[name]
                assert value(refused, "softlayer_up", account=name) == 0
                assert errors(refused, name, "network") > errors(good, name, "network")
                assert data_of(refused, name) == data_of(good, name), name

            await gate.open()
            back = await ok_with_good_values(proc, session, names, good)
            for name in names:
                assert errors(back, name, "rate_limited") == 0, name

            assert_one_poll_per_account_per_cycle(proc, names)
            assert await proc.terminate() == 0
    assert not [e for e in proc.events if e.get("level") in ("error", "critical")], proc.events
