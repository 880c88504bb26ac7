"""SIGHUP against the real exporter: the configuration is read again without losing data.

One process, three files in turn: the first serves one account; the second adds an account,
changes a threshold and the poll interval, and (through a simulator fault) makes every
request of the first account fail from then on; the third does not parse. Asserted: the
reload takes effect (new account polled, new threshold served), the first account's billing
data is still served although its polls now fail (the new poller starts from what is served),
the API counters carry on instead of restarting, and the bad file is refused with a log line
while the running configuration carries on. Exit 0 on SIGTERM at the end.
"""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest

from exporter.simulator import AccountSpec, FaultKind, FaultRule, Scenario, SimulatorServer

from .conftest import (
    ExporterProcess,
    Samples,
    account_yaml,
    classic_auth,
    data_of,
    fast_header,
    value,
    write_config,
)


@pytest.fixture(name="scenario")
def _scenario() -> Scenario:
    return Scenario.generate(
        seed=21,
        accounts=[
            AccountSpec(items=30, pending_invoice=True, invoice_months=6),
            AccountSpec(items=10, pending_invoice=False, invoice_months=3),
        ],
    )


def accounts(sim: SimulatorServer, scenario: Scenario, budgets: list[int]) -> list[str]:
    return [
        account_yaml(
            f"acct{index}",
            sim.endpoint,
            classic_auth(scenario.accounts[index].username, f"SL_KEY_{index}"),
            f"thresholds: {{monthly_budget_usd: {budget}}}",
        )
        for index, budget in enumerate(budgets)
    ]


def budget(samples: Samples, account: str) -> float:
    return value(samples, "softlayer_alert_threshold_usd", account=account, kind="monthly_budget")


def billing(samples: Samples, account: str) -> Samples:
    """The account's billing data: what it exports, thresholds (configuration) aside."""
    return {
        key: v
        for key, v in data_of(samples, account).items()
        if not key[0].startswith("softlayer_alert_threshold")
    }


def requests_of(samples: Samples, account: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "softlayer_api_requests_total" and ("account", account) in labels
    )


async def test_sighup_reloads_keeps_data_and_refuses_a_bad_file(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """SIGHUP applies accounts, thresholds and interval; served data and counters survive;
    a file that does not parse is refused and the running configuration carries on."""
    path = tmp_path / "config.yaml"
    env = {f"SL_KEY_{i}": acct.api_key for i, acct in enumerate(scenario.accounts)}
    write_config(path, accounts(sim, scenario, [1000]), fast_header(50))
    proc = ExporterProcess(path, env)
    async with proc, aiohttp.ClientSession() as session:
        assert proc.proc is not None
        first = await proc.more_polls(["acct0"], 2)
        before = await proc.scrape_after(session, first)
        assert budget(before, "acct0") == 1000
        assert len(billing(before, "acct0")) > 20

        # Reload: a second account, a new threshold, and acct0's API failing from now on.
        sim.add_fault(FaultRule(kind=FaultKind.INTERNAL_ERROR, account_id=scenario.accounts[0].id))
        write_config(
            path,
            accounts(sim, scenario, [2000, 500]),
            fast_header(50).replace("poll_interval: 1s", "poll_interval: 2s"),
        )
        proc.proc.send_signal(signal.SIGHUP)
        reloaded = await proc.wait_for(
            lambda: next((e for e in proc.events if e["event"] == "reloaded"), None)
        )
        assert reloaded["accounts"] == ["acct0", "acct1"]
        assert reloaded["poll_interval_seconds"] == 2.0
        polls = await proc.more_polls(["acct0", "acct1"], 1)
        assert polls["acct0"]["outcome"] == "failed"
        assert polls["acct1"]["outcome"] == "ok"
        polls = await proc.more_polls(["acct0", "acct1"], 1)
        after = await proc.scrape_after(session, polls)
        assert budget(after, "acct0") == 2000
        assert budget(after, "acct1") == 500
        assert value(after, "softlayer_up", account="acct0") == 0
        assert value(after, "softlayer_up", account="acct1") == 1
        # Every failed source kept its data: the new poller started from what was served.
        assert billing(after, "acct0") == billing(before, "acct0")
        assert requests_of(after, "acct0") > requests_of(before, "acct0")

        # A file that does not parse: refused, logged, the running configuration stays.
        path.write_text("accounts: [unclosed\n")
        proc.proc.send_signal(signal.SIGHUP)
        failed = await proc.wait_for(
            lambda: next((e for e in proc.events if e["event"] == "reload_failed"), None)
        )
        assert str(path) in failed["error"]
        assert "line 2" in failed["error"]
        polls = await proc.more_polls(["acct1"], 1)
        kept = await proc.scrape_after(session, polls)
        assert budget(kept, "acct1") == 500
        assert billing(kept, "acct0") == billing(before, "acct0")
        assert await proc.terminate() == 0
    assert not [
        e for e in proc.events if e.get("level") == "error" and e["event"] != "reload_failed"
    ]
