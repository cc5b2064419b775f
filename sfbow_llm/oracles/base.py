"""The one interface every toxicity oracle follows: texts in, a (texts x attributes) score matrix out.

Scores are probabilities in [0, 1], one column per attribute (``oracle.attributes``), one row per text,
in input order. :meth:`ToxicityOracle.score` validates both sides for every oracle: the input must be a
sequence of strings (an empty sequence gives a (0, k) matrix), and an oracle whose raw output has the wrong
shape, a NaN, or a value outside [0, 1] raises :class:`OracleError` naming the oracle, the text's row and
the attribute, never a silently wrong score. How to aggregate the columns (max, mean, ...) is the caller's
choice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

__all__ = ["OracleError", "ToxicityOracle"]


class OracleError(RuntimeError):
    """An oracle could not score a text: bad output (NaN, out of range), a refused or failed request."""


class ToxicityOracle(ABC):
    """Base class of the oracles; subclasses set ``name`` and ``attributes`` and implement ``_score``."""

    name: str
    attributes: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """A float64 matrix of shape ``(len(texts), len(self.attributes))`` with values in [0, 1]."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a sequence of strings (a list), got {type(texts).__name__}")
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] must be a string, got {type(text).__name__}")
        if not texts:
            return np.zeros((0, len(self.attributes)))
        raw = np.asarray(self._score(list(texts)), dtype=np.float64)
        return self._checked(raw, len(texts))

    def describe(self) -> dict[str, object]:
        """What a run file's header records about the oracle."""
        return {"name": self.name, "attributes": list(self.attributes)}

    @abstractmethod
    def _score(self, texts: list[str]) -> np.ndarray:
        """Raw scores for a non-empty list of strings; validated by :meth:`score`."""

    def _checked(self, raw: np.ndarray, n: int) -> np.ndarray:
        expected = (n, len(self.attributes))
        if raw.shape != expected:
            raise OracleError(f"oracle {self.name} returned scores of shape {raw.shape}, expected {expected}")
        bad = ~((raw >= 0.0) & (raw <= 1.0))  # NaN compares false, so it is caught here too
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise OracleError(f"oracle {self.name} returned {raw[row, column]} for texts[{row}] (attribute "
                              f"{self.attributes[column]}); scores must be in [0, 1]. The text cannot be scored: "
                              "drop it or score it with another oracle")
        return raw
