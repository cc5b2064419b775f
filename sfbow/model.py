"""The SFBoW model: word vectors + a static universe -> a membership table -> sentence vectors.

Because the universe U is fixed, a word's memberships ``max(e_w U^T, 0)`` depend on the word only, so
they are tabulated once (vocabulary x K). Encoding is then tokenise -> look up rows -> max-pool, which
is gather work done by a Numba kernel (:mod:`sfbow._kernels`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sfbow import _kernels, _persistence
from sfbow._lookup import native_vocabulary, token_ids
from sfbow._memory import check_fits
from sfbow._validation import check_sentences
from sfbow.errors import ModelFileError
from sfbow.subword import SubwordVectors, subword_members, subword_vectors
from sfbow.tokenization import Tokenizer, tokenize
from sfbow.universe import DEFAULT_N_WORDS, build_universe, check_universe, universe_size
from sfbow.vectors import WordVectors, as_word_vectors
from sfbow.weighting import resolve_weights
from sfbow_common.checks import check_positive_int

__all__ = ["SFBoW"]

#: Inputs at least this long show a progress bar by default (on a terminal).
PROGRESS_THRESHOLD = 100_000

#: The smallest chunk of sentences a thread takes (smaller ones cost more in overhead than they balance).
_MIN_CHUNK = 2_048

#: How memberships are stored, see :class:`SFBoW`.
MEMBERSHIPS = ("auto", "float32", "float16", "on-the-fly")


class SFBoW:
    """A Static Fuzzy Bag-of-Words sentence encoder.

    Parameters
    ----------
    vectors:
        Word vectors: anything :func:`sfbow.vectors.as_word_vectors` accepts (``None``: GloVe 6B 50d).
    universe:
        A strategy name from :mod:`sfbow.universe` or a user-supplied ``(K, d)`` matrix.
    k:
        Universe size K for the named strategies (see :func:`sfbow.universe.build_universe`).
    normalize:
        L2-normalise the word vectors before building the universe and the memberships, so frequent
        words with long vectors do not dominate the max.
    clip:
        Clip memberships at 0 (the fuzzy-set definition; fuzzy Jaccard expects it).
    tokenizer:
        ``str -> list[str]``; default :func:`sfbow.tokenization.tokenize`. Not saved with the model.
    random_state:
        Seed of the random universe strategies.
    n_words:
        How many of the most frequent words the data-driven universes are fitted on.
    memberships:
        How the vocabulary x K membership table is kept. ``"auto"`` (default): ``"float16"`` where it
        holds the memberships (``clip=True`` and none above 65504), else ``"float32"``; :attr:`memberships`
        then says which. ``"float16"``: precomputed at half the memory; sentence vectors are the
        float16-rounded memberships, max-pooled exactly (needs ``clip=True``; tuning scores as float32's
        to 0.001, docs/speed.md). ``"float32"``: precomputed. ``"on-the-fly"``: no table; each batch
        computes the memberships of the words it uses (for vocabularies whose table would not fit;
        equal to ``"float32"`` up to float rounding, slower).
    weighting:
        Word weights applied to each word's membership row before the max (:mod:`sfbow.weighting`):
        ``"auto"`` (default: SIF-style Zipf weights for word vectors, continuation pieces at half
        weight and word-initial ones by GloVe's rank order for subword vectors), ``"zipf"``, ``"pieces"``,
        ``"pieces-zipf"``, ``"none"`` (unweighted, the pre-weighting sfbow
        model), an array of one weight per word, or a mapping ``word -> weight`` (e.g.
        :func:`sfbow.weighting.idf_weights`). Held in the table, so encoding costs the same.
    """

    def __init__(self, vectors: Any = None, universe: str | Any = "pca", *, k: int | None = None,
                 normalize: bool = True, clip: bool = True, tokenizer: Tokenizer | None = None,
                 random_state: int = 0, n_words: int = DEFAULT_N_WORDS,
                 memberships: str = "auto", weighting: Any = "auto") -> None:
        word_vectors = as_word_vectors(vectors)
        normalize, clip = bool(normalize), bool(clip)
        memberships = _check_memberships(memberships, clip)
        _check_tokenizer(tokenizer)
        if isinstance(universe, str):  # refuse a table that cannot fit before fitting the universe
            _check_table_fits(len(word_vectors), universe_size(universe, word_vectors.dim, k), memberships, "k")
        word_matrix = unit_rows(word_vectors.matrix) if normalize else word_vectors.matrix
        matrix = build_universe(universe, word_matrix, k=k, random_state=random_state, n_words=n_words)
        self._assemble(word_vectors, matrix, strategy=universe if isinstance(universe, str) else "custom",
                       normalize=normalize, clip=clip, tokenizer=tokenizer, memberships=memberships,
                       weighting=weighting, word_matrix=word_matrix)

    @classmethod
    def from_parts(cls, vectors: WordVectors, universe: Any, *, strategy: str = "custom", normalize: bool = True,
                   clip: bool = True, tokenizer: Tokenizer | None = None, memberships: str = "auto",
                   weighting: Any = "auto") -> SFBoW:
        """A model from parts already built: word vectors and a ``(K, d)`` universe, used as given.

        ``strategy`` only labels the universe (``repr``, the model file). :meth:`load` builds its model
        here, and ``__init__`` ends in the same assembly, so both validate and set the same attributes.
        """
        if not isinstance(vectors, WordVectors):
            raise TypeError(f"vectors must be WordVectors, got {type(vectors).__name__}")
        for value, name in ((normalize, "normalize"), (clip, "clip")):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
        if not isinstance(strategy, str):
            raise TypeError(f"strategy must be a str (a label), got {type(strategy).__name__}")
        model = cls.__new__(cls)
        model._assemble(vectors, universe, strategy=strategy, normalize=bool(normalize), clip=bool(clip),
                        tokenizer=tokenizer, memberships=_check_memberships(memberships, bool(clip)),
                        weighting=weighting)
        return model

    def _assemble(self, vectors: WordVectors, universe: Any, *, strategy: str, normalize: bool, clip: bool,
                  tokenizer: Tokenizer | None, memberships: str, weighting: Any,
                  word_matrix: np.ndarray | None = None) -> None:
        """The one place a model's attributes are set: validate the parts, then build the table."""
        _check_tokenizer(tokenizer)
        if isinstance(vectors, SubwordVectors) and tokenizer is not None:
            raise ValueError("subword vectors bring their own WordPiece tokenizer; do not pass tokenizer=")
        universe = check_universe(universe, vectors.dim)
        _check_table_fits(len(vectors), universe.shape[0], memberships, "K (the universe's rows)")
        if word_matrix is None:
            word_matrix = unit_rows(vectors.matrix) if normalize else vectors.matrix
        label, weights = resolve_weights(weighting, vectors.words, subword=isinstance(vectors, SubwordVectors))
        _check_memberships_fit_float32(word_matrix, universe, 1.0 if weights is None else float(weights.max(initial=0)))
        self.vectors: WordVectors = vectors
        self.normalize = normalize
        self.clip = clip
        self.tokenizer: Tokenizer = tokenize if tokenizer is None else tokenizer
        self.strategy = strategy
        self.universe = universe
        self.weighting: str = label
        #: One weight per word (float32), or ``None`` when unweighted.
        self.weights: np.ndarray | None = weights
        table, kind = self._membership_table(word_matrix, memberships)
        self.table = table
        #: The membership storage in use: the argument, with ``"auto"`` resolved to what it chose.
        self.memberships: str = kind

    @property
    def dim(self) -> int:
        """K, the size of a sentence vector."""
        return int(self.universe.shape[0])

    def __repr__(self) -> str:
        return (f"SFBoW(vectors={self.vectors!r}, universe={self.strategy!r}, K={self.dim}, "
                f"normalize={self.normalize}, clip={self.clip}, weighting={self.weighting!r})")

    def _membership_table(self, word_matrix: np.ndarray, memberships: str) -> tuple[np.ndarray | None, str]:
        """The table for ``memberships`` and the kind it is (``"auto"`` resolved); for ``"on-the-fly"`` no
        table: the word matrix is kept instead."""
        if memberships == "on-the-fly":
            if isinstance(self.vectors, SubwordVectors):
                raise ValueError("memberships='on-the-fly' is not available for subword vectors; use 'float16'")
            self._membership_words = word_matrix
            return None, memberships
        table = self._memberships_of(word_matrix, self.weights)
        if isinstance(self.vectors, SubwordVectors):  # rows of whole words: the max over their pieces
            ids, offsets = self.vectors.word_pieces()
            words = np.empty((len(offsets) - 1, table.shape[1]), np.float32)
            _kernels.max_pool(np.ascontiguousarray(table, dtype=np.float32), ids, offsets, words)
            table = np.concatenate([table, words])
        if memberships == "float32":
            return np.ascontiguousarray(table, dtype=np.float32), memberships
        with np.errstate(over="ignore"):  # overflow becomes inf, reported (or, for "auto", avoided) below
            half = np.ascontiguousarray(table, dtype=np.float16)
        if not np.isfinite(half).all():
            if memberships == "auto":
                return np.ascontiguousarray(table, dtype=np.float32), "float32"
            raise ValueError("memberships exceed the float16 range (65504); use memberships='float32'")
        return half, "float16"

    def _memberships_of(self, word_rows: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """``max(word_rows U^T, 0)`` (with ``clip``), each row times its word's weight (float32)."""
        # One BLAS thread: a multi-threaded sgemm rounds differently with the thread count, and a model
        # must give the same bits in every process (Dask workers, other machines) that loads its file.
        with threadpool_limits(limits=1, user_api="blas"):
            table = word_rows @ self.universe.T
        if self.clip:
            np.maximum(table, 0, out=table)
        if weights is not None:
            table *= weights[:, None]
        return table

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, sentences: Sequence[str] | Sequence[Sequence[str]], *,
               pretokenized: bool = False, batch_size: int = 65_536,
               show_progress: bool | None = None, n_threads: int | None = None) -> np.ndarray:
        """Encode sentences into an ``(n, K)`` float32 array, one row per input, in order.

        A sentence with no known word (empty, only unknown tokens) encodes to the zero vector.
        With ``pretokenized=True`` each item is a list of tokens, used as given. A progress bar shows
        on a terminal for inputs of :data:`PROGRESS_THRESHOLD` sentences or more, unless
        ``show_progress`` says otherwise. Chunks of at most ``batch_size`` sentences stream through
        the tokeniser and the kernels, so memory beyond the output stays bounded. ``n_threads``
        threads (default: all CPUs) encode chunks side by side: each prepares its chunk in Python,
        then runs the compiled kernels without the GIL while another prepares the next.
        """
        sentences = check_sentences(sentences, pretokenized=pretokenized)
        batch_size = check_positive_int(batch_size, "batch_size")
        if n_threads is not None:
            n_threads = check_positive_int(n_threads, "n_threads")
        n = len(sentences)
        out = np.empty((n, self.dim), dtype=np.float32)
        if show_progress is None:
            show_progress = n >= PROGRESS_THRESHOLD

        # Raw strings under the default tokeniser over a membership table: one fused kernel (no id arrays).
        fused = (not pretokenized and self.tokenizer is tokenize and self.table is not None
                 and not isinstance(self.vectors, SubwordVectors))

        def encode_chunk(start: int) -> int:
            stop = min(start + chunk, n)
            if fused:
                self._pool_raw(sentences[start:stop], out[start:stop])
                return stop - start
            if isinstance(self.vectors, SubwordVectors):
                ids, offsets = self.vectors.token_ids(sentences[start:stop], pretokenized=pretokenized, word_rows=True)
            else:
                ids, offsets = token_ids(sentences[start:stop], self.vectors, self.tokenizer,
                                         pretokenized=pretokenized)
            self._max_pool(ids, offsets, out[start:stop])
            return stop - start

        with tqdm(total=n, unit="sent", disable=not show_progress or None, desc="encode") as bar, \
                _kernels.num_threads(n_threads) as threads:
            # Several threads: many chunks (8 a thread), so that the threads finish together.
            chunk = batch_size if threads == 1 else min(batch_size, max(_MIN_CHUNK, -(-n // (8 * threads))))
            starts = range(0, n, chunk)
            if len(starts) > 1 and threads > 1 and _kernels.concurrent_calls_are_safe():
                with ThreadPoolExecutor(threads, initializer=numba.set_num_threads, initargs=(1,)) as pool:
                    for done in pool.map(encode_chunk, starts):
                        bar.update(done)
            else:  # one chunk (its kernels use the threads), or a threading layer that is not thread-safe
                for start in starts:
                    bar.update(encode_chunk(start))
        return out

    def _pool_raw(self, sentences: Sequence[str], out: np.ndarray) -> None:
        """Tokenise, look up and max-pool raw strings in one kernel (the default tokeniser, a table): the
        same vectors as :func:`sfbow._lookup.token_ids` then :meth:`_max_pool`, without the id arrays."""
        assert self.table is not None
        vocabulary = native_vocabulary(self.vectors)
        if self.memberships == "float16":
            bits = np.empty(out.shape, np.uint16)
            vocabulary.max_pool(sentences, self.table.view(np.uint16), bits)
            with _kernels.exclusive():
                _kernels.widen_half(bits, out)
        else:
            vocabulary.max_pool(sentences, self.table, out)

    def _max_pool(self, ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
        """Max-pool each sentence's membership rows into ``out`` (float32), per :attr:`memberships`.

        The kernels run inside :func:`sfbow._kernels.exclusive`, so encodes from several user
        threads are safe under every Numba threading layer.
        """
        table = self.table
        if table is None:  # "on-the-fly": the memberships of this chunk's words only
            rows, local_ids = np.unique(ids, return_inverse=True)
            weights = None if self.weights is None else self.weights[rows]
            table = np.ascontiguousarray(self._memberships_of(self._membership_words[rows], weights), dtype=np.float32)
            ids = local_ids.astype(np.int64, copy=False)
        with _kernels.exclusive():
            if self.memberships == "float16":
                _kernels.max_pool_half(table.view(np.uint16), ids, offsets, out)
            else:
                _kernels.max_pool(table, ids, offsets, out)

    # -- persistence -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one model file (no pickle; see :mod:`sfbow._persistence`), atomically.

        The tokenizer is code, so it is not saved: pass it again to :meth:`load`.
        """
        words, word_ends = _persistence.encode_words(self.vectors.words)
        options = {"strategy": self.strategy, "normalize": self.normalize, "clip": self.clip,
                   "custom_tokenizer": self.tokenizer is not tokenize}
        arrays = {"words": words, "word_ends": word_ends, "vectors": self.vectors.matrix, "universe": self.universe}
        if self.weights is not None:  # unweighted files stay readable by pre-weighting sfbow
            options["weighting"] = self.weighting
            arrays["weights"] = self.weights
        if isinstance(self.vectors, SubwordVectors):
            arrays.update(subword_members(self.vectors))
        _persistence.save_model_file(path, options, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, tokenizer: Tokenizer | None = None,
             memberships: str = "auto", weighting: Any = None, data: bytes | None = None) -> SFBoW:
        """Read a model written by :meth:`save`, validating its format, shapes, checksums and values.

        ``memberships`` is a run-time choice, not saved (see :class:`SFBoW`). ``weighting``: ``None`` keeps
        the file's (its saved weights, checked like user weights; a file from pre-weighting sfbow, which has none,
        is unweighted), anything else replaces it (see :class:`SFBoW`). ``data``: the file's bytes, read
        already (to hash exactly what is loaded, as :mod:`sfbow.dask` does); ``path`` then names it. A file
        that is not a valid model is a :class:`sfbow.errors.ModelFileError` naming it.
        """
        contents = _persistence.read_model_file(path, data)
        options = contents.options
        _check_memberships(memberships, options["clip"])
        _check_tokenizer(tokenizer)
        if options["custom_tokenizer"] and tokenizer is None:
            warnings.warn(f"{path} was saved from a model with a custom tokenizer, which is not stored; "
                          "pass tokenizer= to load() or it encodes with the default tokenizer", stacklevel=2)
        saved = options.get("weighting", "none")  # files of pre-weighting sfbow have neither the field nor weights
        if saved not in ("none", "zipf", "pieces", "pieces-zipf", "custom") or (saved == "none") == ("weights" in contents.arrays):
            raise ModelFileError(f"{path}: its weighting {saved!r} does not fit its members "
                                 f"({'with' if 'weights' in contents.arrays else 'without'} a weights array)")
        if weighting is None:
            weighting = contents.arrays.get("weights", "none")
        try:  # the same checks as a model built in memory: finite values, shapes, no duplicate words, weights
            vectors = subword_vectors(contents) or WordVectors(contents.words, contents.arrays["vectors"])
            model = cls.from_parts(vectors, contents.arrays["universe"], strategy=options["strategy"],
                                   normalize=options["normalize"], clip=options["clip"], tokenizer=tokenizer,
                                   memberships=memberships, weighting=weighting)
        except ValueError as exc:
            raise ModelFileError(f"{path} holds an invalid model: {exc}") from exc
        if model.weighting == "custom" and weighting is contents.arrays.get("weights"):
            model.weighting = saved  # the saved weights keep their name ("zipf", "pieces", "pieces-zipf" or "custom")
        return model


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with every row scaled to unit L2 norm (all-zero rows stay zero), as float32.

    Each row is first scaled by a power of two that brings its largest entry into [0.5, 1), which is
    exact, so the float32 norm can neither overflow (entries near 1e19 and beyond) nor underflow
    (subnormal entries): every non-zero finite row comes out with norm 1.
    """
    scaled, _ = _power_of_two_scaled(matrix)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return (scaled / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)


def _power_of_two_scaled(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows * 2**-e, e)`` (float32, int column) with ``e`` putting each row's largest |entry| in [0.5, 1)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    _, exponents = np.frexp(np.max(np.abs(matrix), axis=1, keepdims=True, initial=0))
    return np.ldexp(matrix, -exponents).astype(np.float32, copy=False), exponents


def _largest_row_norm(matrix: np.ndarray) -> float:
    """The largest L2 row norm of ``matrix``, computed without overflow (as a float64)."""
    scaled, exponents = _power_of_two_scaled(matrix)
    norms = np.linalg.norm(scaled, axis=1).astype(np.float64) * np.exp2(exponents[:, 0].astype(np.float64))
    return float(norms.max(initial=0))


#: Memberships are kept below half the float32 maximum, a margin for the rounding of the dot products.
_MEMBERSHIP_LIMIT = float(np.finfo(np.float32).max) / 2


def _check_memberships_fit_float32(word_matrix: np.ndarray, universe: np.ndarray, weight: float = 1.0) -> None:
    """Refuse parts whose memberships could overflow float32 (then ``encode`` would give inf or NaN).

    By Cauchy-Schwarz no membership, nor any partial sum of its dot product, exceeds the largest word
    norm times the largest universe-row norm, so checking that bound makes overflow impossible in every
    ``memberships`` mode, including the per-batch on-the-fly one; ``weight`` is the largest word weight.
    """
    word_norm, universe_norm = _largest_row_norm(word_matrix), _largest_row_norm(universe)
    bound = word_norm * universe_norm * max(weight, 1.0)
    if bound > _MEMBERSHIP_LIMIT:
        raise ValueError(
            f"memberships could reach {bound:.3g}, beyond the float32 range (3.4e38): the word vectors' "
            f"largest norm is {word_norm:.3g}, the universe's {universe_norm:.3g} and the largest weight "
            f"{weight:.3g}; scale the vectors, the universe or the weights down, or use normalize=True")


def _check_table_fits(n_words: int, k: int, memberships: str, argument: str) -> None:
    bytes_per_entry = {"auto": 6, "float32": 4, "float16": 6, "on-the-fly": 0}[memberships]  # float16: float32, then half
    check_fits(n_words * k * bytes_per_entry, f"the membership table of {n_words} words x K={k} ({memberships})",
               f"lower {argument} or use memberships='on-the-fly'")


def _check_tokenizer(tokenizer: Any) -> None:
    if tokenizer is not None and not callable(tokenizer):
        raise TypeError(f"tokenizer must be a callable str -> list[str], got {type(tokenizer).__name__}")


def _check_memberships(memberships: str, clip: bool) -> str:
    """``memberships`` checked; ``"auto"`` without ``clip`` is ``"float32"`` at once (float16 needs clip)."""
    if memberships not in MEMBERSHIPS:
        raise ValueError(f"memberships must be one of {', '.join(map(repr, MEMBERSHIPS))}, got {memberships!r}")
    if memberships == "float16" and not clip:
        raise ValueError("memberships='float16' needs clip=True (it pools non-negative values as bit patterns)")
    return "float32" if memberships == "auto" and not clip else memberships
