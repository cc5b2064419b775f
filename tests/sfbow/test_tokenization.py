import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sfbow
import sfbow.tokenization
from sfbow import tokenize


@pytest.mark.parametrize(("text", "tokens"), [
    ("Don't stop!", ["don", "'", "t", "stop", "!"]),
    ("A man, a plan.", ["a", "man", ",", "a", "plan", "."]),
    ("  ", []),
    ("", []),
    ("Ünïcode Straße 42", ["ünïcode", "straße", "42"]),
    ("snake_case...", ["snake_case", ".", ".", "."]),
])
def test_default_tokenizer_splits_words_and_punctuation(text, tokens):
    assert tokenize(text) == tokens


def test_the_module_is_a_module_and_the_function_a_function():
    assert sfbow.tokenization.tokenize is tokenize is sfbow.tokenize


def test_nfd_and_nfc_spellings_give_the_same_composed_token():
    nfc, nfd = "Café naïve Å", unicodedata.normalize("NFD", "Café naïve Å")
    assert nfc != nfd
    assert tokenize(nfd) == tokenize(nfc) == ["café", "naïve", "å"]
    assert tokenize("\u037e") == [";"]  # the Greek question mark is a semicolon in NFC


def test_nfd_and_nfc_sentences_encode_identically(default_model):
    nfc = ["Café au lait, s'il vous plaît.", "Ångström is naïve about the café."]
    nfd = [unicodedata.normalize("NFD", s) for s in nfc]
    vectors = default_model.encode(nfc + nfd)
    assert "café" in default_model.vectors.index and vectors[0].any()
    np.testing.assert_array_equal(vectors[:2], vectors[2:])


@given(st.text())
def test_every_normalisation_form_tokenises_alike(text):
    assert tokenize(unicodedata.normalize("NFD", text)) == tokenize(text) == tokenize(
        unicodedata.normalize("NFC", text))
