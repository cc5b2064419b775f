"""l1ra_core: the framework-agnostic maths of L1RA, rank allocation for LoRA adapters.

L1RA (Singh, Brunello, Scotti, Carman; ICNLSP 2025) gives every LoRA adapter a gate vector
``c`` (``dW = B diag(c) A``), shrinks the gates with an L1 proximal step after each optimizer
step, and every few steps prunes the components whose gate reached zero and hands the freed
rank to the adapters that need it, so the total rank stays at a budget.

This package holds that maths as plain NumPy functions; it never imports a deep-learning
framework. Inputs may be anything ``numpy.asarray`` accepts, CPU tensors included.

- :func:`allocate` -> :class:`AllocationPlan`: the prune-and-reassign step.
- :func:`soft_threshold`, :func:`prox_l1`, :func:`prox_elastic_net`: the proximal steps.
- :class:`ReallocationSchedule`, :func:`lambda_schedule`: when to reallocate, how hard to shrink.
- :func:`adapter_singular_values`, :func:`energy_kept`, :func:`truncate_adapter`,
  :func:`spectral_budget`: spectra of ``B diag(c) A`` without forming it.
- :func:`rank_report` -> :class:`RankReport`: where the rank went, by layer and module type.
"""

from l1ra_core.allocation import AdapterPlan, AllocationPlan, allocate
from l1ra_core.proximal import prox_elastic_net, prox_l1, soft_threshold
from l1ra_core.report import RankEntry, RankReport, rank_report
from l1ra_core.schedules import ReallocationSchedule, lambda_schedule
from l1ra_core.spectra import adapter_singular_values, energy_kept, spectral_budget, truncate_adapter

__all__ = [
    "AdapterPlan",
    "AllocationPlan",
    "RankEntry",
    "RankReport",
    "ReallocationSchedule",
    "adapter_singular_values",
    "allocate",
    "energy_kept",
    "lambda_schedule",
    "prox_elastic_net",
    "prox_l1",
    "rank_report",
    "soft_threshold",
    "spectral_budget",
    "truncate_adapter",
]
