"""Fixtures: the simulated SoftLayer API on loopback and pollers for it (tests.helpers.simapi)."""

from tests.helpers.simapi import make_poller, scenario, sim

__all__ = ["make_poller", "scenario", "sim"]
