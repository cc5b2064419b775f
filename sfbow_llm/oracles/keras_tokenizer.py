"""The legacy Keras word tokenizer, read from its pickle without Keras, and Keras' ``pad_sequences``.

The pickle holds a ``keras.src.legacy.preprocessing.text.Tokenizer`` whose state is plain dicts and
strings. It is read through :mod:`sfbow_llm.restricted_pickle` with an allow-list of four globals: the
tokenizer class (mapped to a local stand-in that only stores the state, so no Keras code runs),
``collections.OrderedDict``, ``collections.defaultdict`` and ``builtins.int`` (its default factory).

Behaviour reproduced from Keras (documented there as ``texts_to_sequences`` and ``pad_sequences``):
lower-case; replace every character of ``filters`` by ``split``; split on ``split`` and drop empty pieces;
map words through ``word_index``; drop words that are unknown or whose index is ``>= num_words`` (no OOV
token in our file); then left-pad with 0 and keep the *last* ``maxlen`` ids of a longer text.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sfbow_llm.restricted_pickle import restricted_load

__all__ = ["KerasWordTokenizer", "pad_pre"]


class _PickledTokenizerState:
    """Stand-in for the Keras class: the pickle's BUILD step hands it the attribute dict, nothing else."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


_ALLOWED = {
    ("keras.src.legacy.preprocessing.text", "Tokenizer"): _PickledTokenizerState,
    ("keras.preprocessing.text", "Tokenizer"): _PickledTokenizerState,
    ("keras_preprocessing.text", "Tokenizer"): _PickledTokenizerState,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "int"): int,
}


@dataclass(frozen=True)
class KerasWordTokenizer:
    """What ``texts_to_sequences`` needs from a fitted Keras tokenizer (word level, no custom analyzer)."""

    word_index: dict[str, int]
    num_words: int | None
    filters: str
    lower: bool
    split: str
    oov_token: str | None

    @classmethod
    def from_pickle(cls, path: str | os.PathLike[str]) -> KerasWordTokenizer:
        """Read a pickled Keras tokenizer through the allow-list; refuse a state we cannot reproduce."""
        loaded = restricted_load(path, _ALLOWED)
        state = getattr(loaded, "state", None)
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a Keras Tokenizer (got {type(loaded).__name__})")
        try:
            word_index, num_words = state["word_index"], state["num_words"]
            filters, lower, split = state["filters"], state["lower"], state["split"]
        except KeyError as error:
            raise ValueError(f"{path}: the Keras Tokenizer state lacks {error}") from None
        if state.get("char_level") or state.get("analyzer") is not None:
            raise ValueError(f"{path}: a character-level tokenizer or a custom analyzer is not supported")
        if not (isinstance(word_index, dict) and all(isinstance(w, str) and type(i) is int
                                                      for w, i in word_index.items())):
            raise ValueError(f"{path}: word_index must map strings to ints")
        if word_index and min(word_index.values()) < 1:
            word, index = min(word_index.items(), key=lambda item: item[1])
            raise ValueError(f"{path}: word_index maps {word!r} to {index}; Keras ids start at 1 (0 is padding)")
        if not (isinstance(filters, str) and isinstance(split, str) and split and isinstance(lower, bool)
                and (num_words is None or type(num_words) is int)):
            raise ValueError(f"{path}: unexpected types in the tokenizer settings")
        oov = state.get("oov_token")
        return cls(word_index, num_words, filters, lower, split, oov if isinstance(oov, str) else None)

    def max_id(self) -> int:
        """The largest id :meth:`ids` can give (0 when it gives none): what an embedding must cover."""
        usable = [i for i in self.word_index.values() if not self.num_words or i < self.num_words]
        return max(usable, default=0)

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        text = text.translate({ord(c): self.split for c in self.filters})
        return [word for word in text.split(self.split) if word]

    def ids(self, text: str) -> list[int]:
        """Word ids of ``text``, unknown and out-of-vocabulary words dropped (or mapped to the OOV id)."""
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for word in self.words(text):
            index = self.word_index.get(word)
            if index is None or (self.num_words and index >= self.num_words):
                index = oov
            if index is not None:
                out.append(index)
        return out


def pad_pre(sequences: Sequence[list[int]], maxlen: int) -> np.ndarray:
    """Keras ``pad_sequences(..., maxlen)`` defaults: zeros on the left, longer rows keep their last ids."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int64)
    for row, ids in enumerate(sequences):
        kept = ids[-maxlen:]
        if kept:
            out[row, maxlen - len(kept):] = kept
    return out
