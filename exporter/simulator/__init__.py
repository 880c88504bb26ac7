"""An embedded SoftLayer REST API simulator for tests, the demo and benchmarks.

Faithful to the wire (decimal strings vs numbers, explicit nulls vs absent keys, masks,
filters, paging with ``SoftLayer-Total-Items``, error bodies and status codes), deterministic
from a seed, and able to misbehave on demand (:class:`FaultRule`). See the README section
"SoftLayer API simulator" and ``softlayer-api-simulator --help``.
"""

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
from exporter.simulator.threaded import ThreadedSimulator

__all__ = [
    "AccountSpec",
    "AccountTruth",
    "CategoryTruth",
    "FaultKind",
    "FaultRule",
    "InvoiceTruth",
    "Scenario",
    "SimAccount",
    "SimulatorServer",
    "ThreadedSimulator",
]
