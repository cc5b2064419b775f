"""Numbers at the edges of float32: normalisation and memberships stay finite, or the model says why."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sfbow import SFBoW, WordVectors
from sfbow.model import unit_rows

from .conftest import WORDS

FLOAT32_MAX = float(np.finfo(np.float32).max)
finite_float32 = st.floats(-FLOAT32_MAX, FLOAT32_MAX, width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=finite_float32))
def test_unit_rows_gives_norm_one_for_every_nonzero_finite_row(matrix):
    rows = unit_rows(matrix)
    assert rows.dtype == np.float32 and np.isfinite(rows).all()
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    nonzero = np.any(matrix != 0, axis=1)
    np.testing.assert_allclose(norms[nonzero], 1.0, rtol=1e-5)
    assert np.all(rows[~nonzero] == 0)
    # no entry changes sign (one below 2**-149 of its row's largest may round to zero)
    assert np.all(rows.astype(np.float64) * matrix >= 0)


@pytest.mark.parametrize("scale", [2e19, 5e37, 1e-23, 1e-40, 1e-42])
def test_huge_and_tiny_vectors_normalise_like_ordinary_ones(scale):
    base = np.array([[3.0, 4.0, 0.0], [1.0, -1.0, 1.0]], dtype=np.float32)
    scaled = (base.astype(np.float64) * scale).astype(np.float32)
    expected = unit_rows(base)
    np.testing.assert_allclose(unit_rows(scaled), expected, rtol=1e-6 if scale > 1e-38 else 1e-3)


def test_unit_rows_is_bit_identical_to_a_plain_division_for_ordinary_rows():
    matrix = np.random.default_rng(0).standard_normal((200, 50)).astype(np.float32)
    plain = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    np.testing.assert_array_equal(unit_rows(matrix), plain)  # the power-of-two scaling is exact


def test_vectors_near_2e19_give_the_same_model_as_unit_vectors():
    base = np.random.default_rng(1).standard_normal((len(WORDS), 6)).astype(np.float32)
    small = SFBoW(WordVectors(WORDS, base), "gaussian", k=9)
    huge = SFBoW(WordVectors(WORDS, base * np.float32(2e19)), "gaussian", k=9)
    sentences = ["the cat sat on a mat", "a dog ran ."]
    np.testing.assert_allclose(huge.encode(sentences), small.encode(sentences), rtol=1e-5, atol=1e-7)
    assert np.any(huge.encode(sentences) > 0)


@pytest.mark.parametrize("memberships", ["float32", "on-the-fly"])
def test_memberships_that_would_overflow_float32_are_refused_at_construction(memberships):
    vectors = WordVectors(["a", "b"], np.array([[3e19, 3e19], [1.0, 0.0]], np.float32))
    universe = np.array([[3e19, 3e19]], np.float32)
    with pytest.raises(ValueError, match="memberships could reach 1.8e\\+39, beyond the float32 range"):
        SFBoW(vectors, universe, normalize=False, memberships=memberships)
    model = SFBoW(vectors, universe, normalize=True, memberships=memberships)  # unit words: 4.2e19 fits
    assert np.isfinite(model.encode(["a b"])).all()


magnitudes = st.sampled_from([1e-45, 1e-30, 1e-10, 1.0, 1e10, 1e19, 2e19, 1e30, 3e38])


@settings(max_examples=120, deadline=None)
@given(hnp.arrays(np.float32, (len(WORDS), 4), elements=st.floats(-1, 1, width=32)), magnitudes,
       hnp.arrays(np.float32, (3, 4), elements=st.floats(-1, 1, width=32)), magnitudes,
       st.booleans(), st.booleans(), st.sampled_from(["float32", "float16", "on-the-fly"]))
def test_a_model_either_refuses_its_parts_or_encodes_to_finite_numbers(words, word_scale, universe, universe_scale,
                                                                     normalize, clip, memberships):
    if memberships == "float16" and not clip:
        return
    vectors = WordVectors(WORDS, words * np.float32(word_scale))
    try:
        model = SFBoW(vectors, universe * np.float32(universe_scale), normalize=normalize, clip=clip,
                      memberships=memberships)
    except ValueError as exc:
        assert "float32 range" in str(exc) or "float16 range" in str(exc)
        return
    out = model.encode(["the cat sat on a mat", "a dog ran", "", ". ,"])
    assert np.isfinite(out).all()
