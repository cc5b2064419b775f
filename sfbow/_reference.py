"""Plain Python/NumPy reference of the encoder, the oracle the fast paths are tested against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def reference_encode(token_lists: Iterable[Sequence[str]], index: Mapping[str, int],
                     table: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Max-pool the ``table`` rows of each sentence's known tokens; zeros for no known token.

    With ``weights`` (one per row), each row is first multiplied by its word's weight (weighted max-pooling,
    :mod:`sfbow.weighting`), in the table's dtype."""
    rows = []
    for tokens in token_lists:
        known = [table[index[t]] if weights is None else table[index[t]] * table.dtype.type(weights[index[t]])
                 for t in tokens if t in index]
        rows.append(np.max(known, axis=0) if known else np.zeros(table.shape[1], table.dtype))
    return np.array(rows, dtype=table.dtype).reshape(len(rows), table.shape[1])
