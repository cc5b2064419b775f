"""Word weights inside the fuzzy bag: the kernels pool weighted rows exactly as the reference does, weights
are validated, persisted and checked on load, and the weighted defaults win on the real tuning sets."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from sfbow import SFBoW, WordVectors, paired_fuzzy_jaccard
from sfbow import _persistence as persistence
from sfbow._reference import reference_encode
from sfbow.errors import ModelFileError
from sfbow.evaluation import load_sick, load_stsb
from sfbow.subword import SubwordVectors
from sfbow.tokenization import tokenize
from sfbow.vectors import default_vectors
from sfbow.weighting import (
    PIECE_ZIPF_A,
    frequency_weights,
    idf_weights,
    piece_weights,
    reference_piece_weights,
    resolve_weights,
    zipf_weights,
)
from sfbow.wordpiece import WordPieceTokenizer

from .conftest import WORDS

SENTENCES = ["The cat sat on the mat.", "a dog ran", "", "unknown words only", "Dog, cat; the MAT"]
SICK_TRIAL = Path(__file__).resolve().parents[2].parent / "shared" / "sts" / "sick" / "SICK_trial.txt"


def test_zipf_weights_follow_sif_on_the_rank_estimate() -> None:
    weights = zipf_weights(400_000, 3e-3)
    p1 = 1 / math.log(1.78 * 400_000)
    assert weights[0] == pytest.approx(3e-3 / (3e-3 + p1), rel=1e-6)
    assert np.all(np.diff(weights) >= 0) and weights[1] > weights[0] and weights[-1] < 1  # rarer weigh more, < 1


def test_named_weightings_and_auto() -> None:
    assert resolve_weights("none", WORDS, subword=False) == ("none", None)
    label, weights = resolve_weights("auto", WORDS, subword=False)
    assert label == "zipf" and weights is not None
    np.testing.assert_array_equal(weights, zipf_weights(len(WORDS)))
    pieces = ["play", "##ing", "the", "##s"]
    label, weights = resolve_weights("auto", pieces, subword=True)
    assert label == "pieces-zipf" and weights is not None
    np.testing.assert_array_equal(weights, reference_piece_weights(pieces))
    label, weights = resolve_weights("pieces", pieces, subword=True)  # round 1's default, one argument away
    assert label == "pieces" and weights is not None
    np.testing.assert_array_equal(weights, piece_weights(pieces))
    assert weights.tolist() == [1.0, 0.5, 1.0, 0.5]
    for name in ("pieces", "pieces-zipf"):
        with pytest.raises(ValueError, match="needs subword vectors"):
            resolve_weights(name, WORDS, subword=False)
    with pytest.raises(ValueError, match="weighting must be one of 'auto', 'none', 'zipf', 'pieces', 'pieces-zipf'"):
        resolve_weights("sif", WORDS, subword=False)


def test_reference_piece_weights_are_sif_of_the_reference_rank() -> None:
    by_rank = zipf_weights(3, 0.03)
    weights = reference_piece_weights(["Play", "##ing", "the", "[UNK]", "cat"], 0.03, reference=["the", "play", "cat"])
    assert weights.tolist() == pytest.approx([by_rank[1], 0.5, by_rank[0], by_rank[2], by_rank[2]])
    with pytest.raises(ValueError, match="reference word list is empty"):
        reference_piece_weights(["the"], reference=[])


def test_reference_piece_weights_follow_glove_by_default() -> None:
    glove = default_vectors().words
    weights = reference_piece_weights(["the", "guitar", "##s", "qqqzzzx"])
    by_rank = zipf_weights(len(glove), PIECE_ZIPF_A)
    assert weights.tolist() == pytest.approx([by_rank[glove.index("the")], by_rank[glove.index("guitar")], 0.5,
                                              by_rank[-1]])
    assert weights[0] < 0.5 < weights[1] < 1  # "the" weighs least; a rare piece almost 1


def test_subword_default_weighting_round_trips_and_the_old_one_is_one_argument_away(tmp_path: Path) -> None:
    tokenizer = WordPieceTokenizer(["[UNK]", "the", "play", "##ing", "cat", "##s"])
    matrix = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    model = SFBoW.from_parts(SubwordVectors(tokenizer, matrix), np.eye(8, dtype=np.float32))
    assert model.weighting == "pieces-zipf" and model.weights is not None
    np.testing.assert_array_equal(model.weights, reference_piece_weights(tokenizer.vocabulary))
    model.save(tmp_path / "m.npz")
    loaded = SFBoW.load(tmp_path / "m.npz")
    assert loaded.weighting == "pieces-zipf"
    sentences = ["the cats playing", "play the cat", ""]
    np.testing.assert_array_equal(loaded.encode(sentences), model.encode(sentences))
    old = SFBoW.load(tmp_path / "m.npz", weighting="pieces")
    assert old.weighting == "pieces" and old.weights is not None and old.weights.tolist() == [1, 1, 1, 0.5, 1, 0.5]
    assert not np.array_equal(old.encode(sentences), model.encode(sentences))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_negative_nan_or_infinite_weight_names_the_word(bad: float) -> None:
    weights = np.ones(len(WORDS))
    weights[4] = bad
    with pytest.raises(ValueError, match=r"the weight of 'mat' \(row 4\) is .*finite and >= 0"):
        resolve_weights(weights, WORDS, subword=False)
    with pytest.raises(ValueError, match="the weight of 'dog' is .*finite and >= 0"):
        resolve_weights({"cat": 1.0, "dog": bad}, WORDS, subword=False)


def test_bad_weight_tables_are_refused() -> None:
    with pytest.raises(ValueError, match=r"one weight per vocabulary word, shape \(10,\); got shape \(3,\)"):
        resolve_weights([1.0, 2.0, 3.0], WORDS, subword=False)
    with pytest.raises(ValueError, match="the weight of 'cat' is not a number: 'x'"):
        resolve_weights({"cat": "x"}, WORDS, subword=False)
    with pytest.raises(ValueError, match="the mapping is empty"):
        resolve_weights({}, WORDS, subword=False)
    with pytest.raises(ValueError, match="exceeds the float32 range"):
        resolve_weights(np.full(len(WORDS), 1e39), WORDS, subword=False)
    with pytest.raises(TypeError, match="weighting must be a name, an array of numbers or a mapping"):
        resolve_weights(object(), WORDS, subword=False)


def test_a_mapping_that_misses_words_gives_them_its_largest_weight_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="8 of 10 vocabulary words have no weight in the mapping; they get its "
                                         "largest weight, 3"):
        label, weights = resolve_weights({"cat": 3.0, "the": 0.5, "zebra": 9.0}, WORDS, subword=False)
    assert label == "custom" and weights is not None
    assert weights[WORDS.index("the")] == 0.5 and weights[WORDS.index("cat")] == 3.0
    assert all(weights[i] == 3.0 for i, w in enumerate(WORDS) if w not in ("cat", "the"))


def test_idf_weights_of_a_corpus() -> None:
    idf = idf_weights(["the cat", "the dog", "The mat."])
    assert idf["the"] == pytest.approx(math.log(4 / 4) + 1) and idf["cat"] == pytest.approx(math.log(4 / 2) + 1)
    assert idf["."] == idf["mat"]
    with pytest.raises(ValueError, match="the corpus is empty"):
        idf_weights([])
    with pytest.raises(TypeError, match="document 1 is int"):
        idf_weights(["a", 3])  # type: ignore[list-item]


@pytest.mark.parametrize("memberships", ["float32", "float16"])
def test_weighted_encoding_is_the_reference_weighted_max_bit_for_bit(small_vectors: WordVectors,
                                                                     memberships: str) -> None:
    """Fused native path and id path both pool ``weight * membership`` rows as the reference does."""
    weights = np.linspace(0.0, 2.0, len(WORDS))
    plain = SFBoW(small_vectors, "gaussian", k=16, weighting="none", memberships="float32")
    model = SFBoW(small_vectors, "gaussian", k=16, weighting=weights, memberships=memberships)
    assert model.weighting == "custom"
    want = reference_encode(map(tokenize, SENTENCES), small_vectors.index, plain.table, weights)
    if memberships == "float16":
        want = want.astype(np.float16).astype(np.float32)  # the half table holds the rounded weighted rows
    np.testing.assert_array_equal(model.encode(SENTENCES), want)
    np.testing.assert_array_equal(model.encode([tokenize(s) for s in SENTENCES], pretokenized=True), want)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 100, width=32), min_size=len(WORDS), max_size=len(WORDS)),
       st.lists(st.lists(st.sampled_from([*WORDS, "zebra"]), max_size=6), max_size=8))
def test_weighted_max_matches_the_reference_for_any_weights(weights: list[float], sentences: list[list[str]]) -> None:
    vectors = WordVectors(WORDS, np.random.default_rng(1).standard_normal((len(WORDS), 8)))
    plain = SFBoW(vectors, "gaussian", k=12, weighting="none", memberships="float32")
    model = SFBoW.from_parts(vectors, plain.universe, weighting=weights, memberships="float32")
    raw = [" ".join(tokens) for tokens in sentences]
    np.testing.assert_array_equal(model.encode(raw), reference_encode(map(tokenize, raw), vectors.index, plain.table,
                                                                      np.array(weights, np.float32)))


def test_on_the_fly_memberships_are_weighted_too(small_vectors: WordVectors) -> None:
    table = SFBoW(small_vectors, "gaussian", k=16, memberships="float32")
    fly = SFBoW(small_vectors, "gaussian", k=16, memberships="on-the-fly")
    np.testing.assert_allclose(fly.encode(SENTENCES), table.encode(SENTENCES), rtol=1e-6, atol=1e-7)


def test_weighting_none_is_the_unweighted_model(small_vectors: WordVectors) -> None:
    plain = SFBoW(small_vectors, "gaussian", k=16, weighting="none", memberships="float32")
    assert plain.weights is None and "weighting='none'" in repr(plain)
    unit = small_vectors.matrix / np.linalg.norm(small_vectors.matrix, axis=1, keepdims=True)
    np.testing.assert_allclose(plain.table, np.maximum(unit @ plain.universe.T, 0), rtol=1e-5, atol=1e-6)
    weighted = SFBoW(small_vectors, "gaussian", k=16, memberships="float32")
    assert weighted.weights is not None
    np.testing.assert_array_equal(weighted.table, plain.table * weighted.weights[:, None])


def test_huge_weights_that_would_overflow_the_memberships_are_refused(small_vectors: WordVectors) -> None:
    with pytest.raises(ValueError, match="memberships could reach .* the largest weight 1e\\+38"):
        SFBoW(small_vectors, "gaussian", k=16, weighting=np.full(len(WORDS), 1e38), normalize=False)


def test_weights_round_trip_through_the_model_file(tmp_path: Path, small_vectors: WordVectors) -> None:
    model = SFBoW(small_vectors, "gaussian", k=16)
    model.save(tmp_path / "m.sfbow")
    loaded = SFBoW.load(tmp_path / "m.sfbow")
    assert loaded.weighting == "zipf"
    np.testing.assert_array_equal(loaded.encode(SENTENCES), model.encode(SENTENCES))
    unweighted = SFBoW.load(tmp_path / "m.sfbow", weighting="none")  # the old behaviour, one argument away
    np.testing.assert_array_equal(unweighted.encode(SENTENCES),
                                  SFBoW(small_vectors, "gaussian", k=16, weighting="none").encode(SENTENCES))


def test_an_unweighted_file_has_exactly_the_members_sfbow_0_1_wrote(tmp_path: Path, small_vectors: WordVectors) -> None:
    SFBoW(small_vectors, "gaussian", k=16, weighting="none").save(tmp_path / "m.sfbow")
    with zipfile.ZipFile(tmp_path / "m.sfbow") as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert "weighting" not in metadata and "weights" not in metadata["members"]
    assert SFBoW.load(tmp_path / "m.sfbow").weighting == "none"


def _write(path: Path, model: SFBoW, weighting: str, weights: np.ndarray | None) -> None:
    """A model file with the given weights member, checksums valid (as a buggy or hostile writer makes it)."""
    words, ends = persistence.encode_words(model.vectors.words)
    arrays = {"words": words, "word_ends": ends, "vectors": model.vectors.matrix, "universe": model.universe}
    if weights is not None:
        arrays["weights"] = weights
    options = {"strategy": "gaussian", "normalize": True, "clip": True, "custom_tokenizer": False,
               "weighting": weighting}
    persistence.save_model_file(path, options, arrays)


def test_persisted_weights_are_validated_on_load(tmp_path: Path, small_vectors: WordVectors) -> None:
    model = SFBoW(small_vectors, "gaussian", k=16)
    path = tmp_path / "m.sfbow"
    bad = np.ones(len(WORDS), np.float32)
    bad[1] = -2
    _write(path, model, "custom", bad)
    with pytest.raises(ModelFileError, match=r"holds an invalid model: weighting: the weight of 'cat' \(row 1\) is -2"):
        SFBoW.load(path)
    _write(path, model, "custom", np.ones(3, np.float32))
    with pytest.raises(ModelFileError, match="one weight per vocabulary word"):
        SFBoW.load(path)
    _write(path, model, "zipf", None)
    with pytest.raises(ModelFileError, match="its weighting 'zipf' does not fit its members .without a weights array"):
        SFBoW.load(path)
    _write(path, model, "tf-idf", np.ones(len(WORDS), np.float32))
    with pytest.raises(ModelFileError, match="its weighting 'tf-idf' does not fit"):
        SFBoW.load(path)


def _tuning_spearman(model: SFBoW, path: Path, loader) -> float:  # type: ignore[no-untyped-def]
    data = loader(path)
    similarity = paired_fuzzy_jaccard(model.encode(data.sentences1), model.encode(data.sentences2))
    return 100 * float(spearmanr(similarity, data.scores).statistic)


def test_the_weighted_default_beats_the_unweighted_model_on_the_tuning_sets(default_model: SFBoW,
                                                                             stsb_dir: Path) -> None:
    """docs/sts.md's figures: STS-B dev 76.3 against 74.0, SICK trial 59.2 against 59.0."""
    if not SICK_TRIAL.is_file():
        pytest.skip(f"SICK trial not found at {SICK_TRIAL}")
    plain = SFBoW(weighting="none")
    dev = stsb_dir / "sts-dev.csv"
    assert _tuning_spearman(default_model, dev, load_stsb) == pytest.approx(76.3, abs=0.1)
    assert _tuning_spearman(plain, dev, load_stsb) == pytest.approx(74.0, abs=0.1)
    assert _tuning_spearman(default_model, SICK_TRIAL, load_sick) == pytest.approx(59.2, abs=0.1)
    assert _tuning_spearman(plain, SICK_TRIAL, load_sick) == pytest.approx(59.0, abs=0.1)


def test_frequency_weights_are_sif_of_the_given_frequencies() -> None:
    weights = frequency_weights(["the", "cat"], {"the": 0.05, "cat": 1e-5}.__getitem__, a=1e-3)
    assert weights == pytest.approx({"the": 1e-3 / (1e-3 + 0.05), "cat": 1e-3 / (1e-3 + 1e-5)})
