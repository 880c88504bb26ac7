"""Turning measurements into the printed tables: ratios, floors, linear fits and targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LinearFit",
    "Target",
    "cpu_ratio",
    "fmt_bytes",
    "linear_fit",
    "markdown_table",
    "request_floor",
]


@dataclass(frozen=True, slots=True)
class LinearFit:
    """Least-squares line y = intercept + slope * x and how well it explains the points."""

    slope: float
    intercept: float
    r_squared: float
    max_residual: float  # largest distance of a point from the line, in y units


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit:
    """Fit a line through the points; needs at least two distinct x values."""
    n = len(xs)
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a linear fit needs at least two distinct sizes")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    predicted = [intercept + slope * x for x in xs]
    ss_res = sum((y - p) ** 2 for y, p in zip(ys, predicted, strict=True))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    r_squared = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    worst = max(abs(y - p) for y, p in zip(ys, predicted, strict=True))
    return LinearFit(slope, intercept, r_squared, worst)


def cpu_ratio(numerator: float, denominator: float, resolution: float) -> str:
    """Format ``numerator / denominator`` as ``N.NNx``, honest about the CPU clock's resolution.

    CPU time is counted in clock ticks (10 ms on Linux), so a figure below ``resolution`` (one
    tick, in the same unit as the figures) is "somewhere under it", not a measurement; dividing
    by it printed ratios like 84000000000.0x. A denominator under the resolution gives a
    lower bound (``>= N.NNx``); both under it give ``n/a``.
    """
    if resolution <= 0:
        raise ValueError("resolution must be positive")
    if denominator >= resolution:
        return f"{numerator / denominator:.2f}x"
    if numerator < resolution:
        return f"n/a (both under the clock resolution {resolution:.3g})"
    return f">= {numerator / resolution:.2f}x (divisor under the clock resolution {resolution:.3g})"


def request_floor(items: int, window_invoices: int, page_size: int) -> int:
    """The fewest requests one refresh can make at this page size.

    Every item page and every window invoice page must be fetched; the account totals, the
    latest recurring and the pending invoice fit into one getObject with a combined mask.
    """
    item_pages = max(1, math.ceil(items / page_size))
    invoice_pages = max(1, math.ceil(window_invoices / page_size))
    return item_pages + invoice_pages + 1


@dataclass(frozen=True, slots=True)
class Target:
    """One performance goal with its measured value and verdict."""

    name: str
    goal: str
    measured: str
    passed: bool | None  # None: not measured in this run
    margin: str

    @property
    def verdict(self) -> str:
        """PASS, MISS, or n/a when the run did not measure it."""
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "MISS"

    def row(self) -> list[str]:
        """The target as a table row."""
        return [self.name, self.goal, self.measured, self.verdict, self.margin]


def fmt_bytes(count: float) -> str:
    """Bytes in a human unit (binary multiples)."""
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table with columns padded for reading in a terminal."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])
