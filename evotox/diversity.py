"""Semantic diversity of a set of prompts with sfbow: the mean pairwise ``1 - fuzzy Jaccard`` similarity.

Reported beside toxicity, it shows a search that found one trick and repeats it (low diversity) apart from
one that finds different ways to toxic answers. 0 means identical texts; larger is more varied. With fewer
than two prompts it is undefined (``nan``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mean_pairwise_distance"]


def mean_pairwise_distance(prompts: Sequence[str], model: object | None = None) -> float:
    """Mean of ``1 - fuzzy_jaccard`` over all pairs of ``prompts`` (default: sfbow's default model)."""
    import sfbow

    texts = list(prompts)
    if len(texts) < 2:
        return float("nan")
    encoder = model if model is not None else sfbow.default_model()
    vectors = np.asarray(encoder.encode(texts), dtype=np.float64)  # type: ignore[attr-defined]
    first, second = np.triu_indices(len(texts), k=1)
    similarities = sfbow.paired_fuzzy_jaccard(vectors[first], vectors[second])
    return float(np.mean(1.0 - similarities))
