"""Toxicity oracles behind one interface (:class:`ToxicityOracle`): texts in, a (texts x attributes)
matrix of scores in [0, 1] out, ``oracle.attributes`` naming the columns.

- ``"jigsaw"`` (default, offline): the six-label BiLSTM of ``toxic-comment-classifier`` 0.3.0, in NumPy.
- ``"profanity"`` (offline): ``alt-profanity-check`` 1.9.1 (scikit-learn; extra ``profanity``).
- ``"perspective"`` (online): Google's Perspective API, key from ``$PERSPECTIVE_API_KEY``.

NaN or out-of-range scores from any oracle raise :class:`OracleError`, naming the text's row.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from sfbow_common.records import KindSpec, Registry
from sfbow_llm.oracles.base import OracleError, ToxicityOracle

__all__ = ["ORACLES", "ORACLE_NAMES", "OracleError", "OracleSpec", "ToxicityOracle", "default_oracle", "make_oracle"]

#: The oracles by name, each imported only when built.
ORACLES = Registry("oracle", {
    "jigsaw": "sfbow_llm.oracles.jigsaw:JigsawOracle",
    "profanity": "sfbow_llm.oracles.profanity:ProfanityOracle",
    "perspective": "sfbow_llm.oracles.perspective:PerspectiveOracle",
})
ORACLE_NAMES = ORACLES.names


@dataclass(frozen=True)
class OracleSpec(KindSpec):
    """An oracle by kind and options, saved as ``{"kind": "jigsaw", **options}``."""

    kind: str = "jigsaw"
    registry: ClassVar[Registry] = ORACLES


def make_oracle(name: str, **options: Any) -> ToxicityOracle:
    """The oracle called ``name`` (one of :data:`ORACLE_NAMES`), built with ``options``."""
    return typing.cast(ToxicityOracle, OracleSpec(name, options).build())


def default_oracle() -> ToxicityOracle:
    """The offline default: the Jigsaw six-label classifier."""
    return make_oracle("jigsaw")
