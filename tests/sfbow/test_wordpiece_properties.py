"""The native WordPiece kernel equals the Python reference on unusual tokenizers: an unknown token that is a
real piece, a continuation prefix of one character (a letter, ``#``, a non-ASCII one) or none at all, cased
or not, with and without table words, on ASCII and non-ASCII sentences (Hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sfbow._native_wordpiece import NativeWordPiece
from sfbow.wordpiece import WordPieceTokenizer

LETTERS = "abcxAB1#.é"
PREFIXES = ["##", "#", "", "x", "a", "é", "▁"]
piece_text = st.text(alphabet=LETTERS, min_size=1, max_size=4)
sentence = st.lists(st.one_of(st.text(alphabet=LETTERS + " \t", max_size=8), st.sampled_from(["[UNK]", " "])),
                    max_size=8).map("".join)


@st.composite
def tokenizers(draw: st.DrawFn) -> WordPieceTokenizer:
    prefix = draw(st.sampled_from(PREFIXES))
    stems = draw(st.lists(piece_text, min_size=1, max_size=25, unique=True))
    continuations = [prefix + s for s in draw(st.lists(piece_text, max_size=15, unique=True))]
    pieces = list(dict.fromkeys(["[UNK]", *stems, *continuations, *draw(st.sampled_from([[], list("abcx#.")]))]))
    unk = draw(st.sampled_from(["[UNK]", *pieces]))  # often a piece that words really split into
    return WordPieceTokenizer(pieces, unk_token=unk, prefix=prefix, lowercase=draw(st.booleans()),
                              max_input_chars_per_word=draw(st.sampled_from([3, 100])))


@settings(max_examples=150, deadline=None)
@given(tokenizer=tokenizers(), sentences=st.lists(sentence, max_size=12), with_table=st.booleans())
def test_native_equals_reference_on_unusual_tokenizers(tokenizer, sentences, with_table):
    words = {w for s in sentences for w in tokenizer.words(s) if w.isascii()}
    table = sorted(w for w in words if len(tokenizer.split_word(w) or []) > 1) if with_table else []
    native = NativeWordPiece(tokenizer, table)
    ids, offsets = native.token_ids(sentences)
    assert offsets.tolist() == np.cumsum([0, *(len(native.reference_ids(s)) for s in sentences)]).tolist()
    for i, text in enumerate(sentences):
        assert ids[offsets[i]:offsets[i + 1]].tolist() == native.reference_ids(text), (text, tokenizer.options())


def test_the_known_disagreements():
    """One case of each: the unknown token as a piece, a one-letter prefix, an empty one, a non-ASCII one."""
    cases = [
        (WordPieceTokenizer(["the", "t", "##h", "##e", "cat"], unk_token="the"), "the cat"),
        (WordPieceTokenizer(["[UNK]", "#", "xa", "b", "xb"], prefix="x"), "xab # b"),
        (WordPieceTokenizer(["[UNK]", "ab", "c", "b"], prefix=""), "abc cab"),
        (WordPieceTokenizer(["[UNK]", "ab", "éc"], prefix="é"), "abc"),
    ]
    for tokenizer, text in cases:
        native = NativeWordPiece(tokenizer)
        ids, _ = native.token_ids([text])
        assert ids.tolist() == native.reference_ids(text) and ids.size, (text, tokenizer.options())
