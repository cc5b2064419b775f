"""Argument checks shared by every package: ``check_x(value, name, ...)`` returns the value in its
canonical type or raises an error that names the argument, what it got and what it expected.

The order is always value first, then the argument's name, as in scikit-learn's ``check_scalar``.
``bool`` is never accepted as a number: ``budget=True`` is a bug, not 1.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_finite_matrix", "check_int", "check_positive_int", "check_real", "check_nonnegative",
           "check_choice"]


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_int(value: object, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise unless it is an integer in [minimum, maximum]."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    result = int(value)
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{name} must be an int <= {maximum}, got {result}")
    return result


def check_positive_int(value: object, name: str, *, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= 1 (and <= ``maximum``)."""
    return check_int(value, name, minimum=1, maximum=maximum)


def check_real(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
               exclusive_minimum: bool = False) -> float:
    """Return ``value`` as a float, or raise unless it is a finite real number in the given range."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    result = float(value)
    low_ok = minimum is None or (result > minimum if exclusive_minimum else result >= minimum)
    if not math.isfinite(result) or not low_ok or (maximum is not None and result > maximum):
        bounds = [f"{'>' if exclusive_minimum else '>='} {minimum:g}"] if minimum is not None else []
        bounds += [f"<= {maximum:g}"] if maximum is not None else []
        raise ValueError(f"{name} must be finite{' and ' if bounds else ''}{' and '.join(bounds)}, got {result}")
    return result


def check_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise unless it is a finite real number >= 0."""
    return check_real(value, name, minimum=0.0)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` unless it is not one of ``choices`` (strings); the error lists them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_finite_matrix(matrix: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the first bad row if ``matrix`` has NaN or inf."""
    finite = np.isfinite(matrix)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise ValueError(f"{name} has NaN or inf values (first at row {row}); clean or drop those rows")
