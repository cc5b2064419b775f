"""Statistics for comparing a search variant with a baseline over seeds.

- Vargha-Delaney A12: the probability that a value drawn from the first sample exceeds one drawn from the
  second, ties counting half. 0.5 is no effect; 1.0 means every first value beats every second one.
- Its magnitude from ``|2 A12 - 1|`` (Cliff's delta): negligible < 0.147 <= small < 0.33 <= medium <
  0.474 <= large (Romano et al.'s thresholds).
- The two-sided Mann-Whitney U test (SciPy). With all values equal the test is undefined: p = 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["a12", "compare", "magnitude", "mann_whitney_p"]


def _sample(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has NaN or inf values")
    return array


def a12(first: Sequence[float], second: Sequence[float]) -> float:
    """Vargha-Delaney A12 of ``first`` against ``second``."""
    x, y = _sample(first, "first"), _sample(second, "second")
    greater = (x[:, None] > y[None, :]).sum()
    equal = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * equal) / (x.size * y.size))


def magnitude(effect: float) -> str:
    """negligible, small, medium or large, from ``|2 A12 - 1|``."""
    delta = abs(2.0 * effect - 1.0)
    if delta < 0.147:
        return "negligible"
    if delta < 0.33:
        return "small"
    if delta < 0.474:
        return "medium"
    return "large"


def mann_whitney_p(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (1.0 when every value is the same)."""
    from scipy.stats import mannwhitneyu

    x, y = _sample(first, "first"), _sample(second, "second")
    if np.all(np.concatenate([x, y]) == x[0]):
        return 1.0
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def compare(first: Sequence[float], second: Sequence[float]) -> tuple[float, str, float]:
    """(A12, its magnitude, Mann-Whitney p) of ``first`` against ``second``."""
    effect = a12(first, second)
    return effect, magnitude(effect), mann_whitney_p(first, second)
