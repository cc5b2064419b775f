"""Spectra of LoRA updates ``dW = B diag(c) A``, computed from the factors alone.

With thin QR factorisations ``B = Q_B R_B`` and ``A^T = Q_A R_A``,

    dW = Q_B (R_B diag(c) R_A^T) Q_A^T,

and since ``Q_B`` and ``Q_A`` have orthonormal columns, ``dW`` has the singular values of the
small ``r x r`` core ``R_B diag(c) R_A^T``. Cost: O((out + in) r^2) time and memory, never the
``out x in`` matrix. The LoRA scaling ``alpha / r`` multiplies every singular value alike;
fold it into ``gates`` when absolute values matter (energy fractions do not change).

Each factor is divided by its largest magnitude before the QR and the scales are multiplied back
into the singular values at the end, so factors near 1e200 or 1e-200 give exact fractions and
singular values instead of overflowing or underflowing inside the core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from l1ra_core._arrays import as_real_array
from sfbow_common.checks import check_int

__all__ = ["adapter_singular_values", "energy_kept", "spectral_budget", "truncate_adapter"]


def adapter_singular_values(A: ArrayLike, B: ArrayLike, gates: ArrayLike | None = None) -> np.ndarray:
    """Singular values of ``B @ diag(gates) @ A``, descending (float64).

    ``A`` is ``r x in``, ``B`` is ``out x r`` and ``gates`` has length ``r`` (``None``: all 1).
    Returns ``min(r, out, in)`` values; beyond those the update has no spectrum. Raises
    ``ValueError`` when they exceed float64's range (about 1.8e308): rescale the factors.
    """
    _, core, _, root_scale = _core(A, B, gates)
    with np.errstate(over="ignore"):  # reported below as an error
        sigma = np.linalg.svd(core, compute_uv=False) * root_scale * root_scale
    if not np.isfinite(sigma).all():
        raise ValueError(
            "the update's singular values exceed float64's range (about 1.8e308); rescale A, B or the gates"
        )
    return sigma


def energy_kept(
    singular_values_or_factors: ArrayLike | tuple[ArrayLike, ...], rank: int
) -> float:
    """Fraction of the update's energy its best rank-``rank`` approximation keeps.

    ``sum(sigma[:rank]**2) / sum(sigma**2)`` with ``sigma`` sorted descending (Eckart-Young:
    it is ``1 - ||dW - dW_k||_F^2 / ||dW||_F^2``). Pass singular values, or the factors as a
    tuple or list ``(A, B)`` or ``(A, B, gates)``. A zero update is kept entirely by any rank, so
    ``0 / 0`` is defined as 1.0.
    """
    rank = check_int(rank, "rank", minimum=0)
    if _is_factors(singular_values_or_factors):
        factors = cast(Sequence[ArrayLike], singular_values_or_factors)
        _, core, _, _ = _core(*factors)  # the scale cancels in the fraction
        sigma = np.linalg.svd(core, compute_uv=False)
    else:
        sigma = as_real_array(cast(ArrayLike, singular_values_or_factors), "singular values", dtype=np.float64)
        if sigma.ndim != 1 or not np.isfinite(sigma).all() or (sigma < 0).any():
            raise ValueError(
                "singular values must be a 1-D array of finite numbers >= 0 (or pass the factors "
                f"as a tuple (A, B) or (A, B, gates)); got shape {sigma.shape}"
            )
        peak = sigma.max(initial=0.0)
        sigma = sigma / peak if peak > 0 else sigma  # squares of 1e200 would overflow
    energy = np.sort(sigma)[::-1] ** 2
    total = energy.sum()
    if total == 0:
        return 1.0
    return float(energy[:rank].sum() / total)


def truncate_adapter(
    A: ArrayLike, B: ArrayLike, rank: int, gates: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-``rank`` approximation of ``B diag(gates) A``, as factors ``(A_k, B_k)``, k = ``rank``.

    With the core's SVD ``U S V^T``: ``B_k = Q_B U_k sqrt(S_k)`` (``out x k``) and
    ``A_k = sqrt(S_k) V_k^T Q_A^T`` (``k x in``), so ``B_k @ A_k`` is the Eckart-Young optimum
    in Frobenius and spectral norm and the gates are folded in (use gate 1 afterwards). The
    square-root split balances the two factors. ``rank`` may be up to ``r``; components beyond
    ``min(r, out, in)`` are zero. The result keeps the floating dtype of ``A`` and ``B``.
    """
    k = check_int(rank, "rank", minimum=0)
    q_b, core, q_a, root_scale = _core(A, B, gates)
    r = np.shape(A)[0]
    if k > r:
        raise ValueError(f"rank={k} exceeds the adapter's rank r={r}; pass rank <= r")
    u, s, vt = np.linalg.svd(core, full_matrices=False)
    n = min(k, len(s))
    root = np.sqrt(s[:n]) * root_scale
    dtype = np.result_type(np.asarray(A).dtype, np.asarray(B).dtype, np.float32)
    a_k = np.zeros((k, q_a.shape[0]), dtype=dtype)
    b_k = np.zeros((q_b.shape[0], k), dtype=dtype)
    a_k[:n] = (root[:, None] * vt[:n]) @ q_a.T
    b_k[:, :n] = (q_b @ u[:, :n]) * root
    return a_k, b_k


