"""The benchmark's CPU ratios never divide by a CPU time below the clock's resolution."""

from __future__ import annotations

import pytest

from benchmarks.report import cpu_ratio


def test_measured_divisor_gives_a_plain_ratio() -> None:
    """Both figures at or above one tick: the ordinary quotient."""
    assert cpu_ratio(3.0, 1.5, 0.2) == "2.00x"
    assert cpu_ratio(0.2, 0.2, 0.2) == "1.00x"


def test_divisor_under_the_resolution_gives_a_lower_bound() -> None:
    """A zero (or sub-tick) divisor: '>= numerator / tick', not 84000000000.0x."""
    text = cpu_ratio(0.84, 0.0, 0.2)
    assert text.startswith(">= 4.20x")
    assert "resolution 0.2" in text
    assert cpu_ratio(0.84, 1e-12, 0.2).startswith(">= 4.20x")


def test_both_under_the_resolution_is_not_a_number() -> None:
    """Neither figure measurable: n/a."""
    assert cpu_ratio(0.1, 0.0, 0.2).startswith("n/a")


def test_resolution_must_be_positive() -> None:
    """A zero resolution is a caller error, not a silent division."""
    with pytest.raises(ValueError, match="resolution"):
        cpu_ratio(1.0, 0.0, 0.0)
