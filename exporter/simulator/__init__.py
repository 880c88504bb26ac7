"""An embedded SoftLayer REST API simulator for tests, the demo and benchmarks.

Faithful to the wire (decimal strings vs numbers, explicit nulls vs absent keys, masks,
filters, paging with ``SoftLayer-Total-Items``, error bodies and status codes), deterministic
from a seed, and able to misbehave on demand (:class:`FaultRule`, a page cap, page hooks that
change the account between two pages of one walk). A billing clock (:class:`SimClock`,
``Scenario.advance``) drives a billing month: hourly accrual, the anniversary's invoice and
its payment. See the README section
"SoftLayer API simulator" and ``softlayer-api-simulator --help``.
"""

from exporter.simulator.clock import SimClock
from exporter.simulator.faults import FaultKind, FaultRule
from exporter.simulator.scenario import (
    AccountSpec,
    AccountTruth,
    CategoryTruth,
    InvoiceTruth,
    Scenario,
    SimAccount,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.state import PageHook
from exporter.simulator.threaded import ThreadedSimulator

__all__ = [
    "AccountSpec",
    "AccountTruth",
    "CategoryTruth",
    "FaultKind",
    "FaultRule",
    "InvoiceTruth",
    "PageHook",
    "Scenario",
    "SimAccount",
    "SimClock",
    "SimulatorServer",
    "ThreadedSimulator",
]
