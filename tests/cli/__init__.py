"""Tests of the command line: usage errors, --once and --demo against the simulator."""
