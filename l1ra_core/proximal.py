"""Proximal operators for the L1 (and elastic-net) penalty on the L1RA gates.

L1RA takes an ordinary optimizer step on the loss, then a proximal step on the penalty:
``c <- prox_{step * lam |.|}(c)``. Splitting the update this way is what makes gates reach
exactly zero, so components can be pruned; a plain subgradient step only makes them small.
Because the step is applied after any optimizer, no patched optimizer is needed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from shared_utils.checks import check_nonnegative

__all__ = ["prox_elastic_net", "prox_l1", "soft_threshold"]


def soft_threshold(x: ArrayLike, t: float) -> np.ndarray:
    """Soft-thresholding, ``sign(x) * max(|x| - t, 0)``, elementwise.

    It is the proximal map of ``t * |z|``: the minimiser over ``z`` of
    ``0.5 * (z - x)**2 + t * |z|``. Entries with ``|x| <= t`` become exactly 0, the others move
    ``t`` towards 0. Integer input is computed in float64; float input keeps its dtype.
    """
    t = check_nonnegative(t, "t")
    return _shrink(_as_float(x), t, scale=1.0, lower=None, upper=None, out=None)


def prox_l1(
    x: ArrayLike,
    step: float,
    lam: float,
    *,
    nonnegative: bool = False,
    upper: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The proximal step of L1RA: soft-threshold by ``step * lam``, then clip to the box.

    Returns ``clip(soft_threshold(x, step * lam), lower, upper)`` with ``lower = 0`` when
    ``nonnegative`` (else no lower bound) and ``upper`` (``None``: no upper bound). This is
    the exact proximal map of ``step * lam * |z|`` plus the indicator of ``[lower, upper]``:
    for a 1-D convex problem the constrained minimiser is the clipped unconstrained one.
    L1RA keeps its gates in ``[0, 1]``: ``prox_l1(c, lr, lam, nonnegative=True, upper=1.0)``.

    ``step`` is the gates' learning rate, ``lam`` the penalty weight and ``upper`` (finite,
    >= 0) the optional upper bound. Pass ``out=x`` (a float ndarray, e.g. ``tensor.numpy()``
    of a CPU tensor) to write the result in place.
    """
    step = check_nonnegative(step, "step")
    lam = check_nonnegative(lam, "lam")
    lower, upper = _box(nonnegative, upper)
    return _shrink(_as_float(x), step * lam, scale=1.0, lower=lower, upper=upper, out=out)


def prox_elastic_net(
    x: ArrayLike,
    step: float,
    lam: float,
    l2: float,
    *,
    nonnegative: bool = False,
    upper: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Proximal step for the elastic net ``lam * |z| + (l2 / 2) * z**2``.

    Returns ``soft_threshold(x, step * lam) / (1 + step * l2)`` clipped to the box as in
    :func:`prox_l1` (which it equals when ``l2 == 0``): the exact proximal map of
    ``step`` times the penalty. The L2 term also shrinks surviving gates by a constant factor.
    """
    step = check_nonnegative(step, "step")
    lam = check_nonnegative(lam, "lam")
    l2 = check_nonnegative(l2, "l2")
    lower, upper = _box(nonnegative, upper)
    scale = 1.0 / (1.0 + step * l2)
    return _shrink(_as_float(x), step * lam, scale=scale, lower=lower, upper=upper, out=out)


def _as_float(x: ArrayLike) -> np.ndarray:
    """``x`` as an array of a floating dtype (no copy when it already is one)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x
    if x.dtype.kind not in "biu":
        raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
    return x.astype(np.float64)


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
    result = x - np.clip(x, -threshold, threshold)
    if scale != 1.0:
        result = result * scale
    if lower is not None or upper is not None:
        result = np.clip(result, lower, upper)
    if out is None:
        return result
    if not isinstance(out, np.ndarray):
        raise TypeError(
            f"out must be a NumPy array (for a CPU tensor pass tensor.numpy()), got {type(out).__name__}"
        )
    if out.shape != x.shape:
        raise ValueError(f"out has shape {out.shape} but x has shape {x.shape}; they must match")
    out[...] = result
    return out