def spectral_budget(
    adapters: Mapping[str, Sequence[ArrayLike]], budget: int, *, min_rank: int = 1
) -> dict[str, int]:
    """Split a global rank ``budget`` across adapters by their largest singular values.

    Every adapter first gets ``min_rank``; the rest of the budget goes to the largest
    singular values that remain, pooled across all adapters (ties: by name, then position).
    An adapter's rank is then the number of its singular values chosen. ``adapters`` maps
    names to ``(A, B)`` or ``(A, B, gates)`` (tuples, lists or other sequences). Singular
    values are compared as they are, so fold each adapter's ``alpha / r`` into its gates if
    scalings differ.
    """
    if not isinstance(adapters, Mapping):
        raise TypeError(
            f"adapters must be a mapping of name -> (A, B) or (A, B, gates), got {type(adapters).__name__}"
        )
    if not adapters:
        raise ValueError("adapters is empty; pass at least one adapter")
    min_rank = check_int(min_rank, "min_rank", minimum=0)
    budget = check_int(budget, "budget", minimum=min_rank * len(adapters))
    names = sorted(adapters)
    spectra = []
    for name in names:
        if not _is_factors(adapters[name]):
            raise TypeError(
                f"adapters[{name!r}] must be a tuple or other sequence (A, B) or (A, B, gates) with A a matrix"
            )
        try:
            spectra.append(adapter_singular_values(*adapters[name]))
        except ValueError as error:
            raise ValueError(f"adapters[{name!r}]: {error}") from None
    pool = np.concatenate([sigma[min_rank:] for sigma in spectra])
    owner = np.repeat(np.arange(len(names)), [max(len(sigma) - min_rank, 0) for sigma in spectra])
    spare = budget - min_rank * len(names)
    if spare > len(pool):
        raise ValueError(
            f"budget={budget} exceeds the {len(pool) + min_rank * len(names)} ranks the adapters' "
            "spectra can fill (each has min(r, out, in) singular values); lower budget"
        )
    chosen = owner[np.argsort(-pool, kind="stable")[:spare]]
    counts = np.bincount(chosen, minlength=len(names))
    return {name: min_rank + int(count) for name, count in zip(names, counts)}


def _is_factors(value: object) -> bool:
    """Whether ``value`` holds factors ``(A, B)`` or ``(A, B, gates)`` (a tuple, list or any other
    non-string sequence of length 2 or 3 whose first item is a matrix) rather than a spectrum."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) in (2, 3)
        and np.ndim(value[0]) == 2
    )


def _core(
    A: ArrayLike, B: ArrayLike, gates: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Validate the factors; return ``Q_B``, the core ``R_B diag(gates) R_A^T`` of the factors each
    divided by its largest magnitude, ``Q_A``, and the square root of the product of those
    magnitudes (the update's singular values are the core's times its square, which may overflow
    where the square root does not)."""
    A = as_real_array(A, "A", dtype=np.float64)
    B = as_real_array(B, "B", dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[1]:
        raise ValueError(
            f"A must be r x in and B out x r with the same r; got A {A.shape} and B {B.shape}"
        )
    c = np.ones(A.shape[0]) if gates is None else as_real_array(gates, "gates", dtype=np.float64)
    if c.shape != (A.shape[0],):
        raise ValueError(f"gates must have shape ({A.shape[0]},) to match A {A.shape}; got {c.shape}")
    if not (np.isfinite(A).all() and np.isfinite(B).all() and np.isfinite(c).all()):
        raise ValueError("A, B and gates must be finite; got NaN or inf")
    peaks = [float(np.abs(m).max(initial=0.0)) for m in (A, B, c)]
    if min(peaks) == 0.0:  # a zero factor: the update is zero
        q_b, q_a = np.linalg.qr(B)[0], np.linalg.qr(A.T)[0]
        return q_b, np.zeros((q_b.shape[1], q_a.shape[1])), q_a, 0.0
    q_b, r_b = np.linalg.qr(B / peaks[1])
    q_a, r_a = np.linalg.qr(A.T / peaks[0])
    root_scale = float(np.prod(np.sqrt(peaks)))
    return q_b, (r_b * (c / peaks[2])) @ r_a.T, q_a, root_scale
