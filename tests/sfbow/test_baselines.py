"""Baselines: exactness on small vectors against NumPy references, and the STS-B dev figures of docs/sts.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfbow import SFBoW, WordVectors
from sfbow.baselines import AverageEncoder, DynaMax, SIFEncoder, max_pool_identity
from sfbow.evaluation import evaluate_sts, load_stsb

FREQUENCY = {"the": 0.05, "a": 0.03, "cat": 1e-4, "dog": 2e-4, "sat": 5e-5}


def frequency(word: str) -> float:
    return FREQUENCY.get(word, 0.0)


def reference_dynamax(x: np.ndarray, y: np.ndarray) -> float:
    """DynaMax as in the paper's reference code: U = vstack(x, y), max then clip, fuzzy Jaccard."""
    if len(x) == 0 and len(y) == 0:
        return 0.0
    universe = np.vstack([x, y]).astype(np.float64)
    mx = np.maximum((x @ universe.T).max(axis=0), 0) if len(x) else np.zeros(len(universe))
    my = np.maximum((y @ universe.T).max(axis=0), 0) if len(y) else np.zeros(len(universe))
    denominator = np.maximum(mx, my).sum()
    return float(np.minimum(mx, my).sum() / denominator) if denominator else 0.0


def rows(vectors: WordVectors, sentence: str) -> np.ndarray:
    return np.array([vectors[t] for t in sentence.split() if t in vectors]).reshape(-1, vectors.dim)


def test_average_is_the_mean_of_known_words(small_vectors: WordVectors) -> None:
    out = AverageEncoder(small_vectors).encode(["the cat sat", "zebra", "", "cat unknown cat"])
    assert out.dtype == np.float32 and out.shape == (4, small_vectors.dim)
    np.testing.assert_allclose(out[0], rows(small_vectors, "the cat sat").mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(out[1:3], 0)
    np.testing.assert_allclose(out[3], small_vectors["cat"], rtol=1e-6)


def test_sif_weights_and_component(small_vectors: WordVectors) -> None:
    sentences = ["the cat sat", "a dog", "the dog sat on the mat", "cat"]
    sif = SIFEncoder(small_vectors, a=1e-3, frequency=frequency).encode(sentences)
    words = sentences[0].split()
    expected = sum(1e-3 / (1e-3 + frequency(w)) * small_vectors[w] for w in words) / len(words)
    np.testing.assert_allclose(sif[0], expected, rtol=1e-5)

    pc = SIFEncoder(small_vectors, remove_pc=True, frequency=frequency).encode(sentences)
    u = np.linalg.svd(sif.astype(np.float64))[2][0]
    np.testing.assert_allclose(pc, sif - np.outer(sif @ u, u), atol=1e-5)
    assert np.abs(pc @ u).max() < 1e-5  # nothing left along the component


def test_sif_fit_freezes_the_component(small_vectors: WordVectors) -> None:
    corpus = ["the cat sat", "a dog", "the dog sat on the mat", "cat"]
    encoder = SIFEncoder(small_vectors, remove_pc=True, frequency=frequency).fit(corpus)
    one = encoder.encode(["the cat sat"])
    assert np.abs(one).sum() > 0  # a one-sentence batch would be wiped out by its own component
    np.testing.assert_allclose(one, encoder.encode(corpus)[:1], atol=1e-6)


sentence = st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat", "dog", "zebra", "."]), max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(sentence, sentence), min_size=1, max_size=6))
def test_dynamax_kernel_matches_reference(pairs: list[tuple[str, str]]) -> None:
    rng = np.random.default_rng(1)
    vectors = WordVectors(["the", "cat", "sat", "on", "mat", "dog", "."], rng.standard_normal((7, 5)))
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    got = DynaMax(vectors, tokenizer=str.split).score_pairs(first, second)
    expected = [reference_dynamax(rows(vectors, a), rows(vectors, b)) for a, b in pairs]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_dynamax_identical_sentences_score_one(small_vectors: WordVectors) -> None:
    scores = DynaMax(small_vectors).score_pairs(["the cat sat", ""], ["the cat sat", ""])
    np.testing.assert_allclose(scores, [1.0, 0.0])
    with pytest.raises(ValueError, match="differ in length"):
        DynaMax(small_vectors).score_pairs(["a"], [])


def test_max_pool_identity_is_clipped_max_pooling(small_vectors: WordVectors) -> None:
    model = max_pool_identity(small_vectors)
    assert isinstance(model, SFBoW) and model.dim == small_vectors.dim
    np.testing.assert_allclose(model.encode(["the cat sat"])[0],
                               np.maximum(rows(small_vectors, "the cat sat").max(axis=0), 0), rtol=1e-6)


def test_single_string_is_rejected(small_vectors: WordVectors) -> None:
    with pytest.raises(TypeError, match="single string"):
        AverageEncoder(small_vectors).encode("the cat")


# -- the published figures (GloVe 6B 50d, default tokeniser, Spearman x 100 on STS-B dev) --------------


@pytest.fixture(scope="module")
def stsb_dev(stsb_dir: Path):
    return load_stsb(stsb_dir / "sts-dev.csv")


@pytest.mark.parametrize(("make", "similarity", "figure"), [
    (AverageEncoder, "cosine", 52.3),
    (SIFEncoder, "cosine", 63.8),
    (lambda: SIFEncoder(remove_pc=True), "cosine", 68.2),
    (DynaMax, "cosine", 62.9),  # a pair scorer: similarity is not used
    (max_pool_identity, "fuzzy_jaccard", 70.9),
], ids=["average", "sif", "sif+pc", "dynamax", "identity-maxpool"])
def test_design_figures_on_stsb_dev(stsb_dev, make, similarity: str, figure: float) -> None:
    assert evaluate_sts(make(), [stsb_dev], similarity=similarity).spearman == pytest.approx(figure, abs=1.0)



@pytest.mark.parametrize("a", [0.0, -1.0, float("inf"), float("nan")])
def test_sif_rejects_a_bad_smoothing_constant(small_vectors: WordVectors, a: float) -> None:
    with pytest.raises(ValueError, match="a must be a finite number > 0"):
        SIFEncoder(small_vectors, a=a)


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_sif_rejects_bad_frequencies_instead_of_returning_nan(small_vectors: WordVectors, bad: float) -> None:
    encoder = SIFEncoder(small_vectors, frequency=lambda word: bad)
    with pytest.raises(ValueError, match="frequencies must be finite and >= 0"):
        encoder.encode(["the cat"])


def test_baselines_read_a_series_by_position() -> None:
    import pandas as pd

    words = ["café", "a", "b", "zz"]
    encoder = AverageEncoder((words, np.eye(4)))
    vectors = encoder.encode(pd.Series(["a café", "b"], index=[1, 0]))
    np.testing.assert_allclose(vectors, [[0.5, 0.5, 0, 0], [0, 0, 1, 0]])
