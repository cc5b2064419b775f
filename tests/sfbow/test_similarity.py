import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sfbow import cosine, fuzzy_jaccard, paired_cosine, paired_fuzzy_jaccard

nonnegative = arrays(np.float32, 6, elements=st.floats(0, 10, width=32))


def test_known_values():
    assert fuzzy_jaccard([1, 0, 2], [1, 1, 1]) == pytest.approx((1 + 0 + 1) / (1 + 1 + 2))
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 1], [2, 2]) == pytest.approx(1.0)


def test_zero_vectors_give_zero_never_nan():
    zero = np.zeros(4)
    assert fuzzy_jaccard(zero, zero) == 0.0 and cosine(zero, zero) == 0.0
    assert fuzzy_jaccard(zero, [1, 2, 3, 4]) == 0.0 and cosine(zero, [1, 2, 3, 4]) == 0.0


@given(nonnegative, nonnegative)
def test_jaccard_is_symmetric_bounded_and_one_on_itself(x, y):
    value = fuzzy_jaccard(x, y)
    assert 0.0 <= value <= 1.0 + 1e-12 and value == fuzzy_jaccard(y, x)
    if x.sum() > 0:
        assert fuzzy_jaccard(x, x) == pytest.approx(1.0)


@given(arrays(np.float32, (5, 3), elements=st.floats(0, 10, width=32)),
       arrays(np.float32, (5, 3), elements=st.floats(0, 10, width=32)))
def test_paired_versions_match_the_single_ones(x, y):
    np.testing.assert_allclose(paired_fuzzy_jaccard(x, y), [fuzzy_jaccard(a, b) for a, b in zip(x, y)])
    np.testing.assert_allclose(paired_cosine(x, y), [cosine(a, b) for a, b in zip(x, y)])


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="row-aligned"):
        paired_cosine(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="one vector"):
        cosine(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="x has NaN"):
        fuzzy_jaccard([np.nan, 1.0], [1.0, 1.0])
