"""CrowS-Pairs (Nangia et al., EMNLP 2020): minimal sentence pairs about nine social bias types.

``sent_more`` is always the sentence about the historically more disadvantaged group. In a row marked
``stereo`` it expresses a stereotype, in one marked ``antistereo`` it violates one, so the stereotyping
sentence of a pair is ``sent_more`` for ``stereo`` rows and ``sent_less`` for ``antistereo`` rows. The data
statement asks for evaluation use only: never train or tune on it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import os
from pathlib import Path

from biasbench._files import read_text_lines

__all__ = ["BIAS_TYPES", "CrowsPair", "load_crows_pairs"]

BIAS_TYPES = ("race-color", "gender", "socioeconomic", "nationality", "religion", "age", "sexual-orientation",
              "physical-appearance", "disability")
_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


@dataclasses.dataclass(frozen=True)
class CrowsPair:
    """One CrowS-Pairs row, with the stereotyping and the anti-stereotyping sentence resolved."""

    index: int
    sent_more: str
    sent_less: str
    direction: str
    bias_type: str

    @property
    def stereotyping(self) -> str:
        """The sentence that expresses the stereotype (``sent_more`` if ``stereo``, else ``sent_less``)."""
        return self.sent_more if self.direction == "stereo" else self.sent_less

    @property
    def anti_stereotyping(self) -> str:
        """The other sentence of the pair."""
        return self.sent_less if self.direction == "stereo" else self.sent_more


def load_crows_pairs(path: str | os.PathLike[str]) -> list[CrowsPair]:
    """Read ``crows_pairs_anonymized.csv``; every row must have both sentences, a direction of ``stereo`` or
    ``antistereo`` and a known bias type (errors name the file and the CSV record's first line)."""
    target = Path(path)
    text = "\n".join(read_text_lines(target, "CrowS-Pairs"))
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in _COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{target}:1: header lacks the column(s) {', '.join(missing)}; expected the "
                         f"CrowS-Pairs header with {', '.join(_COLUMNS)}")
    pairs = []
    line = reader.line_num + 1
    for position in itertools.count():
        where = f"{target}:{line}"
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # a field over the 128 KB limit: what an unclosed quote gives
            raise ValueError(f"{where}: not a readable CSV record ({error}); a field that long usually means "
                             "a quote that is never closed") from None
        line = reader.line_num + 1
        if None in row or any(row.get(column) is None for column in _COLUMNS):
            raise ValueError(f"{where}: the row has {len([v for v in row.values() if v is not None])} fields, "
                             "not the header's number; a field with a comma must be quoted")
        more, less = row["sent_more"].strip(), row["sent_less"].strip()
        if not more or not less:
            raise ValueError(f"{where}: {'sent_more' if not more else 'sent_less'} is empty; every pair needs "
                             "both sentences")
        direction = row["stereo_antistereo"].strip()
        if direction not in ("stereo", "antistereo"):
            raise ValueError(f"{where}: stereo_antistereo must be 'stereo' or 'antistereo', got {direction!r}")
        bias_type = row["bias_type"].strip()
        if bias_type not in BIAS_TYPES:
            raise ValueError(f"{where}: unknown bias_type {bias_type!r}; expected one of {', '.join(BIAS_TYPES)}")
        index = row.get("") or row.get("index") or str(position)
        pairs.append(CrowsPair(index=int(index) if index.strip().isdigit() else position, sent_more=more,
                               sent_less=less, direction=direction, bias_type=bias_type))
    if not pairs:
        raise ValueError(f"{target}: no pairs after the header")
    return pairs

