"""Reading the rewritten question out of the generator's reply.

The reply was started with the pre-filled opening tag and stopped at the closing tag, so in the good case
it is just the question. A small model still wanders: it repeats the opening tag, adds a label
("Rewritten question:"), quotes the question, runs on past it, or answers instead. The parser keeps the
first paragraph, strips leading tags (``<answer> How ...``), cuts at a later tag (a run-on into an
answer) or a bare ``</`` (a closing tag begun and left: ``... hurting you</``), strips a label of up to
three words (``Rewritten question:``, ``Toxic:``), leading punctuation and quotes, and rejects what cannot
be a rewrite: an empty text, the parent itself, or a text longer than ``max_chars``.
Whether what is left is a real rewrite on the seed's topic is :mod:`evotox.gate`'s job. A rejected reply is retried by the search (boundedly),
then the parent is kept.
"""

from __future__ import annotations

import re

from evotox.prompts import CLOSE_TAG, OPEN_TAG

__all__ = ["parse_rewrite"]

_LABEL = re.compile(r"^(?:[\w']+\s+){0,2}[\w']+\s*:\s+(?=\S)")  # "Rewritten question: ", "Toxic: ", "Re: "
_LEADING_TAGS = re.compile(r"^(?:\s*</?[A-Za-z][^<>]{0,40}>)+")
_LATER_TAG = re.compile(r"</?[A-Za-z][^<>]{0,40}>|</")  # a tag, or a closing one it began and left
_WORDS = re.compile(r"\w+")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def parse_rewrite(reply: str, parent: str, *, max_chars: int = 1000) -> str | None:
    """The rewritten question in ``reply``, or ``None`` when the reply holds no usable rewrite of ``parent``."""
    text = reply.replace(OPEN_TAG, "\n").strip()
    end = text.find(CLOSE_TAG)
    if end >= 0:
        text = text[:end]
    text = text.strip()
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0].strip()  # the first paragraph only
    text = _LEADING_TAGS.sub("", text).strip()
    later = _LATER_TAG.search(text)
    if later is not None and later.start() > 0:
        text = text[:later.start()]
    text = text.strip().lstrip(":;,.-#*> ").strip()
    text = _LABEL.sub("", text).strip().strip(_QUOTES).strip()
    text = " ".join(text.split())
    if not text or len(text) > max_chars:
        return None
    if _WORDS.findall(text.casefold()) == _WORDS.findall(parent.casefold()):
        return None  # the parent again, up to case, spacing and punctuation
    return text
