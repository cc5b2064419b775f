"""Similarities between sentence vectors: fuzzy Jaccard (SFBoW's own) and cosine.

Both are defined for every finite input and always return a finite number:

* :func:`fuzzy_jaccard` reads a vector as fuzzy-set memberships. A membership cannot be negative,
  so negative entries count as 0 (as SFBoW's ``clip=True`` makes them). The result is in [0, 1];
  0.0 when both vectors have no positive entry.
* :func:`cosine` is in [-1, 1] (what vector databases expect); 0.0 when either vector is zero.

Both are scale-invariant: fuzzy Jaccard under one positive factor for both vectors, cosine under a
positive factor for each. They are computed that way, in float64, on vectors first scaled by a
power of two (exact) that brings their largest entry into [0.5, 1): so 1e300 or 1e-300 vectors
neither overflow nor underflow (``cosine(v, v)`` is 1 for every non-zero finite ``v``). NaN or
inf entries are an error naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cosine", "fuzzy_jaccard", "paired_cosine", "paired_fuzzy_jaccard"]


def paired_fuzzy_jaccard(x: Any, y: Any) -> np.ndarray:
    """Row-wise fuzzy Jaccard ``sum_k min(x_k, y_k) / sum_k max(x_k, y_k)`` of two (n, K) arrays.

    Negative entries count as 0; a pair with no positive entry gives 0.0. Results are in [0, 1].
    """
    x, y = _paired(x, y)
    x, y = np.maximum(x, 0), np.maximum(y, 0)
    exponent = _exponent(np.maximum(_peak(x), _peak(y)))  # one factor for both: J(cx, cy) = J(x, y)
    x, y = np.ldexp(x, exponent), np.ldexp(y, exponent)
    numerator = np.minimum(x, y).sum(axis=1)
    denominator = np.maximum(x, y).sum(axis=1)
    return np.clip(_safe_divide(numerator, denominator), 0.0, 1.0)


def paired_cosine(x: Any, y: Any) -> np.ndarray:
    """Row-wise cosine similarity of two (n, K) arrays, in [-1, 1] (0.0 where either row is zero)."""
    x, y = _paired(x, y)
    x, y = np.ldexp(x, _exponent(_peak(x))), np.ldexp(y, _exponent(_peak(y)))  # each row its own factor
    dot = np.einsum("ij,ij->i", x, y)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.clip(_safe_divide(dot, norms), -1.0, 1.0)


def fuzzy_jaccard(x: Any, y: Any) -> float:
    """Fuzzy Jaccard index of two sentence vectors, in [0, 1] (see :func:`paired_fuzzy_jaccard`)."""
    return float(paired_fuzzy_jaccard(_single(x, "x"), _single(y, "y"))[0])


def cosine(x: Any, y: Any) -> float:
    """Cosine similarity of two sentence vectors, in [-1, 1] (0.0 when either is zero)."""
    return float(paired_cosine(_single(x, "x"), _single(y, "y"))[0])


def _single(v: Any, name: str) -> np.ndarray:
    v = _real_array(v, name)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one vector (1-D), got shape {v.shape}; use the paired_* functions for batches")
    return v[None, :]


def _paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 (n, K) arrays of one shape, finite."""
    x, y = _real_array(x, "x"), _real_array(y, "y")
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be row-aligned 2-D arrays of one shape, got {x.shape} and {y.shape}")
    for name, v in (("x", x), ("y", y)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} has NaN or inf values")
    return x, y


def _real_array(v: Any, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {v.dtype}")
    return v.astype(np.float64, copy=False)


def _peak(v: np.ndarray) -> np.ndarray:
    """The largest absolute entry of each row (0 for an empty or zero row)."""
    return np.max(np.abs(v), axis=1, initial=0.0)


def _exponent(peak: np.ndarray) -> np.ndarray:
    """Per row, the power of two ``e`` such that ``peak * 2**e`` is in [0.5, 1) (0 for a zero peak)."""
    return -np.frexp(peak)[1][:, None]


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
