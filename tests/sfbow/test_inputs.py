"""Inputs a new user gets wrong: bytes, a tokenizer returning nested lists, an empty batch."""

from __future__ import annotations

import numpy as np
import pytest

from sfbow import SFBoW
from sfbow.baselines import AverageEncoder
from sfbow.sklearn import SFBoWVectorizer


@pytest.mark.parametrize("data", [b"the cat\na dog", bytearray(b"the cat"), memoryview(b"the cat")])
def test_bytes_are_named_as_bytes_with_how_to_decode(small_model: SFBoW, data) -> None:
    with pytest.raises(TypeError, match=r"got (bytes|bytearray|memoryview); decode them first.*decode\('utf-8'\)"):
        small_model.encode(data)


def test_a_bytes_item_is_named_with_how_to_decode(small_model: SFBoW) -> None:
    with pytest.raises(TypeError, match=r"sentences\[1\] must be a string, got bytes: b'a dog'; decode it"):
        small_model.encode(["the cat", b"a dog"])


@pytest.mark.parametrize(("tokenizer", "message"), [
    (lambda s: [s.split()], r"flat list of strings; for sentence 0 token 0 is list: \['the', 'cat'\]"),
    (lambda s: ["the", 3], "for sentence 0 token 1 is int: 3"),
    (lambda s: "the cat", "for sentence 0 it returned str: 'the cat'"),
    (lambda s: None, "tokenizer must return a list of strings; for sentence 0 it returned NoneType"),
])
def test_a_tokenizer_returning_anything_but_a_flat_list_of_strings_is_named(small_vectors, tokenizer, message) -> None:
    for encoder in (SFBoW(small_vectors, "identity", tokenizer=tokenizer),
                    AverageEncoder(small_vectors, tokenizer=tokenizer)):
        with pytest.raises(TypeError, match=message):
            encoder.encode(["the cat"])
    with pytest.raises(TypeError, match=message):
        SFBoWVectorizer(small_vectors, "frequent", k=2, fit_universe_on="data", tokenizer=tokenizer).fit(["the cat"])


def test_transform_of_no_sentences_agrees_with_encode(small_vectors) -> None:
    vectorizer = SFBoWVectorizer(small_vectors, "gaussian", k=5).fit(["the cat sat"])
    empty = vectorizer.transform([])
    assert empty.shape == (0, 5) and empty.dtype == np.float32
    assert empty.shape == vectorizer._fitted_model().encode([]).shape
    with pytest.raises(ValueError, match="0 sentences"):
        SFBoWVectorizer(small_vectors).fit([])
