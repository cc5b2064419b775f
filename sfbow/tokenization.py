"""The default tokeniser: lower-case, then words and punctuation marks as separate tokens.

A token is a maximal run of word characters (Unicode letters, digits and the underscore, Python's
regex ``\\w``) or a single character that is neither a word character nor whitespace. So
``"Don't stop!"`` becomes ``["don", "'", "t", "stop", "!"]``. Any ``Callable[[str], list[str]]`` can
replace it, and :meth:`sfbow.SFBoW.encode` also accepts pre-tokenised input.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Tokenizer = Callable[[str], list[str]]

TOKEN_PATTERN = r"\w+|[^\w\s]"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased word and punctuation tokens (see the module docstring)."""
    return _TOKEN_RE.findall(text.lower())
