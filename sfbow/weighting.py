"""Word weights inside the fuzzy bag: informative words count more in a sentence's memberships.

A weight ``c_w >= 0`` scales word ``w``'s membership row before the max (weighted max-pooling):
``m_S[k] = max over w in S of c_w * mu_w[k]``. Because ``c_w * mu_w`` depends on the word only, the
weighted rows are what the membership table holds, so the fused native kernel pools them exactly as it
pools unweighted rows: the weighting costs nothing at encoding time. The sentence vectors stay
fixed-size non-negative fuzzy sets, compared with fuzzy Jaccard.

Weightings (``SFBoW(weighting=...)``):

* ``"zipf"``: SIF-style ``a / (a + p(w))`` with ``p`` estimated offline from the rows' rank order
  (Zipf's law, ``p(r) = 1 / (r ln(1.78 n))`` for the word of rank ``r`` among ``n``), ``a =``
  :data:`ZIPF_A`. Assumes rows most frequent first, as GloVe, word2vec and fastText files are.
* ``"pieces"`` (subword vectors): a word-continuation piece (``##ing``) weighs
  :data:`CONTINUATION_WEIGHT`, a word-initial piece 1.
* ``"pieces-zipf"`` (subword vectors): ``"pieces"``, and each word-initial piece times SIF's
  ``a / (a + p)`` with ``a =`` :data:`PIECE_ZIPF_A` and ``p`` Zipf's estimate from the piece's rank among
  GloVe 6B's words (a frequency order the core install has; WordPiece ids are not one). A piece GloVe
  lacks weighs as its rarest word. See :func:`reference_piece_weights`.
* ``"auto"`` (the default): ``"pieces-zipf"`` for subword vectors, ``"zipf"`` for word vectors.
* ``"none"``: every weight 1, the unweighted model of pre-weighting sfbow.
* per-word weights: an array (one weight per vocabulary row) or a mapping ``word -> weight``, such as
  :func:`idf_weights` of a corpus or :func:`frequency_weights` of ``wordfreq``. See :func:`resolve_weights`
  for how gaps and bad values are handled.

The choices and the measurements behind them are in docs/sts.md ("Weighting inside the fuzzy bag").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sfbow.tokenization import Tokenizer, tokenize

__all__ = ["CONTINUATION_WEIGHT", "PIECE_ZIPF_A", "WEIGHTINGS", "ZIPF_A", "frequency_weights", "idf_weights",
           "piece_weights", "reference_piece_weights", "resolve_weights", "zipf_weights"]

#: The named weightings ``SFBoW(weighting=...)`` takes.
WEIGHTINGS = ("auto", "none", "zipf", "pieces", "pieces-zipf")

#: SIF's smoothing constant for ``"zipf"``, chosen on the tuning sets (STS-B train/dev, SICK train/trial).
ZIPF_A = 3e-3

#: The weight of a word-continuation piece under ``"pieces"``, chosen on the tuning sets.
CONTINUATION_WEIGHT = 0.5

#: SIF's smoothing constant for ``"pieces-zipf"`` (word-initial pieces), chosen on the tuning sets.
PIECE_ZIPF_A = 0.03


def zipf_weights(n_words: int, a: float = ZIPF_A) -> np.ndarray:
    """SIF weights ``a / (a + p(r))`` of ranks ``r = 1 .. n_words`` with Zipf's ``p(r) = 1 / (r ln(1.78 n))``
    (``ln(1.78 n)`` approximates the harmonic number that makes the ``p`` sum to 1), as float32."""
    rank = np.arange(1, n_words + 1, dtype=np.float64)
    p = 1.0 / (rank * math.log(1.78 * max(n_words, 1)))
    return (a / (a + p)).astype(np.float32)


def piece_weights(pieces: Sequence[str], continuation: float = CONTINUATION_WEIGHT,
                  prefix: str = "##") -> np.ndarray:
    """1 for each word-initial piece, ``continuation`` for each piece starting with ``prefix``, as float32."""
    return np.array([continuation if piece.startswith(prefix) else 1.0 for piece in pieces], np.float32)


def reference_piece_weights(pieces: Sequence[str], a: float = PIECE_ZIPF_A, *,
                            continuation: float = CONTINUATION_WEIGHT, prefix: str = "##",
                            reference: Sequence[str] | None = None) -> np.ndarray:
    """``"pieces-zipf"``: :func:`piece_weights`, with each word-initial piece weighted ``a / (a + p)`` by Zipf's
    ``p`` of its (lower-cased) rank in ``reference``, a word list most frequent first (default: GloVe 6B's
    400,000 words). A piece the list lacks (``[UNK]``, rare stems) gets the weight of its last rank."""
    if reference is None:
        from sfbow.vectors import default_vectors

        reference = default_vectors().words
    if not reference:
        raise ValueError("reference_piece_weights: the reference word list is empty")
    by_rank = zipf_weights(len(reference), a)
    rank: dict[str, int] = {}
    for index, word in enumerate(reference):
        rank.setdefault(word, index)
    weights = piece_weights(pieces, continuation, prefix)
    for row, piece in enumerate(pieces):
        if not piece.startswith(prefix):
            weights[row] = by_rank[rank.get(piece.lower(), len(reference) - 1)]
    return weights


def frequency_weights(words: Iterable[str], frequency: Callable[[str], float] | None = None,
                      a: float = 1e-3) -> dict[str, float]:
    """SIF weights ``a / (a + p(w))`` of ``words`` from ``frequency`` (default: ``wordfreq``, extra ``eval``)."""
    from sfbow.baselines import wordfreq_frequency

    lookup = wordfreq_frequency if frequency is None else frequency
    return {word: a / (a + lookup(word)) for word in words}


def idf_weights(corpus: Iterable[str], tokenizer: Tokenizer = tokenize) -> dict[str, float]:
    """Smoothed inverse document frequency ``ln((1 + N) / (1 + df(w))) + 1`` of every token of ``corpus``
    (``N`` documents; each string is a document), for ``SFBoW(weighting=idf_weights(corpus))``.

    Words of the vocabulary that the corpus never shows get the largest weight given (see
    :func:`resolve_weights`), as rarer than any word it has."""
    counts: dict[str, int] = {}
    n_documents = 0
    for document in corpus:
        if not isinstance(document, str):
            raise TypeError(f"corpus documents must be str; document {n_documents} is {type(document).__name__}")
        n_documents += 1
        for token in set(tokenizer(document)):
            counts[token] = counts.get(token, 0) + 1
    if n_documents == 0:
        raise ValueError("the corpus is empty: IDF needs at least one document")
    return {word: math.log((1 + n_documents) / (1 + df)) + 1 for word, df in counts.items()}


def resolve_weights(weighting: Any, words: Sequence[str], *, subword: bool) -> tuple[str, np.ndarray | None]:
    """``(label, weights)`` of a ``weighting`` over the vocabulary ``words`` (``weights`` float32, one per
    word, or ``None`` for ``"none"``). Labels: the name, or ``"custom"`` for user weights.

    User weights: an array needs one value per word; a mapping may miss words, which get the largest
    weight it gives a vocabulary word (a word a corpus lacks is rarer than the words it has) and a warning saying how many
    lacked one. A negative, NaN or infinite weight is a ``ValueError`` naming its word.
    """
    if isinstance(weighting, str):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))}, an array of one weight "
                             f"per word or a mapping word -> weight; got {weighting!r}")
        if weighting == "auto":
            weighting = "pieces-zipf" if subword else "zipf"
        if weighting == "none":
            return "none", None
        if weighting in ("pieces", "pieces-zipf"):
            if not subword:
                raise ValueError(f"weighting={weighting!r} weights WordPiece pieces: it needs subword vectors")
            return weighting, piece_weights(words) if weighting == "pieces" else reference_piece_weights(words)
        return "zipf", zipf_weights(len(words))
    if isinstance(weighting, Mapping):
        weights = _from_mapping(weighting, words)
    else:
        try:
            weights = np.array(weighting, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"weighting must be a name, an array of numbers or a mapping; got "
                            f"{type(weighting).__name__} ({exc})") from None
        if weights.shape != (len(words),):
            raise ValueError(f"weighting: an array needs one weight per vocabulary word, shape ({len(words)},); "
                             f"got shape {weights.shape}")
    _check_values(weights, words)
    huge = weights > np.finfo(np.float32).max
    if huge.any():
        row = int(np.argmax(huge))
        raise ValueError(f"weighting: the weight of {words[row]!r} ({weights[row]:.3g}) exceeds the float32 range")
    return "custom", weights.astype(np.float32)


def _from_mapping(weighting: Mapping[Any, Any], words: Sequence[str]) -> np.ndarray:
    """One weight per word from a mapping; words it lacks get its largest weight, with a warning."""
    given = {}
    for word, value in weighting.items():
        try:
            given[word] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"weighting: the weight of {word!r} is not a number: {value!r}") from None
    bad = next((w for w, v in given.items() if not (math.isfinite(v) and v >= 0)), None)
    if bad is not None:
        raise ValueError(f"weighting: the weight of {bad!r} is {given[bad]!r}; weights must be finite and >= 0")
    if not given:
        raise ValueError("weighting: the mapping is empty; pass weights for the vocabulary's words")
    weights = np.array([given.get(word, math.nan) for word in words], np.float64)
    missing = np.isnan(weights)
    default = float(np.max(weights[~missing])) if not missing.all() else max(given.values())
    if missing.any():
        warnings.warn(f"weighting: {int(missing.sum())} of {len(words)} vocabulary words have no weight in the "
                      f"mapping; they get its largest weight, {default:.6g}", stacklevel=5)
        weights[missing] = default
    return weights


def _check_values(weights: np.ndarray, words: Sequence[str]) -> None:
    """Refuse a negative, NaN or infinite weight, naming the first word that has one."""
    bad = ~(np.isfinite(weights) & (weights >= 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"weighting: the weight of {words[row]!r} (row {row}) is {float(weights[row])!r}; weights must be "
                         "finite and >= 0")
