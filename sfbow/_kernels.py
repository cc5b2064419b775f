"""Numba kernels of the encoder: gather membership rows and max-pool them per sentence.

Sentences arrive in CSR form: ``ids[offsets[i]:offsets[i + 1]]`` are the table rows of sentence i.
Kept small and typed by their inputs; ``cache=True`` stores the machine code on disk so a new process
does not compile again. :mod:`sfbow._reference` is the plain-Python oracle the tests compare against.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def max_pool(table: np.ndarray, ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = max over j in sentence i of table[ids[j]]``; a sentence with no ids gets zeros."""
    n_rows, width = out.shape
    for i in range(n_rows):
        start, end = offsets[i], offsets[i + 1]
        row = out[i]
        if start == end:
            row[:] = 0.0
            continue
        row[:] = table[ids[start]]
        for j in range(start + 1, end):
            member = table[ids[j]]
            for k in range(width):
                if member[k] > row[k]:
                    row[k] = member[k]
