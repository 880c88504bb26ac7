"""Tests of the poller: per-account schedule, steady state, sources, faults, a billing month."""
