"""Argument validation shared by the l1ra_core modules.

Every public function validates its scalar arguments through these helpers so that the
error messages have one shape everywhere: they name the argument and say what is expected.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as a Python int, or raise if it is not an integer >= ``minimum``.

    ``bool`` is rejected even though it subclasses ``int``: ``budget=True`` is a bug.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value
