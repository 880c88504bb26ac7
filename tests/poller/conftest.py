"""Fixtures: a simulated SoftLayer scenario (the simulator is ``sim``) and pollers for it."""

from tests.helpers.simapi import make_poller, scenario

__all__ = ["make_poller", "scenario"]
