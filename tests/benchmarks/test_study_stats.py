"""The study's intervals over seeds are Student-t intervals with n - 1 degrees of freedom, and the cells
say so when there are too few seeds for one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.lora_rank.stats import FEW_SEEDS, describe, t_interval


def test_three_seeds_use_t_4_30_not_1_96():
    values = [0.35, 0.39, 0.43]
    interval = t_interval(values)
    sd = float(np.std(values, ddof=1))
    assert interval.half_width == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)
    assert interval.half_width > 2 * 1.96 * sd / math.sqrt(3)
    assert describe(values) == "0.39 [0.29, 0.49] (n=3*)"


def test_five_seeds_are_not_flagged_and_fewer_are():
    assert FEW_SEEDS == 5
    assert describe([1.0, 2.0, 3.0, 4.0, 5.0], 1) == f"3.0 [{3 - 2.776445 * math.sqrt(2.5) / math.sqrt(5):.1f}, " \
        f"{3 + 2.776445 * math.sqrt(2.5) / math.sqrt(5):.1f}] (n=5)"
    assert describe([1.0, 2.0, 3.0, 4.0], 1).endswith("(n=4*)")


def test_one_seed_says_so_and_none_is_a_dash():
    assert describe([0.5]) == "0.50 (1 seed, no interval)"
    assert t_interval([0.5]).low is None
    assert describe([]) == "-" and t_interval([]) is None


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        t_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=1.5)


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12))
def test_the_interval_is_centred_on_the_mean_and_narrows_with_confidence(values):
    wide, narrow = t_interval(values, 0.99), t_interval(values, 0.5)
    assert wide.mean == pytest.approx(float(np.mean(values)), abs=1e-9)
    assert wide.low <= narrow.low + 1e-9 and narrow.high <= wide.high + 1e-9
    assert wide.mean - wide.low == pytest.approx(wide.high - wide.mean, abs=1e-6)
