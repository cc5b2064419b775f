"""Subword vectors: one vector per WordPiece piece, with the tokenizer that makes the pieces.

:class:`SubwordVectors` is :class:`sfbow.vectors.WordVectors` whose "words" are a WordPiece
vocabulary (in id order) plus the :class:`sfbow.wordpiece.WordPieceTokenizer` that splits text into
those pieces. An :class:`sfbow.SFBoW` model over them encodes a sentence as the max over its pieces,
exactly as the tokenizer splits it, at native speed (:mod:`sfbow._native_wordpiece`): it also
tabulates ``table_words`` (frequent words of several pieces) as one row each, the max over their
pieces, so those words cost one look-up. :func:`load_model2vec` reads a model2vec model folder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sfbow._native_tokenizer import csr
from sfbow._native_wordpiece import NativeWordPiece
from sfbow.errors import ModelFileError
from sfbow.vectors import WordVectors
from sfbow.wordpiece import WordPieceTokenizer
from sfbow_common.checks import check_int

__all__ = ["DEFAULT_TABLE_WORDS", "SubwordVectors", "frequent_multipiece_words", "load_model2vec"]

#: How many of GloVe's most frequent words are checked for a row of their own (those of 2+ pieces get one).
#: 0: measured at K = 160, a 100,000-word table (68,546 rows) encoded no faster than pieces alone
#: (docs/speed.md), so by default no word is tabulated and no GloVe vocabulary is read.
DEFAULT_TABLE_WORDS = 0


class SubwordVectors(WordVectors):
    """Piece vectors and their WordPiece tokenizer (``words`` are the tokenizer's pieces, in id order).

    ``table_words``: whole words that split into several pieces, tabulated by a model as one row
    each (a speed-up only: any other word is split on the fly, with the same result).
    """

    def __init__(self, tokenizer: WordPieceTokenizer, matrix: Any, table_words: Sequence[str] = ()) -> None:
        super().__init__(tokenizer.vocabulary, matrix)
        self.wordpiece = tokenizer
        self.table_words = _checked_table_words(tokenizer, table_words)
        self._natives: dict[bool, NativeWordPiece] = {}
        self._piece_rows: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"SubwordVectors({len(self)} pieces, dim={self.dim}, {len(self.table_words)} table words)"

    def native(self, word_rows: bool) -> NativeWordPiece:
        """The compiled tokenizer, with the :attr:`table_words` rows or without (pieces only)."""
        native = self._natives.get(word_rows)
        if native is None:
            native = self._natives[word_rows] = NativeWordPiece(self.wordpiece, self.table_words if word_rows else ())
        return native

    def token_ids(self, sentences: Sequence[Any], *, pretokenized: bool = False,
                  word_rows: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """CSR ``(ids, offsets)`` of each sentence's rows: pieces, and word rows if ``word_rows``.

        With ``pretokenized`` every item is a list of words, each split into pieces as the tokenizer
        would split it (normalised first; a "word" that normalises to several words gives them all).
        """
        native = self.native(word_rows)
        if not pretokenized:
            return native.token_ids(sentences)
        return csr([native.reference_ids(" ".join(tokens)) for tokens in sentences])

    def word_pieces(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR ``(piece ids, offsets)`` of every table word (cached), to build its row."""
        if self._piece_rows is None:
            index = self.wordpiece.index
            self._piece_rows = csr([[index[p] for p in self.wordpiece.split_word(w) or []] for w in self.table_words])
        return self._piece_rows


def _checked_table_words(tokenizer: WordPieceTokenizer, table_words: Sequence[str]) -> list[str]:
    """``table_words`` as a list, once each is checked to be a distinct word of 2+ pieces (what a row means)."""
    words = list(table_words)
    for word in words:
        if not isinstance(word, str) or tokenizer.words(word) != [word]:
            raise ValueError(f"table word {word!r} is not one word to the tokenizer")
        pieces = tokenizer.split_word(word)
        if pieces is None or len(pieces) < 2:
            raise ValueError(f"table word {word!r} is {'unknown' if pieces is None else 'a single piece'}; "
                             "only words of two or more pieces get a row of their own")
    if len(set(words)) != len(words):
        raise ValueError("the table words have duplicates")
    return words


def frequent_multipiece_words(tokenizer: WordPieceTokenizer, n_words: int = DEFAULT_TABLE_WORDS) -> list[str]:
    """The words among GloVe's ``n_words`` most frequent that this tokenizer splits into 2+ pieces.

    They are the words worth a row of their own; a word with punctuation inside (``e.g.``) is several
    words to the tokenizer and is left out, as is one it cannot split (the unknown token).
    """
    n_words = check_int(n_words, "n_words", minimum=0)
    if n_words == 0:
        return []
    from sfbow.vectors import default_vectors

    chosen = []
    for word in default_vectors().words[:n_words]:
        if not word.isascii():
            continue
        if tokenizer.words(word) != [word]:
            continue
        pieces = tokenizer.split_word(word)
        if pieces is not None and len(pieces) > 1:
            chosen.append(word)
    return chosen


# -- model2vec folders ----------------------------------------------------------------------------

def load_model2vec(folder: str | os.PathLike[str], *, n_table_words: int = DEFAULT_TABLE_WORDS) -> SubwordVectors:
    """The vectors of a model2vec model folder (``model.safetensors`` + ``tokenizer.json``, offline).

    The ``embeddings`` tensor gives one row per tokenizer id; a vocabulary-quantised model
    (``token_mapping``, ``weights``) is expanded to one row per id. Both files are validated in full
    before anything is built or expanded (so the expansion is bounded by the tokenizer's size, and a
    model that loads also encodes); a damaged file is a :class:`sfbow.errors.ModelFileError` naming it.
    """
    n_table_words = check_int(n_table_words, "n_table_words", minimum=0)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model2vec folder not found: {folder}")
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a model2vec model folder: it has no {name}")
    tokenizer = WordPieceTokenizer.from_file(folder / "tokenizer.json")
    weights_path = folder / "model.safetensors"
    tensors = read_safetensors(weights_path)
    n_pieces = len(tokenizer.vocabulary)

    def refuse(problem: str) -> ModelFileError:
        return ModelFileError(f"{weights_path}: {problem} (for the {n_pieces} pieces of {folder / 'tokenizer.json'})")

    embeddings = tensors.get("embeddings")
    if embeddings is None:
        raise ModelFileError(f"{weights_path} has no 'embeddings' tensor (it has {sorted(tensors)}): "
                             "not a model2vec model")
    if embeddings.ndim != 2 or embeddings.dtype.kind != "f" or 0 in embeddings.shape:
        raise refuse(f"'embeddings' must be a non-empty 2-D float tensor, got {embeddings.dtype} {embeddings.shape}")
    mapping = tensors.get("token_mapping")
    if mapping is not None:  # checked before the expansion allocates n_pieces rows
        if mapping.shape != (n_pieces,) or mapping.dtype.kind not in "iu":
            raise refuse(f"'token_mapping' must be {n_pieces} integer ids, got {mapping.dtype} {mapping.shape}")
        if mapping.size and (mapping.min() < 0 or mapping.max() >= embeddings.shape[0]):
            raise refuse(f"'token_mapping' holds ids outside the {embeddings.shape[0]} rows of 'embeddings'")
    rows = n_pieces if mapping is not None else embeddings.shape[0]
    if rows != n_pieces:
        raise refuse(f"'embeddings' has {rows} rows, not one per piece")
    weights = tensors.get("weights")
    if weights is not None and (weights.shape != (n_pieces,) or weights.dtype.kind != "f"
                                or not np.isfinite(weights).all()):
        raise refuse(f"'weights' must be {n_pieces} finite floats, got {weights.dtype} {weights.shape}")
    matrix = embeddings.astype(np.float32)
    if mapping is not None:
        matrix = matrix[mapping.astype(np.int64)]
    if weights is not None:
        matrix = matrix * weights.astype(np.float32)[:, None]
    table_words = frequent_multipiece_words(tokenizer, n_table_words)
    try:
        return SubwordVectors(tokenizer, matrix, table_words)
    except ValueError as exc:  # a non-finite vector
        raise ModelFileError(f"{weights_path}: {exc}") from None


#: numpy dtypes of the safetensors dtype names sfbow reads (BF16 and FP8 have no numpy dtype).
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1"}
_MAX_HEADER_BYTES = 100 << 20


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file, read only after the whole header is checked against the file:
    each tensor's dtype, shape (non-negative ints) and byte range (inside the data, exactly its size,
    no overlaps). Any defect is a :class:`ModelFileError` naming the file; nothing is allocated first
    beyond the header (at most 100 MB, and at most the file)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        header_size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if header_size <= 0 or 8 + header_size > size or header_size > _MAX_HEADER_BYTES:
            raise ModelFileError(f"{path} is not a readable safetensors file (truncated or another format?)")
        try:
            header = json.loads(handle.read(header_size).decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ModelFileError(f"{path}: the safetensors header is not valid JSON (truncated?): "
                                 f"{type(exc).__name__}: {exc}") from None
        if not isinstance(header, dict):
            raise ModelFileError(f"{path}: the safetensors header is not a JSON object")
        data_size = size - 8 - header_size
        specs = _tensor_specs(path, header, data_size)
        data = handle.read(data_size)
    if len(data) != data_size:
        raise ModelFileError(f"{path} changed while it was read (truncated?)")
    return {name: np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start).reshape(shape)
            for name, (dtype, shape, start) in specs.items()}


