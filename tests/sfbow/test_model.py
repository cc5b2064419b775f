import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sfbow
from sfbow import SFBoW, WordVectors
from sfbow._kernels import max_pool
from sfbow._reference import reference_encode

from .conftest import WORDS

token_lists = st.lists(st.lists(st.sampled_from(WORDS + ["unknown", "zzz"]), max_size=12), max_size=20)


def _csr(token_lists, index):
    ids = [index[t] for tokens in token_lists for t in tokens if t in index]
    lengths = [sum(t in index for t in tokens) for tokens in token_lists]
    return np.asarray(ids, dtype=np.int64), np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


@settings(max_examples=200, deadline=None)
@given(token_lists, st.booleans())
def test_kernel_equals_reference(lists, clip):
    rng = np.random.default_rng(len(lists))
    vectors = WordVectors(WORDS, rng.standard_normal((len(WORDS), 5)))
    model = SFBoW(vectors, "gaussian", k=7, clip=clip, memberships="float32")  # the float32 kernel
    ids, offsets = _csr(lists, vectors.index)
    out = np.full((len(lists), 7), np.nan, dtype=np.float32)
    max_pool(model.table, ids, offsets, out)
    expected = reference_encode(lists, vectors.index, model.table)
    np.testing.assert_array_equal(out, expected)  # max-pooling is exact: bit for bit
    np.testing.assert_array_equal(model.encode(lists, pretokenized=True), expected)
    assert out.dtype == np.float32 and out.shape == (len(lists), 7)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=15), st.randoms(use_true_random=False),
       st.sampled_from(WORDS))
def test_word_order_does_not_matter_and_adding_a_word_never_lowers_a_coordinate(tokens, random, extra):
    model = SFBoW(WordVectors(WORDS, np.random.default_rng(2).standard_normal((len(WORDS), 5))), "gaussian", k=9)
    shuffled = tokens[:]
    random.shuffle(shuffled)
    base, permuted, more = model.encode([tokens, shuffled, tokens + [extra]], pretokenized=True)
    np.testing.assert_array_equal(base, permuted)
    assert np.all(more >= base)


def test_real_sentences_match_the_reference(default_model, stsb_dir):
    from sfbow.evaluation import load_stsb

    sentences = load_stsb(stsb_dir / "sts-dev.csv").sentences1[:300]
    expected = reference_encode(map(sfbow.tokenize, sentences), default_model.vectors.index, default_model.table)
    np.testing.assert_array_equal(default_model.encode(sentences), expected)


def test_encode_contract(small_model):
    out = small_model.encode(["the cat sat", "", "unknown words only", "The DOG ran."], batch_size=3)
    assert out.shape == (4, 16) and out.dtype == np.float32
    assert np.all(out[1] == 0) and np.all(out[2] == 0)  # empty and all-unknown -> zero vector
    assert (out[[0, 3]] > 0).any(axis=1).all() and np.all(out >= 0)  # clipped memberships
    assert small_model.encode([]).shape == (0, 16)
    np.testing.assert_array_equal(out, small_model.encode(["the cat sat", "", "unknown words only", "The DOG ran."]))


def test_custom_tokenizer_and_pretokenized_input(small_vectors):
    model = SFBoW(small_vectors, "gaussian", k=4, tokenizer=str.split)
    np.testing.assert_array_equal(model.encode(["cat sat"]), model.encode([["cat", "sat"]], pretokenized=True))
    assert np.all(model.encode(["CAT"]) == 0)  # str.split does not lower-case


def test_normalize_makes_the_model_scale_invariant(small_vectors):
    scaled = WordVectors(small_vectors.words, small_vectors.matrix * np.arange(1, 11)[:, None])
    a = SFBoW(small_vectors, "identity").encode(["the cat sat on a mat"])
    b = SFBoW(scaled, "identity").encode(["the cat sat on a mat"])
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, SFBoW(scaled, "identity", normalize=False).encode(["the cat sat on a mat"]))


