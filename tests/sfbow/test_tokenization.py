import pytest

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
