"""Numba kernels of the encoder: gather membership rows and max-pool them per sentence.

Sentences arrive in CSR form: ``ids[offsets[i]:offsets[i + 1]]`` are the table rows of sentence i.
Kept small and typed by their inputs; ``cache=True`` stores the machine code on disk so a new process
does not compile again. :mod:`sfbow._reference` is the plain-Python oracle the tests compare against.
Sentences are spread over Numba's threads with ``prange``; :func:`num_threads` sets how many.
Callers run the parallel kernels (these and the native tokeniser's) inside :func:`exclusive`, which
serialises them across Python threads when the threading layer cannot be entered twice at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numba
import numpy as np

_HALF_TO_SINGLE = np.float32(2.0**112)
#: Work items of the float16 kernel's parallel loop: many per thread, so uneven sentences balance.
_CHUNKS = 256


@numba.njit(cache=True, nogil=True, inline="always")
def _pool_into(acc, table, ids, start, end):
    """``acc[:] = max over j in [start, end) of table[ids[j]]`` (``start < end``); :func:`max_into`'s
    ``max()`` measured 1.8x faster than a compare-and-store."""
    acc[:] = table[ids[start]]
    for j in range(start + 1, end):
        max_into(acc, table[ids[j]])


@numba.njit(cache=True, nogil=True, inline="always")
def max_into(acc, member):
    """``acc[:] = max(acc, member)`` element-wise (``max()`` rather than a compare-and-store lets LLVM
    vectorise the loop)."""
    for k in range(acc.size):
        acc[k] = max(acc[k], member[k])


@numba.njit(cache=True, nogil=True, parallel=True)
def max_pool(table: np.ndarray, ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = max over j in sentence i of table[ids[j]]``; a sentence with no ids gets zeros."""
    for i in numba.prange(out.shape[0]):
        start, end = offsets[i], offsets[i + 1]
        if start == end:
            out[i] = 0
        else:
            _pool_into(out[i], table, ids, start, end)


@numba.njit(cache=True, nogil=True, parallel=True)
def max_pool_half(bits: np.ndarray, ids: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """:func:`max_pool` of a non-negative float16 table given as its uint16 ``bits``, into float32 ``out``.

    Non-negative float16 values order like their bit patterns, so the max is exact integer work
    on half the bytes; each pooled row is then widened to float32 exactly (:func:`_widen_into`).
    """
    n_rows, width = out.shape
    n_chunks = min(n_rows, _CHUNKS)
    for chunk in numba.prange(n_chunks):
        acc = np.empty(width, np.uint16)
        for i in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            start, end = offsets[i], offsets[i + 1]
            row = out[i]
            if start == end:
                row[:] = 0
                continue
            _pool_into(acc, bits, ids, start, end)
            _widen_into(row, acc)


@numba.njit(cache=True, nogil=True, inline="always")
def _widen_into(row, bits):
    """``row[:] = bits`` read as non-negative float16, widened to float32 exactly (normals and subnormals:
    shift exponent and mantissa into float32 position, rescale by ``2**(127 - 15)``)."""
    row_bits = row.view(np.uint32)
    for k in range(row.size):
        row_bits[k] = np.uint32(bits[k]) << 13
    for k in range(row.size):
        row[k] *= _HALF_TO_SINGLE


@numba.njit(cache=True, nogil=True, parallel=True)
def widen_half(bits: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = bits[i]`` read as non-negative float16, as float32 (exact); ``bits`` is uint16."""
    for i in numba.prange(out.shape[0]):
        _widen_into(out[i], bits[i])


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the kernels on ``n`` threads inside the block (``None``: all Numba has, the CPU count).

    ``n`` is capped at ``numba.config.NUMBA_NUM_THREADS``; the previous setting is restored after.
    """
    previous = numba.get_num_threads()
    most: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import, not in stubs
    n = most if n is None else min(n, most)
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


#: Taken by :func:`exclusive` under a threading layer that is not thread-safe (``workqueue``).
_SERIAL = threading.Lock()
#: Guards the one-off choice of the threading layer, which itself runs a parallel kernel.
_LAYER_CHOICE = threading.Lock()
_concurrent_calls_safe: bool | None = None


def concurrent_calls_are_safe() -> bool:
    """Whether several Python threads may run the parallel kernels at once.

    Numba's OpenMP and TBB threading layers allow it; its fallback ``workqueue`` layer aborts the
    process ("Concurrent access"). The layer is chosen at the first parallel call, so this makes one
    (a trivial one, under a lock) if needed; the answer is then fixed for the process and cached.
    """
    global _concurrent_calls_safe
    if _concurrent_calls_safe is None:
        with _LAYER_CHOICE:
            if _concurrent_calls_safe is None:
                try:
                    layer = numba.threading_layer()
                except ValueError:  # no parallel kernel has run in this process yet
                    max_pool(np.zeros((1, 1), np.float32), np.zeros(0, np.int64), np.zeros(2, np.int64),
                             np.empty((1, 1), np.float32))
                    layer = numba.threading_layer()
                _concurrent_calls_safe = layer in ("omp", "tbb")
    return _concurrent_calls_safe


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Run a parallel kernel inside this block: alone in the process when the threading layer is
    not thread-safe (``workqueue``), so calls from different user threads take turns; a no-op
    under OpenMP and TBB."""
    if concurrent_calls_are_safe():
        yield
    else:
        with _SERIAL:
            yield
