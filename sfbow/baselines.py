"""Classic sentence-similarity baselines over the same word vectors and tokeniser as SFBoW.

They are what SFBoW is measured against (:mod:`sfbow.sts_benchmark`); each plugs into
:func:`sfbow.evaluation.evaluate_sts`.

* :class:`AverageEncoder` -- the mean of a sentence's word vectors (compare with cosine).
* :class:`SIFEncoder` -- Smooth Inverse Frequency (Arora, Liang, Ma, ICLR 2017): word weights
  ``a / (a + p(w))`` with ``p`` from :mod:`wordfreq`, optionally minus the first principal component.
* :class:`DynaMax` -- fuzzy Jaccard with a universe rebuilt from the word vectors of each pair
  (Zhelezniak et al., ICLR 2019): a pair scorer, since no sentence vector exists on its own.
* :func:`max_pool_identity` -- max-pooling of word vectors, i.e. SFBoW with the identity universe
  and no normalisation (compare with fuzzy Jaccard).

Words the vectors do not know are skipped; a sentence without a known word gets the zero vector
(similarity 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from sfbow._baseline_kernels import dynamax_jaccard
from sfbow._lookup import token_ids
from sfbow._validation import check_sentences
from sfbow.model import SFBoW
from sfbow.tokenization import Tokenizer, tokenize
from sfbow.vectors import WordVectors, as_word_vectors

__all__ = ["AverageEncoder", "DynaMax", "SIFEncoder", "max_pool_identity", "wordfreq_frequency"]


class _WordVectorBaseline:
    """Shared state of the baselines: word vectors, a tokeniser, and sentence -> row ids."""

    def __init__(self, vectors: Any = None, tokenizer: Tokenizer | None = None) -> None:
        self.vectors: WordVectors = as_word_vectors(vectors)
        self.tokenizer: Tokenizer = tokenize if tokenizer is None else tokenizer

    def _token_ids(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of each sentence's known tokens in CSR form ``(ids, offsets)``."""
        return token_ids(check_sentences(sentences), self.vectors, self.tokenizer)

    def _weighted_mean(self, sentences: Sequence[str], weights: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``(n, d)`` float32: per sentence, ``sum weights(id) * vector(id) / count`` over its known words."""
        ids, offsets = self._token_ids(sentences)
        n, vocabulary = len(offsets) - 1, len(self.vectors)
        bag = sparse.csr_matrix((weights(ids), ids, offsets), shape=(n, vocabulary))
        sums = np.asarray(bag @ self.vectors.matrix, dtype=np.float64)
        counts = np.diff(offsets).astype(np.float64)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


class AverageEncoder(_WordVectorBaseline):
    """The mean of a sentence's word vectors.

    Parameters
    ----------
    vectors:
        Anything :func:`sfbow.vectors.as_word_vectors` accepts (``None``: GloVe 6B 50d).
    tokenizer:
        ``str -> list[str]``; default :func:`sfbow.tokenization.tokenize`.
    """

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """``(n, d)`` float32 sentence vectors."""
        return self._weighted_mean(sentences, lambda ids: np.ones(len(ids)))


def wordfreq_frequency(word: str) -> float:
    """English word frequency from :mod:`wordfreq` (0.0 for a word it does not know)."""
    from wordfreq import word_frequency

    return word_frequency(word, "en")


class SIFEncoder(_WordVectorBaseline):
    """Smooth Inverse Frequency: a weighted mean of word vectors, optionally minus the first PC.

    A word's weight is ``a / (a + p(w))``, so frequent words count little. With ``remove_pc`` the
    projection on the first principal component (uncentred, as in the SIF paper) is subtracted from
    every sentence vector. That component is fitted by :meth:`fit`; until then :meth:`encode` fits it
    on the sentences it is given, which is how the SIF paper evaluates (the component of the
    evaluated sentences; :func:`~sfbow.evaluation.evaluate_sts` encodes a subset's sentences in one
    call). Call :meth:`fit` on a corpus before encoding small batches: the component of one sentence
    is that sentence, and removing it leaves nothing.

    Parameters
    ----------
    vectors, tokenizer:
        As for :class:`AverageEncoder`.
    a:
        The SIF smoothing constant (the paper's default 1e-3).
    remove_pc:
        Subtract the first principal component ("SIF + PC").
    frequency:
        ``word -> p(word)``; default :func:`wordfreq_frequency`. Looked up once per vocabulary word
        seen, on demand.
    """

    def __init__(self, vectors: Any = None, *, a: float = 1e-3, remove_pc: bool = False,
                 tokenizer: Tokenizer | None = None, frequency: Callable[[str], float] | None = None) -> None:
        super().__init__(vectors, tokenizer)
        if not (isinstance(a, (int, float)) and math.isfinite(a) and a > 0):
            raise ValueError(f"a must be a finite number > 0, got {a!r}")
        self.a = float(a)
        self.remove_pc = bool(remove_pc)
        self.frequency = wordfreq_frequency if frequency is None else frequency
        self.component_: np.ndarray | None = None
        self._weights = np.full(len(self.vectors), np.nan)

    def fit(self, sentences: Sequence[str]) -> SIFEncoder:
        """Fix the principal component from ``sentences`` (used by later :meth:`encode` calls)."""
        self.component_ = _first_component(self._weighted_mean(sentences, self._weights_of))
        return self

    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """``(n, d)`` float32 sentence vectors."""
        vectors = self._weighted_mean(sentences, self._weights_of)
        if self.remove_pc and len(vectors):
            component = self.component_ if self.component_ is not None else _first_component(vectors)
            vectors -= np.outer(vectors @ component, component)
        return vectors

    def _weights_of(self, ids: np.ndarray) -> np.ndarray:
        missing = np.unique(ids[np.isnan(self._weights[ids])])
        words = self.vectors.words
        frequencies = np.array([self.frequency(words[row]) for row in missing], dtype=np.float64)
        bad = ~(np.isfinite(frequencies) & (frequencies >= 0))
        if bad.any():
            word = words[missing[np.argmax(bad)]]
            raise ValueError(f"frequency({word!r}) returned {frequencies[bad][0]!r}; frequencies must be finite and >= 0")
        self._weights[missing] = self.a / (self.a + frequencies)
        return self._weights[ids]


def _first_component(vectors: np.ndarray) -> np.ndarray:
    """The first right singular vector of ``vectors`` (not centred, as in the SIF paper), float32."""
    _, _, vt = np.linalg.svd(vectors.astype(np.float64), full_matrices=False)
    return vt[0].astype(np.float32)


class DynaMax(_WordVectorBaseline):
    """DynaMax fuzzy Jaccard: the universe of a pair is the word vectors of both its sentences.

    Memberships are raw dot products clipped at 0, as in the reference code. The score depends on
    the pair, so this is a pair scorer (:meth:`score_pairs`), not an encoder; cost is
    ``O((n + m)^2 d)`` per pair, in a Numba kernel.
    """

    def score_pairs(self, sentences1: Sequence[str], sentences2: Sequence[str]) -> np.ndarray:
        """One similarity in ``[0, 1]`` per pair ``(sentences1[i], sentences2[i])``."""
        if len(sentences1) != len(sentences2):
            raise ValueError(f"sentences1 and sentences2 differ in length: {len(sentences1)} and {len(sentences2)}")
        ids1, offsets1 = self._token_ids(sentences1)
        ids2, offsets2 = self._token_ids(sentences2)
        out = np.empty(len(sentences1), dtype=np.float64)
        dynamax_jaccard(self.vectors.matrix, ids1, offsets1, ids2, offsets2, out)
        return out


def max_pool_identity(vectors: Any = None, tokenizer: Tokenizer | None = None) -> SFBoW:
    """Max-pooling of word vectors, clipped at 0: SFBoW with the identity universe, not normalised, unweighted."""
    return SFBoW(vectors, "identity", normalize=False, tokenizer=tokenizer, weighting="none", memberships="float32")
