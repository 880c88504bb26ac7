"""Tests of the installed distribution."""
