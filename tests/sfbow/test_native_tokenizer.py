"""The Numba tokeniser + hash look-up must give exactly the ids of ``tokenize`` + a dict look-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbow import SFBoW
from sfbow._native_tokenizer import NativeVocabulary
from sfbow._reference import reference_encode
from sfbow.tokenization import tokenize


def python_ids(sentences: list[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: the default tokeniser, then a dict look-up, unknown tokens skipped."""
    ids: list[int] = []
    offsets = [0]
    for sentence in sentences:
        ids.extend(index[t] for t in tokenize(sentence) if t in index)
        offsets.append(len(ids))
    return np.array(ids, np.int64), np.array(offsets, np.int64)


def assert_same_ids(vocabulary: NativeVocabulary, sentences: list[str]) -> None:
    """Ids as the oracle's, and the fused tokenise-and-pool kernel bit for bit as the pure-Python reference
    (a float32 table with negative entries, and the uint16 bits of a float16 one)."""
    ids, offsets = vocabulary.token_ids(sentences)
    want_ids, want_offsets = python_ids(sentences, vocabulary.index)
    assert ids.dtype == offsets.dtype == np.int64
    np.testing.assert_array_equal(offsets, want_offsets)
    np.testing.assert_array_equal(ids, want_ids)
    table = np.random.default_rng(len(sentences)).normal(size=(len(vocabulary.index), 5)).astype(np.float32)
    tokens = [tokenize(s) for s in sentences]
    for kind in (table, np.abs(table).astype(np.float16).view(np.uint16)):
        pooled = np.full((len(sentences), 5), 7, kind.dtype)  # every row must be overwritten
        vocabulary.max_pool(sentences, kind, pooled)
        np.testing.assert_array_equal(pooled, reference_encode(tokens, vocabulary.index, kind))


@pytest.fixture(scope="module")
def glove(default_model: SFBoW) -> NativeVocabulary:
    return NativeVocabulary(default_model.vectors.index)


# A small vocabulary with look-alikes (case, prefixes, non-ASCII, punctuation, underscores) in a
# table of 16 slots, so probing chains and key comparisons are exercised.
SMALL_WORDS = ["the", "The", "a", "ab", "abc", "b", "x_y", "_", "'", "!", ".", "...", "42", "4",
               "é", "café", "cafe", "\u0301", ";", "\u00e5", "i", "σ", "ς", "—", "’", "£", "\ud800", "hello", "world"]


@pytest.fixture(scope="module")
def small() -> NativeVocabulary:
    return NativeVocabulary({w: i for i, w in enumerate(SMALL_WORDS)})


def test_every_ascii_character_alone_and_between_words(small: NativeVocabulary) -> None:
    sentences = [chr(c) for c in range(128)]
    sentences += [f"a{chr(c)}b" for c in range(128)] + [f"The{chr(c)}42{chr(c)}!" for c in range(128)]
    assert_same_ids(small, sentences)


def test_edge_cases(small: NativeVocabulary) -> None:
    sentences = ["", " ", "\x1c\x1d\x1e\x1f", "...", "THE the The tHe", "x_y X_Y x_yz _x_", "abcd abc",
                 "4 42 420", "héllo wörld", "Café!", "İ i", "ΣΑΣ σ", "a\u00a0b", "a\u3000b", "\ud800 a",
                 "unknownword", "\x00\x7f", "hello world " * 5000,
                 "it’s “the” a—b £4 ’’ —", "\ud800the\ud800", "café — the", "the\u00a0—", "Σ—the", "€ ™ … ‚",
                 # Unicode NFC: combining marks after ASCII letters, singleton decompositions
                 "cafe\u0301 — café", "the\u0301", "a\u0301b \u0301", "\u037e the ;", "\u212b \u00c5", "e\u0308—"]
    assert_same_ids(small, sentences)
    assert_same_ids(small, [])


def test_empty_vocabulary_entries_and_batches() -> None:
    vocabulary = NativeVocabulary({"only": 0})
    assert_same_ids(vocabulary, ["", "only Only ONLY", "none"])


def test_index_in_any_insertion_order() -> None:
    vocabulary = NativeVocabulary({"b": 2, "the": 0, "a": 1})
    assert_same_ids(vocabulary, ["The a b, a.", "b b b"])


@pytest.mark.parametrize("index", [{"a": 0, "b": 0}, {"a": 1}, {"a": 0, "b": 2}])
def test_index_must_be_rows_0_to_n(index: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="distinct rows"):
        NativeVocabulary(index)


def test_real_sentences(glove: NativeVocabulary, stsb_dir: Path) -> None:
    sentences = []
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        for line in (stsb_dir / name).read_text(encoding="utf-8").splitlines():
            sentences.extend(line.split("\t")[5:7])
    assert any(not s.isascii() for s in sentences)
    assert_same_ids(glove, sentences)


TEXT = st.lists(
    st.one_of(
        st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f_'.!-,") + ["the", "The", "ab", "42", "hello"]),
        st.sampled_from(list("’“”—–£€…\u00a0\u2009éÄİΣς\ud800")),  # kernel-simple or not
        st.sampled_from(["\u0301", "\u0308", "\u0338", "\u037e", "\u1fef", "\u212b", "e\u0301"]),  # NFC changes
        st.characters(max_codepoint=127),
        st.characters(),  # any code point, surrogates, combining marks, other scripts
    ),
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TEXT, max_size=12))
def test_generated_batches(glove: NativeVocabulary, small: NativeVocabulary, sentences: list[str]) -> None:
    assert_same_ids(small, sentences)
    assert_same_ids(glove, sentences)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(SMALL_WORDS[:14] + ["zz", "THE", "Hello"]), max_size=40),
       st.lists(st.sampled_from([" ", "", "  ", "\t", "-", "."]), min_size=40, max_size=40))
def test_generated_word_sequences(small: NativeVocabulary, words: list[str], gaps: list[str]) -> None:
    sentence = "".join(w + g for w, g in zip(words, gaps))
    assert_same_ids(small, [sentence, sentence.upper(), ""])


def test_which_non_ascii_characters_the_kernel_takes() -> None:
    from sfbow._native_tokenizer import _simple

    assert all(_simple(c) for c in "’“”—–£€…\ud800\u0301")  # \u0301: simple, but not NFC after a letter
    assert not any(_simple(c) for c in "éÄİΣς\u00a0\u2009\u3000一")
