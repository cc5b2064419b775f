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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sfbow._native_tokenizer import csr
from sfbow._native_wordpiece import NativeWordPiece
from sfbow.vectors import WordVectors
from sfbow.wordpiece import WordPieceTokenizer
from shared_utils.checks import check_int

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
        self.table_words = list(table_words)
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
    (``token_mapping``, ``weights``) is expanded to one row per id. Errors name the file at fault.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model2vec folder not found: {folder}")
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a model2vec model folder: it has no {name}")
    tensors = read_safetensors(folder / "model.safetensors")
    if "embeddings" not in tensors:
        raise ValueError(f"{folder / 'model.safetensors'} has no 'embeddings' tensor (it has {sorted(tensors)}): "
                         "not a model2vec model")
    matrix = tensors["embeddings"].astype(np.float32)
    if "token_mapping" in tensors:
        matrix = matrix[tensors["token_mapping"].astype(np.int64)]
    if "weights" in tensors:
        matrix = matrix * tensors["weights"].astype(np.float32)[:, None]
    tokenizer = WordPieceTokenizer.from_file(folder / "tokenizer.json")
    if matrix.ndim != 2 or matrix.shape[0] != len(tokenizer.vocabulary):
        raise ValueError(f"{folder / 'model.safetensors'}: embeddings of shape {matrix.shape} do not fit the "
                         f"{len(tokenizer.vocabulary)} pieces of {folder / 'tokenizer.json'}")
    return SubwordVectors(tokenizer, matrix, frequent_multipiece_words(tokenizer, n_table_words))


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file, after checking that the header and sizes fit the file."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        header_size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if header_size <= 0 or 8 + header_size > size or header_size > 100 << 20:
            raise ValueError(f"{path} is not a readable safetensors file (truncated or another format?)")
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: the safetensors header is not valid JSON (truncated?): {exc}") from None
    data_size = size - 8 - header_size
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    if max(ends, default=0) > data_size:
        raise ValueError(f"{path} is truncated: its header describes {max(ends)} bytes of tensors, the file holds "
                         f"{data_size}")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc


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
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise ValueError(f"its tokenizer member is not valid: {exc}") from None
    table_words = decode_words(contents.path, arrays["table_words"], arrays["table_word_ends"])
    return SubwordVectors(tokenizer, arrays["vectors"], table_words)
