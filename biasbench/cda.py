"""Counterfactual data augmentation (CDA): swap gendered words to get a sentence's counterfactual twin.

The swap lists are WinoBias's ``generalized_swaps.txt`` and ``extra_gendered_words.txt``: two columns
separated by a tab (stray spaces allowed). Every listed pair is used in both directions; where two entries
claim the same word (``priest -> nun`` and ``priest -> priestess``; ``her`` as the reverse of both ``his``
and ``him``) the first entry in file order wins, and forward entries win over reversed ones. ``her`` is the
one genuinely ambiguous word: it becomes ``him`` before a function word or punctuation ("told her the
truth", "saw her.") and ``his`` otherwise ("her idea"), a heuristic that is right in most simple sentences.
Case is kept (``He`` -> ``She``, ``MEN`` -> ``WOMEN``). Entries that are not plain words (the extra list's
``tailors -> seamstress'``) could never be swapped back and are skipped.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping

from biasbench._files import read_text_lines

__all__ = ["SwapList", "augment", "gendered_sentences", "load_swap_list"]

_WORD = re.compile(r"[A-Za-z]+")
# Words after which "her" is an object pronoun ("him"), not a possessive ("his").
_AFTER_OBJECT_HER = frozenset(
    ["the", "a", "an", "to", "that", "and", "or", "but", "with", "for", "about", "at", "in", "on", "from", "this", "these", "those", "as", "up", "out", "off", "back", "down", "so", "when", "if", "because", "by", "into", "over", "after", "before", "while", "than", "through", "again", "not"]
)


@dataclasses.dataclass(frozen=True)
class SwapList:
    """A lower-case word -> counterpart mapping, applied to whole words with case kept."""

    mapping: Mapping[str, str]

    def is_gendered(self, sentence: str) -> bool:
        """Whether ``sentence`` contains a word of the list (or ``her``)."""
        return any(self._counterpart(m.group(0).lower()) for m in _WORD.finditer(sentence))

    def swap(self, sentence: str) -> str:
        """``sentence`` with every listed word replaced by its counterpart."""

        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            lower = word.lower()
            if lower == "her":
                following = _WORD.match(sentence, _skip_spaces(sentence, match.end()))
                target = "his" if following and following.group(0).lower() not in _AFTER_OBJECT_HER else "him"
                return _same_case(target, word)
            counterpart = self._counterpart(lower)
            return word if counterpart is None else _same_case(counterpart, word)

        return _WORD.sub(replace, sentence)

    def _counterpart(self, lower: str) -> str | None:
        if lower == "her":
            return "his"
        return self.mapping.get(lower)


def load_swap_list(*paths: str | os.PathLike[str]) -> SwapList:
    """Read one or more two-column swap files (first entries win); errors name the file and the line."""
    if not paths:
        raise ValueError("pass at least one swap-list file, e.g. winobias/generalized_swaps.txt")
    forward: list[tuple[str, str]] = []
    for path in paths:
        for number, line in enumerate(read_text_lines(path, "swap list"), start=1):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            if len(fields) != 2 or not all(fields) or any(" " in field for field in fields):
                raise ValueError(f"{path}:{number}: expected two single words separated by a tab, got {line!r}")
            if all(_WORD.fullmatch(field) for field in fields):  # "seamstress'" can never match a word
                forward.append((fields[0].lower(), fields[1].lower()))
    mapping: dict[str, str] = {}
    for word, other in forward:
        mapping.setdefault(word, other)
    for word, other in forward:
        mapping.setdefault(other, word)
    return SwapList(mapping)


def gendered_sentences(sentences: Iterable[str], swaps: SwapList) -> list[str]:
    """The sentences that contain at least one word of the swap list, in order, without duplicates."""
    seen: set[str] = set()
    chosen = []
    for sentence in sentences:
        if sentence not in seen and swaps.is_gendered(sentence):
            seen.add(sentence)
            chosen.append(sentence)
    return chosen


def augment(sentences: Iterable[str], swaps: SwapList) -> list[str]:
    """Two-sided CDA: each sentence followed by its swapped twin (only the gendered ones get a twin)."""
    out = []
    for sentence in sentences:
        out.append(sentence)
        if swaps.is_gendered(sentence):
            out.append(swaps.swap(sentence))
    return out


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position] == " ":
        position += 1
    return position


def _same_case(target: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return target.upper()
    if like[0].isupper():
        return target[0].upper() + target[1:]
    return target