def _tensor_specs(path: Path, header: dict[str, Any], data_size: int) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], int]]:
    """``{name: (dtype, shape, start)}`` of a parsed header, every entry checked against ``data_size``."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: the safetensors __metadata__ must map strings to strings")
    specs, ranges = {}, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
                and isinstance(entry["dtype"], str) and entry["dtype"] in _SAFETENSORS_DTYPES
                and isinstance(entry["shape"], list)
                and all(type(n) is int and n >= 0 for n in entry["shape"])
                and isinstance(entry["data_offsets"], list) and len(entry["data_offsets"]) == 2
                and all(type(n) is int for n in entry["data_offsets"])):
            raise ModelFileError(f"{path}: tensor {name!r} is not a valid safetensors entry of a supported dtype "
                                 f"({', '.join(_SAFETENSORS_DTYPES)}): {str(entry)[:200]}")
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        start, end = entry["data_offsets"]
        if not 0 <= start <= end <= data_size or end - start != math.prod(shape) * dtype.itemsize:
            raise ModelFileError(f"{path}: tensor {name!r} ({entry['dtype']} {list(shape)}) claims bytes "
                                 f"{start}..{end} of the {data_size} the file holds (truncated or corrupt)")
        specs[name] = (dtype, shape, start)
        ranges.append((start, end))
    ranges.sort()
    if any(a_end > b_start for (_, a_end), (b_start, _) in zip(ranges, ranges[1:])):
        raise ModelFileError(f"{path}: two tensors share bytes; the file is corrupt")
    return specs


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


# -- the model file -------------------------------------------------------------------------------

def subword_members(vectors: SubwordVectors) -> dict[str, np.ndarray]:
    """The extra model-file arrays of a subword model (see :mod:`sfbow._persistence`)."""
    from sfbow._persistence import encode_words

    options = json.dumps(vectors.wordpiece.options()).encode("utf-8")
    table_words, table_word_ends = encode_words(vectors.table_words)
    return {"tokenizer": np.frombuffer(options, np.uint8), "table_words": table_words,
            "table_word_ends": table_word_ends}


def subword_vectors(contents: Any) -> SubwordVectors | None:
    """The :class:`SubwordVectors` of a read model file, or ``None`` for a word-vector model."""
    from sfbow._persistence import decode_words

    arrays = contents.arrays
    present = {"tokenizer", "table_words", "table_word_ends"} & set(arrays)
    if not present:
        return None
    if len(present) != 3:
        raise ValueError(f"a subword model needs the members tokenizer, table_words and table_word_ends; "
                         f"it has only {sorted(present)}")
    try:
        options = json.loads(arrays["tokenizer"].tobytes().decode("utf-8"))
        tokenizer = WordPieceTokenizer.from_options(contents.words, options)
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise ValueError(f"its tokenizer member is not valid: {exc}") from None
    table_words = decode_words(contents.path, arrays["table_words"], arrays["table_word_ends"])
    return SubwordVectors(tokenizer, arrays["vectors"], table_words)
