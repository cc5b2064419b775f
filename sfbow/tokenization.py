"""The default tokeniser: Unicode NFC, lower-case, then words and punctuation marks as separate tokens.

The text is first put in Unicode normalisation form C (NFC: composed characters), so the two
spellings of ``"café"`` (``"\\u00e9"`` and ``"e\\u0301"``, e-acute precomposed or e + a combining
accent) give the same token, the composed one that word-vector vocabularies use. It is then
lower-cased (``str.lower``). A token is a maximal run of word characters (Unicode letters, digits and
the underscore, Python's regex ``\\w``) or a single character that is neither a word character nor
whitespace. So ``"Don't stop!"`` becomes ``["don", "'", "t", "stop", "!"]``. Any
``Callable[[str], list[str]]`` can replace it, and :meth:`sfbow.SFBoW.encode` also accepts
pre-tokenised input (used as given: no normalisation).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Literal

Tokenizer = Callable[[str], list[str]]

#: The Unicode normalisation form applied before lower-casing.
NORMALIZATION: Literal["NFC"] = "NFC"
TOKEN_PATTERN = r"\w+|[^\w\s]"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased word and punctuation tokens, after NFC (see the module docstring)."""
    return _TOKEN_RE.findall(unicodedata.normalize(NORMALIZATION, text).lower())
