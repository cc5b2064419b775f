"""Framework arrays in, NumPy arrays out: the one conversion every l1ra_core function uses.

Anything ``numpy.asarray`` reads is accepted (lists, NumPy, CPU tensors of PyTorch, JAX arrays).
What it cannot read (a bfloat16 tensor, a tensor that requires grad, one on a GPU) gets an error
that names the argument and says how to convert it, instead of the framework's own message.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["as_real_array"]


def as_real_array(value: ArrayLike, name: str, *, dtype: type | None = None) -> np.ndarray:
    """``value`` as a NumPy array of real numbers (bool, int or float), optionally cast to ``dtype``.

    Raises ``TypeError`` naming ``name`` when the value cannot be read as such an array.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"{name} cannot be read as a NumPy array ({error}); pass a float32/float64 array on the CPU, "
            "e.g. tensor.detach().float().cpu()"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array if dtype is None else array.astype(dtype, copy=False)