@pytest.mark.parametrize(("sentences", "error", "message"), [
    ("the cat", TypeError, "single string"),
    (["the cat", None], TypeError, r"sentences\[1\] must be a string, got NoneType"),
    (["ok", 3], TypeError, r"sentences\[1\] must be a string, got int"),
    (5, TypeError, "must be a list of strings, got int"),
])
def test_bad_sentences_name_the_item(small_model, sentences, error, message):
    with pytest.raises(error, match=message):
        small_model.encode(sentences)


def test_bad_pretokenized_and_options(small_model):
    with pytest.raises(TypeError, match=r"sentences\[0\] must be a list of token strings"):
        small_model.encode(["the cat"], pretokenized=True)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        small_model.encode(["x"], batch_size=0)
    with pytest.raises(TypeError, match="tokenizer must be a callable"):
        SFBoW(small_model.vectors, "identity", tokenizer="split")


def test_default_entry_point_is_cached_and_real():
    assert sfbow.default_model() is sfbow.default_model()
    vectors = sfbow.encode(["A man is playing a guitar.", "Someone plays the guitar.", "Stocks fell sharply."])
    assert vectors.shape == (3, 100)
    related = sfbow.fuzzy_jaccard(vectors[0], vectors[1])
    unrelated = sfbow.fuzzy_jaccard(vectors[0], vectors[2])
    assert related > unrelated + 0.1
    assert sfbow.similarity("", "") == 0.0


def test_any_ordered_iterable_is_encoded_by_position(small_model):
    import pandas as pd

    sentences = ["the cat", "a dog ran", ""]
    expected = small_model.encode(sentences)
    for source in (tuple(sentences), iter(sentences), np.array(sentences), pd.Series(sentences, index=[7, 3, 5])):
        np.testing.assert_array_equal(small_model.encode(source), expected)
    with pytest.raises(TypeError, match="ordered sequence"):
        small_model.encode({"the cat"})


def test_a_tokenizer_that_returns_no_list_is_named(small_vectors):
    model = SFBoW(small_vectors, "identity", tokenizer=lambda s: None)
    with pytest.raises(TypeError, match="tokenizer must return a list of strings; for sentence 0 it returned NoneType"):
        model.encode(["the cat"])


def test_from_parts_builds_the_same_model_as_init(small_vectors):
    built = SFBoW(small_vectors, "gaussian", k=6, clip=False)
    parts = SFBoW.from_parts(small_vectors, built.universe, strategy="gaussian", clip=False)
    assert set(vars(parts)) == set(vars(built)) and repr(parts) == repr(built)
    np.testing.assert_array_equal(parts.table, built.table)
    for bad, error, message in [
        ({"vectors": (small_vectors.words, small_vectors.matrix)}, TypeError, "vectors must be WordVectors"),
        ({"normalize": 1}, TypeError, "normalize must be a bool"),
        ({"strategy": None}, TypeError, "strategy must be a str"),
        ({"universe": built.universe[:, :3]}, ValueError, "d = 8"),
        ({"memberships": "float16", "clip": False}, ValueError, "needs clip=True"),
    ]:
        arguments = {"vectors": small_vectors, "universe": built.universe, **bad}
        with pytest.raises(error, match=message):
            SFBoW.from_parts(arguments.pop("vectors"), arguments.pop("universe"), **arguments)


def test_membership_table_has_the_same_bits_whatever_the_blas_thread_count():
    """A model file must give identical vectors in every process that loads it (Dask workers run one
    BLAS thread, a client may run many): a multi-threaded sgemm would round differently."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20_000)]
    vectors = WordVectors.from_mapping(dict(zip(words, rng.standard_normal((20_000, 50)).astype(np.float32))))
    tables = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            tables.append(SFBoW(vectors, universe="gaussian", k=100, random_state=0).table)
    np.testing.assert_array_equal(tables[0], tables[1])
