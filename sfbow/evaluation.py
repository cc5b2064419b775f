"""STS data loaders and evaluation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["STSDataset", "load_stsb"]


@dataclass(frozen=True)
class STSDataset:
    """Sentence pairs with gold similarity scores."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def load_stsb(path: str | os.PathLike[str]) -> STSDataset:
    """Read an STS Benchmark file (``sts-{train,dev,test}.csv``).

    Tab-separated; field 5 is the 0-5 score and fields 6 and 7 the sentences. Some lines carry extra
    fields after them, so lines are split on tabs (a quote-aware CSV parser would merge lines).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"STS Benchmark file not found: {path}")
    first, second, scores = [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 7:
                raise ValueError(f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}")
            try:
                scores.append(float(fields[4]))
            except ValueError:
                raise ValueError(f"{path}:{number}: score {fields[4]!r} is not a number") from None
            first.append(fields[5])
            second.append(fields[6])
    return STSDataset(path.stem, first, second, np.asarray(scores))
