"""Intervals over seeds: the mean and a t-based 95 % interval (Student's t with n - 1 degrees of freedom:
mean +- t * sd / sqrt(n), t = 4.30 for 3 seeds, 2.78 for 5), never 1.96 sd / sqrt(n), which is far too
narrow for a handful of seeds. Under 2 seeds there is no interval over seeds, and the text says so; numbers
from fewer than :data:`FEW_SEEDS` seeds are flagged. Within one seed, intervals over pairs stay the paired
bootstrap's (``biasbench``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
FEW_SEEDS = 5  # numbers over fewer seeds than this are flagged in the report
FEW_MARK = "*"


@dataclasses.dataclass(frozen=True)
class SeedInterval:
    """Mean over ``n`` seeds and its t-based interval (``low``/``high`` None when n < 2)."""

    mean: float
    n: int
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else self.mean - self.low

    @property
    def few(self) -> bool:
        return self.n < FEW_SEEDS


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedInterval | None:
    """The mean of ``values`` (one per seed) with its two-sided t interval; None for no values."""
    from scipy.stats import t

    data = np.asarray([float(v) for v in values], dtype=np.float64)
    if data.size == 0:
        return None
    if not np.isfinite(data).all():
        raise ValueError(f"t_interval: values must be finite, got {values!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"t_interval: confidence must be in (0, 1), got {confidence!r}")
    mean = float(data.mean())
    if data.size < 2:
        return SeedInterval(mean, 1, None, None)
    half = float(t.ppf(0.5 + confidence / 2, data.size - 1)) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return SeedInterval(mean, int(data.size), mean - half, mean + half)


def _number(value: float, digits: int) -> str:
    return f"{0.0 if abs(value) < 0.5 * 10.0**-digits else value:.{digits}f}"  # no "-0.00" from rounding


def describe(values: Sequence[float], digits: int = 2) -> str:
    """A table cell: ``mean [low, high] (n=3*)`` (``*``: fewer than FEW_SEEDS seeds), ``value (1 seed, no
    interval)``, or ``-`` for no values."""
    interval = t_interval(values)
    if interval is None:
        return "-"
    if interval.low is None or interval.high is None:
        return f"{_number(interval.mean, digits)} (1 seed, no interval)"
    mark = FEW_MARK if interval.few else ""
    return (f"{_number(interval.mean, digits)} [{_number(interval.low, digits)}, {_number(interval.high, digits)}]"
            f" (n={interval.n}{mark})")


FOOTNOTE = (f"Over seeds: mean [95 % t interval, n - 1 degrees of freedom] (n seeds); {FEW_MARK}: fewer than "
            f"{FEW_SEEDS} seeds, so the interval rests on few values; one seed: its paired bootstrap interval "
            "over pairs where there is one, else no interval.")
