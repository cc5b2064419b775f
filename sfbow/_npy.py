"""Reading a ``.npy`` header without NumPy's loader, so that a reader can check the declared shape
against the bytes actually there before it allocates anything."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

#: Longest header accepted (NumPy writes a few hundred bytes for a 2-D array).
MAX_HEADER_BYTES = 4096


def read_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from ``stream`` positioned at a ``.npy`` start; leaves it at the data.

    Raises ``ValueError`` for anything that is not a version 1 or 2 header (NumPy's parser uses
    ``ast.literal_eval``, never pickle), and for object dtypes.
    """
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    except (EOFError, SyntaxError, TypeError) as exc:
        raise ValueError(f"not a .npy header: {exc}") from None
    shape, fortran_order, dtype = header
    if dtype.hasobject:
        raise ValueError(f"holds Python objects ({dtype}), which would need pickle")
    return shape, fortran_order, dtype
