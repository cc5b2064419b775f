"""Argument checks shared by the sfbow modules: each raises an error that names the argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any


def check_sentences(sentences: Any, name: str = "sentences", *, pretokenized: bool = False) -> list[Any]:
    """``sentences`` as a list of strings (or of token lists when ``pretokenized``), in order.

    Accepts any ordered iterable (list, tuple, generator, 1-D NumPy array, pandas Series: by
    position, not by label); a single string, bytes, an unordered set or mapping, or a non-string
    item is a ``TypeError`` naming the item (and, for bytes, how to decode them).
    """
    if isinstance(sentences, str):
        raise TypeError(f"{name} must be a list of strings, got a single string; wrap it: [sentence]")
    if isinstance(sentences, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be a list of strings, got {type(sentences).__name__}; decode them first, "
                        "e.g. data.decode('utf-8').splitlines() for one sentence a line")
    if isinstance(sentences, (Set, Mapping)):
        raise TypeError(f"{name} must be an ordered sequence of strings, got a {type(sentences).__name__}")
    if getattr(sentences, "ndim", 1) != 1:
        raise ValueError(f"{name} must be 1-D, one sentence per item, got shape {sentences.shape}; "
                         "for a DataFrame select the text column (df['text'])")
    try:
        items = list(sentences)
    except TypeError:
        raise TypeError(f"{name} must be a list of strings, got {type(sentences).__name__}") from None
    if not pretokenized and set(map(type, items)) <= {str}:  # the common case, checked in C (5x faster)
        return items
    for i, item in enumerate(items):
        if pretokenized:
            if isinstance(item, str) or not isinstance(item, (list, tuple)) or not all(
                    isinstance(t, str) for t in item):
                raise TypeError(f"{name}[{i}] must be a list of token strings (pretokenized=True), got {item!r}")
        elif isinstance(item, (bytes, bytearray)):
            raise TypeError(f"{name}[{i}] must be a string, got bytes: {item[:40]!r}; decode it, "
                            "e.g. item.decode('utf-8')")
        elif not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(item).__name__}: {item!r}")
    return items


def check_tokens(tokens: Any, index: int) -> Sequence[str]:
    """What a custom tokenizer returned for sentence ``index``: it must be a list (or tuple) of strings.

    A nested list, a string or a non-string token is a ``TypeError`` naming the sentence and the token.
    """
    if not isinstance(tokens, (list, tuple)):
        raise TypeError(f"the tokenizer must return a list of strings; for sentence {index} it returned "
                        f"{type(tokens).__name__}: {tokens!r:.80}")
    for j, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"the tokenizer must return a flat list of strings; for sentence {index} token {j} "
                            f"is {type(token).__name__}: {token!r:.80}")
    return tokens
