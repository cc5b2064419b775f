"""Static Fuzzy Bag-of-Words sentence embeddings.

>>> import sfbow
>>> vectors = sfbow.encode(["A man is playing a guitar.", "Someone plays the guitar."])
>>> sfbow.paired_fuzzy_jaccard(vectors[:1], vectors[1:])  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from sfbow.errors import ModelFileError
from sfbow.model import SFBoW
from sfbow.similarities import cosine, fuzzy_jaccard, paired_cosine, paired_fuzzy_jaccard
from sfbow.tokenization import tokenize
from sfbow.vectors import WordVectors, default_vectors

__all__ = [
    "ModelFileError",
    "SFBoW",
    "WordVectors",
    "cosine",
    "default_model",
    "default_vectors",
    "encode",
    "fuzzy_jaccard",
    "paired_cosine",
    "paired_fuzzy_jaccard",
    "pretrained_model",
    "similarity",
    "tokenize",
]

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def default_model() -> SFBoW:
    """The default model: GloVe 6B 50d, the default universe; built on first use, then cached."""
    return SFBoW()


@functools.lru_cache(maxsize=4)
def pretrained_model(name: str) -> SFBoW:
    """A distilled model by name (``"minilm"``), from :func:`sfbow.distill.pretrained`; cached in memory."""
    from sfbow.distill import pretrained

    return pretrained(name)


def encode(sentences: Sequence[str], *, model: str | SFBoW | None = None, **options: Any) -> np.ndarray:
    """Encode sentences; ``options`` go to :meth:`SFBoW.encode`.

    ``model``: ``None`` for :func:`default_model` (GloVe, no set-up), ``"minilm"`` for the model
    distilled from all-MiniLM-L6-v2 (better; built offline and cached on first use, extra
    ``distill``), or an :class:`SFBoW`.
    """
    if model is None:
        model = default_model()
    elif isinstance(model, str):
        model = pretrained_model(model)
    elif not isinstance(model, SFBoW):
        raise TypeError(f"model must be None, a pretrained model name such as 'minilm', or an SFBoW; got "
                        f"{type(model).__name__}")
    return model.encode(sentences, **options)


def similarity(a: str, b: str) -> float:
    """Fuzzy Jaccard similarity of two sentences under the default model (0.0 to 1.0)."""
    vectors = encode([a, b])
    return fuzzy_jaccard(vectors[0], vectors[1])
