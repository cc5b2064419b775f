"""Toxicity oracles behind one interface (:class:`ToxicityOracle`): texts in, a (texts x attributes)
matrix of scores in [0, 1] out, ``oracle.attributes`` naming the columns.

- ``"jigsaw"`` (default, offline): the six-label BiLSTM of ``toxic-comment-classifier`` 0.3.0, in NumPy.
- ``"profanity"`` (offline): ``alt-profanity-check`` 1.9.1 (scikit-learn; extra ``profanity``).
- ``"perspective"`` (online): Google's Perspective API, key from ``$PERSPECTIVE_API_KEY``.

NaN or out-of-range scores from any oracle raise :class:`OracleError`, naming the text's row.
"""

from __future__ import annotations

from typing import Any

from llmkit.oracles.base import OracleError, ToxicityOracle

__all__ = ["ORACLE_NAMES", "OracleError", "ToxicityOracle", "default_oracle", "make_oracle"]

ORACLE_NAMES = ("jigsaw", "profanity", "perspective")


def make_oracle(name: str, **options: Any) -> ToxicityOracle:
    """The oracle called ``name`` (one of :data:`ORACLE_NAMES`), built with ``options``."""
    if name == "jigsaw":
        from llmkit.oracles.jigsaw import JigsawOracle

        return JigsawOracle(**options)
    if name == "profanity":
        from llmkit.oracles.profanity import ProfanityOracle

        return ProfanityOracle(**options)
    if name == "perspective":
        from llmkit.oracles.perspective import PerspectiveOracle

        return PerspectiveOracle(**options)
    raise ValueError(f"oracle must be one of {', '.join(map(repr, ORACLE_NAMES))}; got {name!r}")


def default_oracle() -> ToxicityOracle:
    """The offline default: the Jigsaw six-label classifier."""
    return make_oracle("jigsaw")
