"""Tests that keep ``python -m benchmarks`` and its helpers working (no speed goals)."""
