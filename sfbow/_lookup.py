"""Sentences -> the vocabulary rows of their known tokens, in CSR form ``(ids, offsets)``.

Sentence ``i``'s rows are ``ids[offsets[i]:offsets[i + 1]]``, in token order, unknown tokens skipped.
Raw strings under the default tokeniser take the compiled path (:mod:`sfbow._native_tokenizer`,
same ids, about 10x faster); a custom tokeniser or pre-tokenised input goes through Python. Shared
by the model and the baselines, so both get the fast path.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from sfbow._native_tokenizer import NativeVocabulary
from sfbow._validation import check_tokens
from sfbow.subword import SubwordVectors
from sfbow.tokenization import Tokenizer, tokenize
from sfbow.vectors import WordVectors

TokenIds = tuple[np.ndarray, np.ndarray]

# One compiled vocabulary per WordVectors (about 0.3 s to build for 400,000 words), shared by every
# model over those vectors and dropped with them.
_NATIVE: weakref.WeakKeyDictionary[WordVectors, NativeVocabulary] = weakref.WeakKeyDictionary()


def native_vocabulary(vectors: WordVectors) -> NativeVocabulary:
    """The compiled hash table of ``vectors``' vocabulary, built on first use and cached."""
    vocabulary = _NATIVE.get(vectors)
    if vocabulary is None:
        vocabulary = _NATIVE[vectors] = NativeVocabulary(vectors.index)
    return vocabulary


def token_ids(sentences: Sequence[Any], vectors: WordVectors, tokenizer: Tokenizer = tokenize, *,
              pretokenized: bool = False) -> TokenIds:
    """``(ids, offsets)`` of the known tokens of each sentence (see the module docstring)."""
    if isinstance(vectors, SubwordVectors) and tokenizer is tokenize:  # their own WordPiece, pieces only
        return vectors.token_ids(sentences, pretokenized=pretokenized)
    if not pretokenized and tokenizer is tokenize:
        return native_vocabulary(vectors).token_ids(sentences)
    get = vectors.index.get
    ids: list[int] = []
    offsets = np.empty(len(sentences) + 1, dtype=np.int64)
    offsets[0] = 0
    for i, sentence in enumerate(sentences):
        tokens = sentence if pretokenized else check_tokens(tokenizer(sentence), i)
        ids.extend(row for row in map(get, tokens) if row is not None)
        offsets[i + 1] = len(ids)
    return np.asarray(ids, dtype=np.int64), offsets
