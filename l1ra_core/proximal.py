"""Proximal operators for the L1 (and elastic-net) penalty on the L1RA gates.

L1RA takes an ordinary optimizer step on the loss, then a proximal step on the penalty:
``c <- prox_{lr * l1_lambda |.|}(c)`` with ``lr`` the gates' learning rate. Splitting the update this way is what makes gates reach
exactly zero, so components can be pruned; a plain subgradient step only makes them small.
Because the step is applied after any optimizer, no patched optimizer is needed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from l1ra_core._arrays import as_real_array
from sfbow_common.checks import check_nonnegative

__all__ = ["prox_elastic_net", "prox_l1", "soft_threshold"]


def soft_threshold(x: ArrayLike, threshold: float) -> np.ndarray:
    """Soft-thresholding, ``sign(x) * max(|x| - threshold, 0)``, elementwise.

    It is the proximal map of ``threshold * |z|``: the minimiser over ``z`` of
    ``0.5 * (z - x)**2 + threshold * |z|``. Entries with ``|x| <= threshold`` become exactly 0,
    the others move ``threshold`` towards 0. Integer input is computed in float64; float input
    keeps its dtype.
    """
    threshold = check_nonnegative(threshold, "threshold")
    return _shrink(_as_float(x), threshold, scale=1.0, lower=None, upper=None, out=None)


def prox_l1(
    x: ArrayLike,
    lr: float,
    l1_lambda: float,
    *,
    nonnegative: bool = False,
    upper: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The proximal step of L1RA: soft-threshold by ``lr * l1_lambda``, then clip to the box.

    Returns ``clip(soft_threshold(x, lr * l1_lambda), lower, upper)`` with ``lower = 0`` when
    ``nonnegative`` (else no lower bound) and ``upper`` (``None``: no upper bound). This is
    the exact proximal map of ``lr * l1_lambda * |z|`` plus the indicator of ``[lower, upper]``:
    for a 1-D convex problem the constrained minimiser is the clipped unconstrained one.
    L1RA keeps its gates in ``[0, 1]``: ``prox_l1(c, lr, l1_lambda, nonnegative=True, upper=1.0)``.

    ``lr`` is the gates' learning rate (the step size), ``l1_lambda`` the penalty weight and
    ``upper`` (finite, >= 0) the optional upper bound. Pass ``out=x`` (a floating ndarray, e.g.
    ``tensor.numpy()`` of a CPU tensor) to write the result in place; an integer ``out`` is
    refused, since the result would be truncated.
    """
    lr = check_nonnegative(lr, "lr")
    l1_lambda = check_nonnegative(l1_lambda, "l1_lambda")
    lower, upper = _box(nonnegative, upper)
    return _shrink(_as_float(x), lr * l1_lambda, scale=1.0, lower=lower, upper=upper, out=out)


def prox_elastic_net(
    x: ArrayLike,
    lr: float,
    l1_lambda: float,
    l2_lambda: float,
    *,
    nonnegative: bool = False,
    upper: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Proximal step for the elastic net ``l1_lambda * |z| + (l2_lambda / 2) * z**2``.

    Returns ``soft_threshold(x, lr * l1_lambda) / (1 + lr * l2_lambda)`` clipped to the box as in
    :func:`prox_l1` (which it equals when ``l2_lambda == 0``): the exact proximal map of ``lr``
    times the penalty. The L2 term also shrinks surviving gates by a constant factor.
    """
    lr = check_nonnegative(lr, "lr")
    l1_lambda = check_nonnegative(l1_lambda, "l1_lambda")
    l2_lambda = check_nonnegative(l2_lambda, "l2_lambda")
    lower, upper = _box(nonnegative, upper)
    scale = 1.0 / (1.0 + lr * l2_lambda)
    return _shrink(_as_float(x), lr * l1_lambda, scale=scale, lower=lower, upper=upper, out=out)


def _as_float(x: ArrayLike) -> np.ndarray:
    """``x`` as an array of a floating dtype (no copy when it already is one)."""
    array = as_real_array(x, "x")
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def _box(nonnegative: bool, upper: float | None) -> tuple[float | None, float | None]:
    """The clipping box ``[lower, upper]``; ``None`` stands for an open end."""
    lower = 0.0 if nonnegative else None
    return lower, None if upper is None else check_nonnegative(upper, "upper")


def _shrink(
    x: np.ndarray,
    threshold: float,
    *,
    scale: float,
    lower: float | None,
    upper: float | None,
    out: np.ndarray | None,
) -> np.ndarray:
    """``clip(scale * (x - clip(x, -threshold, threshold)), lower, upper)``, written to ``out`` if given.

    ``x - clip(x, -t, t)`` is soft-thresholding without a sign() pass; it equals
    ``sign(x) * max(|x| - t, 0)`` exactly in floating point.
    """
    if out is not None:
        _check_out(out, x)
    result = x - np.clip(x, -threshold, threshold)
    if scale != 1.0:
        result = result * scale
    if lower is not None or upper is not None:
        result = np.clip(result, lower, upper)
    if out is None:
        return result
    out[...] = result
    return out


def _check_out(out: object, x: np.ndarray) -> None:
    """Refuse an ``out`` that is no writable floating ndarray of ``x``'s shape (before any work)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(
            f"out must be a NumPy array (for a CPU tensor pass tensor.numpy()), got {type(out).__name__}"
        )
    if out.dtype.kind != "f":
        raise TypeError(
            f"out must have a floating dtype to hold the result, got {out.dtype}; an integer out would "
            "truncate it"
        )
    if out.shape != x.shape:
        raise ValueError(f"out has shape {out.shape} but x has shape {x.shape}; they must match")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
