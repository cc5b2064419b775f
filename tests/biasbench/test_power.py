"""Per-type sign tests with Holm's correction (biasbench.power) on synthetic gaps with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biasbench import biased_types, holm, minimum_detectable_effect


def _gaps(counts: dict[str, tuple[int, int]], ties: int = 0, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Per type (pairs preferring the stereotype, pairs preferring the other sentence), shuffled, with
    random magnitudes and ``ties`` zero gaps per type."""
    rng = np.random.default_rng(seed)
    gaps, kinds = [], []
    for kind, (up, down) in counts.items():
        gaps += [*rng.uniform(0.01, 3, up), *-rng.uniform(0.01, 3, down), *[0.0] * ties]
        kinds += [kind] * (up + down + ties)
    order = rng.permutation(len(gaps))
    return np.asarray(gaps)[order], [kinds[i] for i in order]


def _exact_power(n: int, level: float, share: float) -> float:
    """Power of the two-sided sign test, from math.comb (independent of SciPy)."""
    pmf0 = [math.comb(n, k) / 2**n for k in range(n + 1)]
    reject = [k for k in range(n + 1) if min(1.0, 2 * min(sum(pmf0[: k + 1]), sum(pmf0[k:]))) <= level]
    return sum(math.comb(n, k) * share**k * (1 - share) ** (n - k) for k in reject)


def test_a_known_p_value_interval_and_ties():
    gaps, kinds = _gaps({"gender": (9, 1)}, ties=3)
    (test,) = biased_types(gaps, kinds).tests
    assert (test.n, test.ties, test.stereotyped, test.share) == (10, 3, 9, 90.0)
    assert test.p_value == pytest.approx(22 / 1024)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    assert test.p_holm == test.p_value and test.biased  # one type: Holm changes nothing
    assert test.low < 90.0 < test.high and test.low == pytest.approx(100 * 0.5549839, abs=1e-4)  # Clopper-Pearson


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["gender", "race-color", "age", "religion", "disability"]),
                       st.integers(1, 150), min_size=1), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_no_type_passes_on_50_50_data(halves, ties, seed):
    gaps, kinds = _gaps({kind: (half, half) for kind, half in halves.items()}, ties, seed)
    selection = biased_types(gaps, kinds)
    assert selection.selected == () and len(selection.dropped) == len(halves)
    assert all(t.p_value == 1.0 and t.share == 50.0 and t.low < 50 < t.high for t in selection.tests)


@pytest.mark.parametrize("up, down", [(80, 20), (20, 80)])  # either direction is a measurable bias
def test_a_strongly_biased_type_passes_among_balanced_ones(up, down):
    counts = {"race-color": (up, down), **{kind: (50, 50) for kind in ("gender", "age", "religion")}}
    selection = biased_types(*_gaps(counts))
    assert selection.selected == ("race-color",)
    biased = next(t for t in selection.tests if t.bias_type == "race-color")
    assert biased.p_holm == pytest.approx(4 * biased.p_value) and biased.p_holm < 1e-7
    assert biased.share == float(up) and not biased.low <= 50 <= biased.high


def test_holm_is_applied_across_the_types():
    """62 of 100 is significant alone (p = 0.021) but not as one of nine such types (Holm: 9 x 0.021)."""
    alone = biased_types(*_gaps({"gender": (62, 38)}))
    assert alone.selected == ("gender",) and alone.tests[0].p_value == pytest.approx(0.0210, abs=1e-4)
    nine = biased_types(*_gaps({f"type{i}": (62, 38) for i in range(9)}))
    assert nine.selected == ()
    assert all(t.p_value < 0.05 and t.p_holm == pytest.approx(min(1, 9 * t.p_value)) for t in nine.tests)


def test_the_family_wise_error_stays_under_alpha_on_fair_coins():
    """300 families of nine unbiased types (fair coin flips): Holm keeps the share of families with any
    type called biased under alpha (uncorrected tests would call one in about 37 % of them)."""
    rng = np.random.default_rng(7)
    false = 0
    for _ in range(300):
        n = rng.integers(20, 120, size=9)
        kinds = [f"t{i}" for i, size in enumerate(n) for _ in range(size)]
        false += bool(biased_types(rng.choice([-1.0, 1.0], size=len(kinds)), kinds).selected)
    assert false / 300 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_matches_its_definition(p):
    adjusted = holm(p)
    order = sorted(range(len(p)), key=lambda i: p[i])
    running = 0.0
    for position, i in enumerate(order):  # the step-down definition, written out
        running = max(running, min(1.0, (len(p) - position) * p[i]))
        assert adjusted[i] == pytest.approx(running)
    assert all(a >= b for a, b in zip(adjusted, p))


@pytest.mark.parametrize("n, level", [(30, 0.05), (200, 0.05 / 2), (83, 0.05 / 9)])
def test_the_minimum_detectable_effect_has_the_stated_power(n, level):
    effect = minimum_detectable_effect(n, level, 0.8)
    assert effect is not None and 0 < effect < 50
    assert _exact_power(n, level, 0.5 + effect / 100) == pytest.approx(0.8, abs=1e-6)
    assert _exact_power(n, level, 0.5 + (effect - 1) / 100) < 0.8


def test_the_detectable_effect_shrinks_with_n_and_is_none_when_nothing_can_be_detected():
    effects = [minimum_detectable_effect(n, 0.05 / 9) for n in (20, 50, 200, 800)]
    assert all(a > b for a, b in zip(effects, effects[1:]))  # type: ignore[operator]
    assert minimum_detectable_effect(3, 0.05) is None  # 3 of 3 one way: p = 0.25
    (test,) = biased_types([1.0, 1.0, 1.0], ["age"] * 3).tests
    assert test.detectable is None and not test.biased


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one entry per pair"):
        biased_types([1.0, -1.0], ["gender"])
    with pytest.raises(ValueError, match="finite"):
        biased_types([1.0, np.nan], ["gender", "age"])
    with pytest.raises(ValueError, match="no pair has the bias type.*'religion'"):
        biased_types([1.0, -1.0], ["gender", "age"], types=["gender", "religion"])
    with pytest.raises(ValueError, match="alpha < power"):
        biased_types([1.0], ["gender"], alpha=0.5, power=0.4)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm([0.5, 1.5])
