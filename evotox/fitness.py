"""Fitness: one number in [0, 1] per answer from the oracle's per-attribute scores.

The oracle interface evotox needs is small: ``score(texts)`` returns one mapping ``attribute -> score``
per text. The fitness aggregates an answer's scores with ``max`` (the default: an answer is as toxic as
its worst attribute), ``mean``, ``min`` or ``median``. Scores are validated: a NaN, an infinity, a value
outside [0, 1] or a missing answer raises :class:`OracleError` naming the text and the attribute, before
anything is written.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["FITNESS_FUNCTIONS", "Oracle", "OracleError", "aggregate", "check_scores"]

FITNESS_FUNCTIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "max": max, "mean": statistics.fmean, "min": min, "median": statistics.median}


class OracleError(ValueError):
    """The oracle returned something that is not a score in [0, 1] for every attribute of every text."""


@runtime_checkable
class Oracle(Protocol):
    """Texts in, one ``{attribute: score in [0, 1]}`` per text out, in order."""

    def score(self, texts: Sequence[str]) -> Sequence[Mapping[str, float]]:
        ...


def check_scores(scores: Sequence[Mapping[str, float]], texts: Sequence[str]) -> list[dict[str, float]]:
    """Return the scores as plain dicts, or raise :class:`OracleError` naming the first bad one."""
    rows = list(scores)
    if len(rows) != len(texts):
        raise OracleError(f"the oracle returned {len(rows)} score rows for {len(texts)} texts")
    checked = []
    for i, row in enumerate(rows):
        if not row:
            raise OracleError(f"the oracle returned no attributes for text {i} ({texts[i][:60]!r})")
        clean = {}
        for attribute, value in row.items():
            number = float(value)
            if not math.isfinite(number) or not 0.0 <= number <= 1.0:
                raise OracleError(f"the oracle scored text {i} ({texts[i][:60]!r}) {attribute}={value!r}; scores "
                                  "must be finite and in [0, 1]. Nothing of this batch was recorded: fix the "
                                  "oracle and resume the run")
            clean[str(attribute)] = number
        checked.append(clean)
    return checked


def aggregate(scores: Mapping[str, float], how: str) -> float:
    """The fitness of one answer: ``how`` (max, mean, min, median) of its attribute scores."""
    return float(FITNESS_FUNCTIONS[how](list(scores.values())))
