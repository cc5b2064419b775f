"""Universe strategies: ways to build the static K x d universe matrix U of an SFBoW model.

A word's membership in universe element k is ``e_w . U_k``; a sentence vector is the max over its words
(see :mod:`sfbow.model`). Every strategy is a function ``(word_matrix, k, random_state) -> (K, d)
float32`` over the word vectors' rows in frequency order; :func:`build_universe` picks one by name
and also accepts a user-supplied matrix.

=============  ==========================================================================  ==========
name           universe                                                                    K
=============  ==========================================================================  ==========
identity       the d x d identity: a sentence vector is max-pooling of its word vectors    d
gaussian       i.i.d. standard normal rows, seeded by ``random_state``                     k
frequent       the vectors of the k most frequent words (a weak universe; for comparison)  k
kmeans         k-means centroids of the ``n_words`` most frequent words' vectors            k
pca            principal directions of the ``n_words`` most frequent words, both signs     k <= 2d
=============  ==========================================================================  ==========
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sfbow._memory import check_fits
from sfbow._npy import read_npy_header
from sfbow.vectors import as_float32
from sfbow_common.checks import check_positive_int

__all__ = [
    "STRATEGIES",
    "build_universe",
    "check_universe",
    "frequent_words",
    "gaussian",
    "identity",
    "kmeans",
    "principal_directions",
    "read_universe_file",
    "universe_size",
]

Strategy = Callable[[np.ndarray, int, int], np.ndarray]


def identity(word_matrix: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """The d x d identity (``k`` must equal d): memberships are the word vectors themselves."""
    dim = word_matrix.shape[1]
    if k != dim:
        raise ValueError(f"the identity universe has K = d = {dim}; got k={k} (leave k unset)")
    return np.eye(dim, dtype=np.float32)


def gaussian(word_matrix: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """``k`` rows drawn i.i.d. from N(0, 1/d): random directions, reproducible by ``random_state``."""
    dim = word_matrix.shape[1]
    rng = np.random.default_rng(random_state)
    return (rng.standard_normal((k, dim)) / np.sqrt(dim)).astype(np.float32)


def frequent_words(word_matrix: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """The vectors of the ``k`` most frequent words (the first ``k`` rows)."""
    if k > word_matrix.shape[0]:
        raise ValueError(f"k={k} exceeds the {word_matrix.shape[0]} words available")
    return np.array(word_matrix[:k], dtype=np.float32)


def kmeans(word_matrix: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """``k`` k-means centroids of the word vectors (scikit-learn's mini-batch k-means, seeded)."""
    from sklearn.cluster import MiniBatchKMeans

    if k > word_matrix.shape[0]:
        raise ValueError(f"k={k} exceeds the {word_matrix.shape[0]} words available to cluster")
    model = MiniBatchKMeans(n_clusters=k, random_state=random_state, n_init=3, batch_size=4096)
    model.fit(word_matrix)
    return model.cluster_centers_.astype(np.float32)


def principal_directions(word_matrix: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """The top ``ceil(k/2)`` principal directions of the (centred) word vectors and their negatives.

    Rows alternate ``+v1, -v1, +v2, -v2, ...`` and are cut to ``k``: with both signs, a word's
    membership records how far it lies along each direction in either sense. ``k <= 2 d``.
    """
    dim = word_matrix.shape[1]
    if k > 2 * dim:
        raise ValueError(f"the pca universe has at most 2 d = {2 * dim} rows; got k={k}")
    n_directions = (k + 1) // 2
    if n_directions > min(len(word_matrix) - 1, dim):
        raise ValueError(f"k={k} needs {n_directions} principal directions, but {len(word_matrix)} words "
                         f"give at most {min(len(word_matrix) - 1, dim)}: lower k or raise n_words")
    centred = word_matrix - word_matrix.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    directions = vt[:n_directions]
    both = np.empty((2 * n_directions, dim))
    both[0::2], both[1::2] = directions, -directions
    return both[:k].astype(np.float32)


STRATEGIES: dict[str, Strategy] = {
    "identity": identity,
    "gaussian": gaussian,
    "frequent": frequent_words,
    "kmeans": kmeans,
    "pca": principal_directions,
}

#: K used when ``k`` is not given, per strategy (``None``: the word-vector dimension d).
DEFAULT_K: dict[str, int | None] = {
    "identity": None, "gaussian": 300, "frequent": 1000, "kmeans": 100, "pca": None,
}
#: How many of the most frequent words the data-driven strategies see by default.
DEFAULT_N_WORDS = 100_000


def build_universe(strategy: str | Any, word_matrix: np.ndarray, *, k: int | None = None,
                   random_state: int = 0, n_words: int = DEFAULT_N_WORDS) -> np.ndarray:
    """Build a ``(K, d)`` float32 universe.

    Parameters
    ----------
    strategy:
        A name from :data:`STRATEGIES` or a ``(K, d)`` array-like, used as given (user-supplied).
    word_matrix:
        The word vectors, one row per word, most frequent first.
    k:
        Number of universe elements K (default: :data:`DEFAULT_K`; ``pca`` defaults to 2 d).
    random_state:
        Seed of the random strategies (``gaussian``, ``kmeans``).
    n_words:
        How many of the most frequent words ``kmeans`` and ``pca`` are fitted on.

    A K so large that the universe cannot fit in memory is a ``ValueError`` naming ``k``, raised
    before anything is allocated.
    """
    dim = word_matrix.shape[1]
    if not isinstance(strategy, str):
        if k is not None:
            raise ValueError("k applies to the named strategies; a user-supplied universe has K = its rows")
        return check_universe(strategy, dim)
    k = universe_size(strategy, dim, k)
    n_words = check_positive_int(n_words, "n_words")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise TypeError(f"random_state must be a non-negative integer, got {random_state!r}")
    # float64 while drawing or fitting, then the float32 result
    check_fits(k * dim * 12, f"a {strategy} universe of k={k} rows x d={dim}", "lower k")
    return STRATEGIES[strategy](word_matrix[:n_words], k, random_state)


def universe_size(strategy: str, dim: int, k: int | None) -> int:
    """K for a named ``strategy`` over ``dim``-dimensional vectors: ``k`` checked, or the default."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown universe strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    if k is None:
        k = DEFAULT_K[strategy] or (2 * dim if strategy == "pca" else dim)
    return check_positive_int(k, "k")


def check_universe(universe: Any, dim: int, name: str = "universe") -> np.ndarray:
    """``universe`` as a C-contiguous float32 ``(K, dim)`` matrix with K >= 1 and finite real values.

    A complex matrix is refused (casting would drop its imaginary part), as are NaN and inf, and
    values beyond the float32 range (they would become inf).
    """
    matrix = as_float32(universe, name)
    if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.shape[0] == 0:
        raise ValueError(
            f"{name} must be a (K, d) matrix with K >= 1 and d = {dim} (the word-vector "
            f"dimension); got shape {matrix.shape}"
        )
    return matrix


def read_universe_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``(K, d)`` universe from a ``.npy`` file (no pickle), checked before anything is allocated.

    The header's shape and dtype must describe exactly the bytes the file holds, and the dtype must be
    a real number type; any other file is a ``ValueError`` naming it. The values are checked by
    :func:`check_universe` when the model is built.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"universe file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        try:
            shape, fortran_order, dtype = read_npy_header(handle)
        except ValueError as exc:
            raise ValueError(f"{path} is not a .npy array file: {exc}") from None
        offset = handle.tell()
        if dtype.kind not in "fiu" or len(shape) != 2:
            raise ValueError(f"{path}: a universe is a 2-D array of real numbers; this file holds {dtype} {shape}")
        needed = math.prod(shape) * dtype.itemsize
        if offset + needed != size:
            raise ValueError(f"{path}: its header declares {dtype} {shape} ({needed} bytes) but {size - offset} "
                             "bytes follow it (truncated or corrupt)")
        matrix = np.fromfile(handle, dtype=dtype, count=math.prod(shape))
    return matrix.reshape(shape, order="F" if fortran_order else "C")
