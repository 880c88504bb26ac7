"""Fixtures for the simulator's own tests: a small scenario served on an ephemeral port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from exporter.simulator import AccountSpec, Scenario, SimAccount, SimulatorServer

#: A fixed clock keeps generated dates identical from run to run.
FIXED_NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def basic(acct: SimAccount) -> dict[str, str]:
    """Classic username:apikey Basic auth headers for an account."""
    return {"Authorization": aiohttp.encode_basic_auth(acct.username, acct.api_key)}


@dataclass
class Answer:
    """One HTTP answer from the simulator."""

    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def total(self) -> int | None:
        raw = self.headers.get("SoftLayer-Total-Items")
        return None if raw is None else int(raw)


class Client:
    """A thin loopback client for the tests (no exporter code involved)."""

    def __init__(self, sim: SimulatorServer, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def get(
        self,
        path: str,
        acct: SimAccount | None = None,
        headers: dict[str, str] | None = None,
        **query: str,
    ) -> Answer:
        hdrs = dict(headers or {})
        if acct is not None:
            hdrs.update(basic(acct))
        async with self.session.get(self.sim.endpoint + path, params=query, headers=hdrs) as r:
            return Answer(r.status, r.headers, await r.read())

    async def post(self, path: str, acct: SimAccount, payload: Any = None, **query: str) -> Answer:
        async with self.session.post(
            self.sim.endpoint + path, params=query, headers=basic(acct), json=payload
        ) as r:
            return Answer(r.status, r.headers, await r.read())


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.generate(
        seed=7,
        accounts=[
            AccountSpec(
                items=60, pending_invoice=True, invoice_months=8, tax_rate=Decimal("0.0825")
            ),
            AccountSpec(items=5, pending_invoice=False, invoice_months=3),
        ],
        now=FIXED_NOW,
    )


@pytest.fixture
async def sim(scenario: Scenario) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(scenario, rate_limit_per_second=None) as server:
        yield server


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(sim, session)
