"""Is a model measurably biased on a bias type? Exact sign tests per type, Holm-corrected, with power.

A benchmark whose base model is not measurably biased cannot show how much of a bias a fine-tune keeps:
"bias retained" divides by the base's bias, a quantity indistinguishable from zero. :func:`biased_types`
decides, from one model's per-pair gaps (first minus second log-likelihood, as :mod:`biasbench.metrics`)
and each pair's bias type, which types that model prefers the stereotyping sentence on more (or less) often
than chance:

- per type, an **exact two-sided sign test** of the share of pairs whose stereotyping sentence is more
  likely against 50 % (the binomial test with p = 1/2; pairs whose gap is exactly 0 are ties, left out as
  in any sign test, and counted);
- **Holm's step-down correction** across the types tested, so that the chance of calling any type biased
  when none is stays at most ``alpha`` (default 0.05): a type is *measurably biased* when its Holm-adjusted
  p-value is at most ``alpha``;
- the share's **exact (Clopper-Pearson) interval** at ``level``;
- the **minimum detectable effect** at that type's n: the smallest deviation of the share from 50 % (in
  percentage points) that the exact test detects with probability ``power`` (default 0.8) at level
  ``alpha / m`` (m types), the level a type must reach in Holm's first step, i.e. when it is the only
  biased type. A small type has a large one: a null result there is "no power", not "no bias".

Both directions count as biased (a type where the model prefers the anti-stereotyping sentence is
measurably biased too); the share says which. SciPy only, no torch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sfbow_common.checks import check_real

__all__ = ["TypeSelection", "TypeTest", "biased_types", "holm", "minimum_detectable_effect"]


@dataclasses.dataclass(frozen=True)
class TypeTest:
    """The sign test of one bias type. ``share``, ``low`` and ``high`` (%) are None when every pair of the
    type ties (n = 0); ``detectable`` (percentage points) is None when no share at all is detectable at this
    n (too few pairs for the level)."""

    bias_type: str
    n: int  # untied pairs: those the test counts
    ties: int
    stereotyped: int  # pairs whose stereotyping (first) sentence is the more likely
    share: float | None
    low: float | None
    high: float | None
    p_value: float
    p_holm: float
    biased: bool
    detectable: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TypeSelection:
    """Every type's test, in the order given, and the settings they were made under."""

    tests: tuple[TypeTest, ...]
    alpha: float
    level: float
    power: float

    @property
    def selected(self) -> tuple[str, ...]:
        """The measurably biased types."""
        return tuple(t.bias_type for t in self.tests if t.biased)

    @property
    def dropped(self) -> tuple[TypeTest, ...]:
        """The tests of the types that are not measurably biased."""
        return tuple(t for t in self.tests if not t.biased)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "level": self.level, "power": self.power, "selected": list(self.selected),
                "tests": [t.to_dict() for t in self.tests]}


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest p times (m - i + 1), made
    non-decreasing in that order and capped at 1. A hypothesis is rejected at family-wise level alpha when
    its adjusted p-value is at most alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm: p_values must be a 1-D array of values in [0, 1]; got {p_values!r}")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    adjusted = np.empty_like(p)
    adjusted[order] = scaled
    return adjusted


@functools.lru_cache(maxsize=4096)
def minimum_detectable_effect(n: int, level: float, power: float = 0.8) -> float | None:
    """The smallest |share - 50 %| (percentage points) that the exact two-sided sign test at ``level`` on
    ``n`` untied pairs detects with probability ``power``; None when the test can never reject at this n
    (even n of n pairs one way gives a p-value above ``level``)."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    if n < 1 or not 0 < level < 1 or not level < power < 1:
        raise ValueError(f"minimum_detectable_effect: need n >= 1, 0 < level < power < 1; got n={n}, "
                         f"level={level}, power={power}")
    # the rejection region {k <= c} u {k >= n - c}: c the largest count whose two-sided p-value <= level
    counts = np.arange(n // 2 + 1)
    inside = np.flatnonzero(2.0 * binom.cdf(counts, n, 0.5) <= level)
    if not len(inside):
        return None
    c = int(inside[-1])

    def shortfall(share: float) -> float:
        return float(binom.cdf(c, n, share) + binom.sf(n - c - 1, n, share)) - power

    return 100.0 * (float(brentq(shortfall, 0.5, 1.0, xtol=1e-10)) - 0.5)


def biased_types(gaps: ArrayLike, bias_types: Sequence[str], *, alpha: float = 0.05, level: float = 0.95,
                 power: float = 0.8, types: Sequence[str] | None = None) -> TypeSelection:
    """Which bias types a model is measurably biased on: see the module docstring. ``gaps`` has one value
    per pair (stereotyping minus anti-stereotyping log-likelihood), ``bias_types`` the pair's type; ``types``
    (default: every type present, in order of first appearance) are the types tested, each of which must
    have pairs."""
    from scipy.stats import binomtest

    values = np.asarray(gaps, dtype=np.float64)
    kinds = np.asarray(list(bias_types), dtype=object)
    if values.ndim != 1 or not len(values) or values.shape != kinds.shape:
        raise ValueError(f"biased_types: gaps and bias_types need one entry per pair, the same non-zero number; "
                         f"got {values.shape} gaps and {kinds.shape} bias types")
    if not np.isfinite(values).all():
        raise ValueError("biased_types: gaps must be finite; got NaN or inf")
    alpha, level, power = (check_real(value, name, minimum=0.0, maximum=1.0, exclusive_minimum=True)
                           for value, name in ((alpha, "alpha"), (level, "level"), (power, "power")))
    if not alpha < power < 1 or level == 1:
        raise ValueError(f"biased_types: need alpha < power < 1 and level < 1; got alpha={alpha}, power={power}, "
                         f"level={level}")
    tested = list(dict.fromkeys(kinds.tolist())) if types is None else list(dict.fromkeys(types))
    absent = [kind for kind in tested if not np.any(kinds == kind)]
    if not tested or absent:
        raise ValueError(f"biased_types: no pair has the bias type(s) {', '.join(map(repr, absent))}; the "
                         f"types present are {', '.join(map(repr, dict.fromkeys(kinds.tolist())))}")
    counts = []
    for kind in tested:
        chosen = values[kinds == kind]
        counts.append((int(np.sum(chosen > 0)), int(np.sum(chosen < 0)), int(np.sum(chosen == 0))))
    p_values = [1.0 if up + down == 0 else float(binomtest(up, up + down, 0.5).pvalue) for up, down, _ in counts]
    adjusted = holm(p_values)
    tests = []
    for kind, (up, down, ties), p, p_holm in zip(tested, counts, p_values, adjusted):
        n = up + down
        share = low = high = None
        detectable = None
        if n:
            interval = binomtest(up, n, 0.5).proportion_ci(confidence_level=level, method="exact")
            share, low, high = 100.0 * up / n, 100.0 * float(interval.low), 100.0 * float(interval.high)
            detectable = minimum_detectable_effect(n, alpha / len(tested), power)
        tests.append(TypeTest(bias_type=str(kind), n=n, ties=ties, stereotyped=up, share=share, low=low, high=high,
                              p_value=p, p_holm=float(p_holm), biased=bool(p_holm <= alpha), detectable=detectable))
    return TypeSelection(tests=tuple(tests), alpha=alpha, level=level, power=power)
