"""WinoBias (Zhao et al., NAACL 2018): pro- and anti-stereotyped sentences about occupations.

Files ``{pro,anti}_stereotyped_type{1,2}.txt.{dev,test}``: one sentence a line, ``<index> <sentence>``, the
coreferent spans in square brackets. The pro and anti files of a type and split are line-aligned pairs that
differ in the gendered pronoun (a few pairs in the published data differ in another word too; they are kept
as published). The loaders strip the index and the brackets and check the format line by line, so a
malformed file fails with its path and line number instead of silently shifting every pair.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

from biasbench._files import read_text_lines
from sfbow_common.checks import check_choice

__all__ = ["WinoBiasPair", "load_winobias_pairs", "load_winobias_sentences"]

SPLITS = ("dev", "test")
STEREOTYPES = ("pro", "anti")
TYPES = (1, 2)
_LINE = re.compile(r"(\d+) (.+)")
_SPAN = re.compile(r"\[([^\[\]]+)\]")


@dataclasses.dataclass(frozen=True)
class WinoBiasPair:
    """One aligned pair: the pro- and the anti-stereotyped sentence (brackets removed)."""

    pro: str
    anti: str
    type: int
    index: int


def load_winobias_sentences(folder: str | os.PathLike[str], stereotype: str, split: str,
                            types: Sequence[int] = TYPES) -> list[str]:
    """The plain sentences of the ``stereotype`` ("pro"/"anti") files of ``split`` ("dev"/"test"), type 1
    lines first, then type 2."""
    check_choice(stereotype, "stereotype", STEREOTYPES)
    check_choice(split, "split", SPLITS)
    return [sentence for kind in _check_types(types)
            for _, sentence in _read(Path(folder) / f"{stereotype}_stereotyped_type{kind}.txt.{split}")]


def load_winobias_pairs(folder: str | os.PathLike[str], split: str,
                        types: Sequence[int] = TYPES) -> list[WinoBiasPair]:
    """The aligned pro/anti pairs of ``split``; pro and anti files must have the same indices line by line."""
    check_choice(split, "split", SPLITS)
    pairs = []
    for kind in _check_types(types):
        pro_path = Path(folder) / f"pro_stereotyped_type{kind}.txt.{split}"
        anti_path = Path(folder) / f"anti_stereotyped_type{kind}.txt.{split}"
        pro, anti = _read(pro_path), _read(anti_path)
        if len(pro) != len(anti):
            raise ValueError(f"{pro_path} has {len(pro)} sentences but {anti_path} has {len(anti)}; the pro "
                             "and anti files must be line-aligned pairs")
        for number, ((pro_index, pro_text), (anti_index, anti_text)) in enumerate(zip(pro, anti), start=1):
            if pro_index != anti_index:
                raise ValueError(f"{anti_path}:{number}: index {anti_index} does not match index {pro_index} "
                                 f"on the same line of {pro_path}; the files are not aligned")
            pairs.append(WinoBiasPair(pro=pro_text, anti=anti_text, type=kind, index=pro_index))
    return pairs


def _check_types(types: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(types)
    if not chosen or any(kind not in TYPES for kind in chosen):
        raise ValueError(f"types must be a non-empty subset of {TYPES}, got {types!r}")
    return chosen


def _read(path: Path) -> list[tuple[int, str]]:
    """(index, sentence) per line, brackets removed; errors name the file and the line."""
    rows = []
    for number, line in enumerate(read_text_lines(path, "WinoBias"), start=1):
        if not line.strip():
            raise ValueError(f"{path}:{number}: empty line; WinoBias files hold one '<index> <sentence>' a line")
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"{path}:{number}: expected '<index> <sentence>', got {line!r}")
        text = match.group(2)
        outside = _SPAN.sub("", text)
        if not _SPAN.search(text) or "[" in outside or "]" in outside:
            raise ValueError(f"{path}:{number}: expected the coreferent spans in matched, non-nested square "
                             f"brackets, got {line!r}")
        sentence = " ".join(_SPAN.sub(r"\1", text).split())
        rows.append((int(match.group(1)), sentence))
    if not rows:
        raise ValueError(f"{path} holds no sentences; a WinoBias file has one '<index> <sentence>' a line "
                         "(is it truncated, or the wrong file?)")
    return rows
