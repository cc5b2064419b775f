"""Plain Python/NumPy reference of the encoder, the oracle the fast paths are tested against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def reference_encode(token_lists: Iterable[Sequence[str]], index: Mapping[str, int],
                     table: np.ndarray) -> np.ndarray:
    """Max-pool the ``table`` rows of each sentence's known tokens; zeros for no known token."""
    rows = []
    for tokens in token_lists:
        known = [table[index[t]] for t in tokens if t in index]
        rows.append(np.max(known, axis=0) if known else np.zeros(table.shape[1], table.dtype))
    return np.array(rows, dtype=table.dtype).reshape(len(rows), table.shape[1])
