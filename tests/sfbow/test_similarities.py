import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sfbow
import sfbow.similarities
from sfbow import cosine, fuzzy_jaccard, paired_cosine, paired_fuzzy_jaccard

nonnegative = arrays(np.float32, 6, elements=st.floats(0, 10, width=32))
#: Every finite float64, the extremes (1e308, subnormals) and negatives included.
finite = arrays(np.float64, 5, elements=st.floats(allow_nan=False, allow_infinity=False))
finite32 = arrays(np.float32, 5, elements=st.floats(allow_nan=False, allow_infinity=False, width=32))
powers_of_two = st.integers(-1000, 1000).map(lambda e: math.ldexp(1.0, e))


def test_known_values():
    assert fuzzy_jaccard([1, 0, 2], [1, 1, 1]) == pytest.approx((1 + 0 + 1) / (1 + 1 + 2))
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine([1, 2], [-1, -2]) == pytest.approx(-1.0)


def test_the_module_is_a_module_and_the_function_a_function():
    assert sfbow.similarities.fuzzy_jaccard is fuzzy_jaccard
    assert callable(sfbow.similarity) and sfbow.similarity.__module__ == "sfbow"


def test_zero_vectors_give_zero_never_nan():
    zero = np.zeros(4)
    assert fuzzy_jaccard(zero, zero) == 0.0 and cosine(zero, zero) == 0.0
    assert fuzzy_jaccard(zero, [1, 2, 3, 4]) == 0.0 and cosine(zero, [1, 2, 3, 4]) == 0.0


@pytest.mark.parametrize("value", [1e300, 1e308, 1.7976931348623157e308, 1e-300, 1e-310, 5e-324])
def test_equal_vectors_at_the_edges_of_float64_are_identical(value):
    v = np.full(8, value)
    assert cosine(v, v) == pytest.approx(1.0, abs=1e-15)
    assert fuzzy_jaccard(v, v) == 1.0
    assert cosine(v, -v) == pytest.approx(-1.0, abs=1e-15)


def test_negative_memberships_count_as_zero():
    assert fuzzy_jaccard([-1.0, -2.0], [-1.0, -2.0]) == 0.0
    assert fuzzy_jaccard([-5.0, 2.0, 1.0], [3.0, 2.0, 1.0]) == fuzzy_jaccard([0.0, 2.0, 1.0], [3.0, 2.0, 1.0])
    assert fuzzy_jaccard([-1.0, 1.0], [1.0, -1.0]) == 0.0


@given(finite, finite)
def test_fuzzy_jaccard_is_finite_symmetric_and_in_0_1_for_every_finite_input(x, y):
    value = fuzzy_jaccard(x, y)
    assert 0.0 <= value <= 1.0 and value == fuzzy_jaccard(y, x)
    assert fuzzy_jaccard(x, x) == (1.0 if (x > 0).any() else 0.0)


@given(finite, finite)
def test_cosine_is_finite_symmetric_and_in_minus1_1_for_every_finite_input(x, y):
    value = cosine(x, y)
    assert -1.0 <= value <= 1.0 and value == cosine(y, x)
    if x.any():
        assert cosine(x, x) == pytest.approx(1.0, abs=1e-12)


@given(finite32, finite32)
def test_float32_inputs_are_finite_too(x, y):
    assert 0.0 <= fuzzy_jaccard(x, y) <= 1.0 and -1.0 <= cosine(x, y) <= 1.0


@given(finite, finite, powers_of_two, powers_of_two)
def test_scaling_by_a_power_of_two_changes_nothing(x, y, a, b):
    with np.errstate(over="ignore", under="ignore"):
        ax, ay, by = a * x, a * y, b * y
    assume(np.isfinite(ax).all() and np.isfinite(ay).all() and np.isfinite(by).all())
    assume(np.array_equal(ax / a, x) and np.array_equal(ay / a, y) and np.array_equal(by / b, y))  # exact
    assert fuzzy_jaccard(ax, ay) == fuzzy_jaccard(x, y)
    assert cosine(ax, by) == cosine(x, y)


# Entries 0 or of magnitude >= 1e-100, so that c * x neither underflows nor overflows for c in [1e-200, 1e200]:
# the scaled vectors are then the same vectors, up to rounding.
_scalable = st.floats(-1e6, 1e6).filter(lambda v: v == 0 or abs(v) >= 1e-100)


@given(arrays(np.float64, 5, elements=_scalable), arrays(np.float64, 5, elements=_scalable),
       st.floats(1e-200, 1e200))
def test_scaling_by_any_positive_factor_changes_nothing_beyond_rounding(x, y, c):
    assume(np.abs(x).max() > 1e-3 and np.abs(y).max() > 1e-3)
    assert fuzzy_jaccard(c * x, c * y) == pytest.approx(fuzzy_jaccard(x, y), abs=1e-9)
    assert cosine(c * x, y) == pytest.approx(cosine(x, y), abs=1e-9)


@given(nonnegative, nonnegative)
def test_jaccard_is_symmetric_bounded_and_one_on_itself(x, y):
    value = fuzzy_jaccard(x, y)
    assert 0.0 <= value <= 1.0 and value == fuzzy_jaccard(y, x)
    if x.sum() > 0:
        assert fuzzy_jaccard(x, x) == 1.0


@given(arrays(np.float32, (5, 3), elements=st.floats(0, 10, width=32)),
       arrays(np.float32, (5, 3), elements=st.floats(0, 10, width=32)))
def test_paired_versions_match_the_single_ones(x, y):
    np.testing.assert_array_equal(paired_fuzzy_jaccard(x, y), [fuzzy_jaccard(a, b) for a, b in zip(x, y)])
    np.testing.assert_array_equal(paired_cosine(x, y), [cosine(a, b) for a, b in zip(x, y)])


def test_unscaled_values_match_the_textbook_formulas():
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 7)), rng.random((50, 7))
    np.testing.assert_allclose(paired_fuzzy_jaccard(x, y), np.minimum(x, y).sum(1) / np.maximum(x, y).sum(1),
                               rtol=1e-14)
    x, y = x - 0.5, y - 0.5
    np.testing.assert_allclose(paired_cosine(x, y), (x * y).sum(1) / np.linalg.norm(x, axis=1)
                               / np.linalg.norm(y, axis=1), rtol=1e-13)


def test_empty_batches_and_zero_width():
    assert paired_cosine(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)
    np.testing.assert_array_equal(paired_fuzzy_jaccard(np.zeros((2, 0)), np.zeros((2, 0))), [0.0, 0.0])


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="row-aligned"):
        paired_cosine(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="one vector"):
        cosine(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="x has NaN"):
        fuzzy_jaccard([np.nan, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="y has NaN or inf"):
        cosine([1.0, 1.0], [np.inf, 1.0])
    with pytest.raises(TypeError, match="y must hold real numbers, got dtype complex128"):
        cosine([1.0, 1.0], [1j, 1.0])
    with pytest.raises(TypeError, match="x must hold real numbers"):
        fuzzy_jaccard(["a", "b"], [1.0, 1.0])
