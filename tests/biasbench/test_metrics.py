"""Pair metrics and paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from biasbench import (
    bias_retained,
    crows_metrics,
    load_crows_pairs,
    mean_gap,
    pair_metrics,
    paired_bootstrap,
    paired_difference,
    preference_share,
    winobias_metrics,
)


def test_preference_and_gap_of_known_pairs():
    metrics = pair_metrics([0.0, -1.0, -2.0, -3.0], [-1.0, -1.0, -1.0, -1.0], n_resamples=500)
    assert metrics.preference.value == 25.0  # one strict win; the tie counts for neither side
    assert metrics.mean_gap.value == pytest.approx(-0.5)
    assert metrics.n == 4 and metrics.preference.low <= 25.0 <= metrics.preference.high


def test_interval_narrows_with_more_pairs():
    rng = np.random.default_rng(1)
    small = paired_bootstrap(mean_gap, rng.normal(0.2, 1, 100))
    large = paired_bootstrap(mean_gap, rng.normal(0.2, 1, 2500))
    assert large.high - large.low < 0.5 * (small.high - small.low)
    assert large.low < 0.2 < large.high


def test_paired_difference_cancels_shared_item_noise():
    rng = np.random.default_rng(2)
    items = rng.normal(0, 3, 400)  # large per-pair spread shared by both models
    a, b = items + 0.1, items
    paired = paired_difference(mean_gap, a, b)
    assert paired.value == pytest.approx(0.1) and paired.high - paired.low < 1e-9
    unpaired = paired_bootstrap(mean_gap, a)
    assert unpaired.high - unpaired.low > 0.3


def test_bias_retained_ends():
    rng = np.random.default_rng(3)
    base, full = rng.normal(0.5, 1, 300), rng.normal(-0.2, 1, 300)
    assert bias_retained(base, base, full).value == pytest.approx(1.0)
    assert bias_retained(full, base, full).value == pytest.approx(0.0)
    half = bias_retained((base + full) / 2, base, full)
    assert half.value == pytest.approx(0.5) and half.low < 0.5 < half.high


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(-50, 50)))
def test_bootstrap_interval_is_ordered_and_in_range(gaps):
    estimate = paired_bootstrap(preference_share, gaps, n_resamples=200)
    assert 0.0 <= estimate.low <= estimate.high <= 100.0
    assert estimate.value == pytest.approx(100.0 * np.mean(gaps > 0))


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="same length"):
        paired_difference(mean_gap, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        pair_metrics([np.nan], [0.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(mean_gap, [1.0], level=0.0)


def test_crows_and_winobias_metrics_call_the_scorer_once(bias_dir):
    from biasbench import load_winobias_pairs

    pairs = load_crows_pairs(bias_dir / "crows_pairs_anonymized.csv")
    calls = []

    def by_length(sentences):  # a scorer that prefers short sentences
        calls.append(len(sentences))
        return [-float(len(s)) for s in sentences]

    results, gaps = crows_metrics(pairs, by_length, n_resamples=100)
    assert calls == [2 * len(pairs)] and set(results) == {"all", "gender"}
    assert results["all"].n == 1508 and results["gender"].n == 262
    expected = [len(p.anti_stereotyping) - len(p.stereotyping) for p in pairs]
    assert np.array_equal(gaps, expected)
    wino, wino_gaps = winobias_metrics(load_winobias_pairs(bias_dir / "winobias", "dev"), by_length, n_resamples=100)
    assert wino.n == 792 and len(wino_gaps) == 792
    with pytest.raises(ValueError, match="finite log-likelihoods"):
        crows_metrics(pairs[:3], lambda s: [0.0])
