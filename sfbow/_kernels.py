"""Numba kernels of the encoder: gather membership rows and max-pool them per sentence.

Sentences arrive in CSR form: ``ids[offsets[i]:offsets[i + 1]]`` are the table rows of sentence i.
Kept small and typed by their inputs; ``cache=True`` stores the machine code on disk so a new process
does not compile again. :mod:`sfbow._reference` is the plain-Python oracle the tests compare against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, parallel=True)
def max_pool(table: np.ndarray, ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = max over j in sentence i of table[ids[j]]``; a sentence with no ids gets zeros.

    Sentences are spread over Numba's threads (``prange``; see :func:`num_threads`). ``max()``
    rather than a compare-and-store lets LLVM vectorise the inner loop (measured 1.8x faster).
    Any ordered dtype works: float tables, or uint16 order keys of float16 tables.
    """
    n_rows, width = out.shape
    for i in numba.prange(n_rows):
        start, end = offsets[i], offsets[i + 1]
        row = out[i]
        if start == end:
            row[:] = 0
            continue
        row[:] = table[ids[start]]
        for j in range(start + 1, end):
            member = table[ids[j]]
            for k in range(width):
                row[k] = max(row[k], member[k])


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the kernels on ``n`` threads inside the block (``None``: all Numba has, the CPU count).

    ``n`` is capped at ``numba.config.NUMBA_NUM_THREADS``; the previous setting is restored after.
    """
    previous = numba.get_num_threads()
    n = numba.config.NUMBA_NUM_THREADS if n is None else min(n, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)
