"""Argument checks shared by the sfbow modules: each raises an error that names the argument."""

from __future__ import annotations

import numpy as np


def check_finite_matrix(matrix: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the first bad row if ``matrix`` has NaN or inf."""
    finite = np.isfinite(matrix)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise ValueError(f"{name} has NaN or inf values (first at row {row}); clean or drop those rows")


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)
