"""scikit-learn transformer: raw sentences in, SFBoW feature matrix out.

:class:`SFBoWVectorizer` is named like scikit-learn's ``CountVectorizer`` and ``TfidfVectorizer``,
the other transformers from raw text to a feature matrix, and drops in where they go (a Pipeline
step, a ColumnTransformer text column). It is a thin layer over :class:`sfbow.SFBoW`: ``fit`` builds
the universe and the model, ``transform`` calls :meth:`sfbow.SFBoW.encode`.

Pickling (GridSearchCV with ``n_jobs``, joblib.dump) stores the parameters and the small ``(K, d)``
universe, never the membership table: that is recomputed on first use after unpickling. With the
default vectors (``vectors=None``) the vectors are not stored either: the unpickled estimator reads
them from the installed package, so a fitted estimator pickles to a few tens of kilobytes.

The estimator tags declare string input (``input_tags.string``, no 2-D arrays), as ``CountVectorizer``
does; scikit-learn's estimator checks that feed numeric arrays therefore do not apply. The API checks
run in ``tests/sfbow/test_sklearn.py``, which re-tests the numeric checks' properties with sentences.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sfbow._lookup import token_ids
from sfbow._validation import check_sentences
from sfbow.model import SFBoW, unit_rows
from sfbow.tokenization import Tokenizer, tokenize
from sfbow.universe import DEFAULT_N_WORDS, build_universe
from sfbow.vectors import DEFAULT_VECTORS_NAME, WordVectors, as_word_vectors

__all__ = ["SFBoWVectorizer"]

FIT_UNIVERSE_ON = ("vocabulary", "data")


class SFBoWVectorizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Encode sentences into ``(n, K)`` float32 Static Fuzzy Bag-of-Words features.

    Parameters
    ----------
    vectors:
        Word vectors: anything :func:`sfbow.vectors.as_word_vectors` accepts (``None``: GloVe 6B 50d,
        not stored in pickles).
    universe:
        A strategy of :mod:`sfbow.universe` (``"pca"``, ``"identity"``, ``"gaussian"``,
        ``"kmeans"``, ``"frequent"``) or a ``(K, d)`` matrix.
    k:
        Universe size K for the named strategies (``None``: the strategy's default).
    n_words:
        How many of the most frequent words the data-driven strategies are fitted on.
    fit_universe_on:
        ``"vocabulary"``: fit data-driven strategies on the ``n_words`` most frequent words of the
        vectors (X is not used; the default). ``"data"``: fit them on the vectors of the words that
        occur in X (the ``n_words`` most frequent of those), adapting the universe to the domain.
        Strategies that use no word vectors (``identity``, ``gaussian``) and a user-supplied matrix
        are unaffected.
    normalize, clip:
        As for :class:`sfbow.SFBoW`: L2-normalise word vectors, clip memberships at 0.
    tokenizer:
        ``str -> list[str]`` (default :func:`sfbow.tokenization.tokenize`). To pickle the estimator, use a
        module-level function, not a lambda.
    random_state:
        Seed of the random strategies (``gaussian``, ``kmeans``).

    Attributes
    ----------
    universe_:
        The fitted ``(K, d)`` float32 universe.
    vectors_:
        The word vectors used, or ``None`` for the default vectors (looked up again when needed).
    """

    def __init__(self, vectors: Any = None, universe: str | Any = "pca", k: int | None = None, *,
                 n_words: int = DEFAULT_N_WORDS, fit_universe_on: str = "vocabulary",
                 normalize: bool = True, clip: bool = True, tokenizer: Tokenizer | None = None,
                 random_state: int = 0) -> None:
        self.vectors = vectors
        self.universe = universe
        self.k = k
        self.n_words = n_words
        self.fit_universe_on = fit_universe_on
        self.normalize = normalize
        self.clip = clip
        self.tokenizer = tokenizer
        self.random_state = random_state

    def fit(self, X: Iterable[str], y: Any = None) -> SFBoWVectorizer:
        """Build the universe (from X's words with ``fit_universe_on="data"``) and the model."""
        sentences = _check_training_sentences(X)
        if self.fit_universe_on not in FIT_UNIVERSE_ON:
            raise ValueError(f"fit_universe_on must be one of {FIT_UNIVERSE_ON}, got {self.fit_universe_on!r}")
        default = _is_default(self.vectors)
        vectors = as_word_vectors(self.vectors)
        universe = self.universe
        k = self.k
        if self.fit_universe_on == "data" and isinstance(universe, str):
            universe = build_universe(universe, self._data_word_matrix(vectors, sentences), k=k,
                                      random_state=self.random_state, n_words=self.n_words)
            k = None  # applied: the model gets the built matrix
        model = SFBoW(vectors, universe, k=k, normalize=self.normalize, clip=self.clip,
                      tokenizer=self.tokenizer, random_state=self.random_state, n_words=self.n_words)
        self.universe_ = model.universe
        self.vectors_ = None if default else vectors
        self._n_features_out = model.dim
        self._model: SFBoW | None = model
        return self

    def transform(self, X: Iterable[str]) -> np.ndarray:
        """``(n, K)`` float32 features, one row per sentence (zeros for a sentence of unknown words);
        no sentences give ``(0, K)``, as :meth:`sfbow.SFBoW.encode` does."""
        check_is_fitted(self, "universe_")
        return self._fitted_model().encode(check_sentences(X, "X"), show_progress=False)

    def _data_word_matrix(self, vectors: WordVectors, sentences: list[str]) -> np.ndarray:
        """The vectors of the words occurring in ``sentences``, in frequency (row) order."""
        tokenizer = tokenize if self.tokenizer is None else self.tokenizer
        rows = np.unique(token_ids(sentences, vectors, tokenizer)[0])  # sorted: frequency (row) order
        if not len(rows):
            raise ValueError("no word of X is in the vocabulary of the vectors: cannot fit the universe on X")
        matrix = vectors.matrix[rows]
        return unit_rows(matrix) if self.normalize else matrix

    def _fitted_model(self) -> SFBoW:
        """The fitted model, rebuilt from the universe after unpickling (it is not pickled)."""
        model = getattr(self, "_model", None)
        if model is None:
            vectors = self.vectors if self.vectors_ is None else self.vectors_
            model = self._model = SFBoW(vectors, self.universe_, normalize=self.normalize, clip=self.clip,
                                        tokenizer=self.tokenizer)
        return model

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_model", None)  # the table is recomputed; the vectors are vectors_ or the default
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []  # input is text; output is always float32
        return tags


def _is_default(vectors: Any) -> bool:
    return vectors is None or (isinstance(vectors, str) and vectors == DEFAULT_VECTORS_NAME)


def _check_training_sentences(X: Any) -> list[str]:
    """X as a list of sentences (see :func:`sfbow._validation.check_sentences`), at least one to fit on."""
    sentences = check_sentences(X, "X")
    if not sentences:
        raise ValueError("X has 0 sentences; at least one is required")
    return sentences
