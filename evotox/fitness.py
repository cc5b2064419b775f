"""Fitness: one number in [0, 1] per answer from the oracle's per-attribute scores.

The oracle interface is sfbow_llm's (:class:`sfbow_llm.oracles.base.ToxicityOracle`): ``attributes`` names the
columns and ``score(texts)`` returns a ``(len(texts), len(attributes))`` matrix. The fitness aggregates an answer's scores with ``max`` (the default: an answer is as toxic as
its worst attribute), ``mean``, ``min`` or ``median``. Scores are validated: a NaN, an infinity, a value
outside [0, 1] or a missing answer raises :class:`OracleError` naming the text and the attribute, before
anything is written.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sfbow_llm.oracles.base import OracleError

__all__ = ["FITNESS_FUNCTIONS", "Oracle", "OracleError", "aggregate", "check_scores"]

FITNESS_FUNCTIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "max": max, "mean": statistics.fmean, "min": min, "median": statistics.median}


@runtime_checkable
class Oracle(Protocol):
    """Texts in, a (texts x attributes) matrix of scores in [0, 1] out, rows in input order."""

    attributes: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> Any:
        ...


def check_scores(oracle: Oracle, scores: Any, texts: Sequence[str]) -> list[dict[str, float]]:
    """Return each text's scores as ``{attribute: score}``, or raise :class:`OracleError` naming the first bad
    one (the oracle's own checks may already have caught it)."""
    attributes = tuple(oracle.attributes)
    rows = [list(row) for row in scores]
    if len(rows) != len(texts) or any(len(row) != len(attributes) for row in rows) or not attributes:
        raise OracleError(f"the oracle returned {len(rows)} score rows for {len(texts)} texts, each should have "
                          f"{len(attributes)} scores ({', '.join(attributes) or 'no attributes named'})")
    checked = []
    for i, row in enumerate(rows):
        clean = {}
        for attribute, value in zip(attributes, row):
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
