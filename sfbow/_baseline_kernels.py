"""Numba kernel of the DynaMax baseline: fuzzy Jaccard with a universe built from each pair.

Sentences arrive in CSR form like the encoder's (``ids[offsets[i]:offsets[i + 1]]`` are the word-vector
rows of sentence i). Nothing is allocated per pair: each universe element is one of the pair's word
rows, used in place. The tests compare against a NumPy reference.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _membership(matrix: np.ndarray, ids: np.ndarray, start: int, stop: int, element: int) -> float:
    """``max(0, max over rows r in ids[start:stop] of matrix[r] . matrix[element])``."""
    best = 0.0
    for j in range(start, stop):
        dot = 0.0
        for c in range(matrix.shape[1]):
            dot += matrix[ids[j], c] * matrix[element, c]
        if dot > best:
            best = dot
    return best


@numba.njit(cache=True, nogil=True)
def dynamax_jaccard(matrix: np.ndarray, ids1: np.ndarray, offsets1: np.ndarray,
                    ids2: np.ndarray, offsets2: np.ndarray, out: np.ndarray) -> None:
    """``out[i]`` = DynaMax fuzzy Jaccard of pair i: U = the word rows of both sentences (0 if none)."""
    for i in range(out.shape[0]):
        a0, a1, b0, b1 = offsets1[i], offsets1[i + 1], offsets2[i], offsets2[i + 1]
        numerator = 0.0
        denominator = 0.0
        for u in range(a1 - a0 + b1 - b0):
            element = ids1[a0 + u] if u < a1 - a0 else ids2[b0 + u - (a1 - a0)]
            x = _membership(matrix, ids1, a0, a1, element)
            y = _membership(matrix, ids2, b0, b1, element)
            numerator += min(x, y)
            denominator += max(x, y)
        out[i] = numerator / denominator if denominator > 0.0 else 0.0
