"""Similarities between sentence vectors: fuzzy Jaccard (SFBoW's own) and cosine.

Both are defined for every input, zero vectors included, and never return NaN:
a zero denominator gives 0.0. Fuzzy Jaccard is meant for non-negative vectors (the default,
clipped memberships); cosine is what vector databases expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cosine", "fuzzy_jaccard", "paired_cosine", "paired_fuzzy_jaccard"]


def paired_fuzzy_jaccard(x: Any, y: Any) -> np.ndarray:
    """Row-wise fuzzy Jaccard ``sum_k min(x_k, y_k) / sum_k max(x_k, y_k)`` of two (n, K) arrays."""
    x, y = _paired(x, y)
    numerator = np.minimum(x, y).sum(axis=1, dtype=np.float64)
    denominator = np.maximum(x, y).sum(axis=1, dtype=np.float64)
    return _safe_divide(numerator, denominator)


def paired_cosine(x: Any, y: Any) -> np.ndarray:
    """Row-wise cosine similarity of two (n, K) arrays (0.0 where either row is zero)."""
    x, y = _paired(x, y)
    dot = np.einsum("ij,ij->i", x, y, dtype=np.float64)
    norms = np.linalg.norm(x.astype(np.float64), axis=1) * np.linalg.norm(y.astype(np.float64), axis=1)
    return _safe_divide(dot, norms)


def fuzzy_jaccard(x: Any, y: Any) -> float:
    """Fuzzy Jaccard index of two sentence vectors (see :func:`paired_fuzzy_jaccard`)."""
    return float(paired_fuzzy_jaccard(_single(x, "x"), _single(y, "y"))[0])


def cosine(x: Any, y: Any) -> float:
    """Cosine similarity of two sentence vectors (0.0 when either is zero)."""
    return float(paired_cosine(_single(x, "x"), _single(y, "y"))[0])


def _single(v: Any, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one vector (1-D), got shape {v.shape}; use the paired_* functions for batches")
    return v[None, :]


def _paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be row-aligned 2-D arrays of one shape, got {x.shape} and {y.shape}")
    for name, v in (("x", x), ("y", y)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} has NaN or inf values")
    return x, y


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
