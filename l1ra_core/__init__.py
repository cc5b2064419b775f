"""l1ra_core: the framework-agnostic maths of L1RA, rank allocation for LoRA adapters.

L1RA (Singh, Brunello, Scotti, Carman; ICNLSP 2025) gives every LoRA adapter a gate vector
``c`` (``dW = B diag(c) A``), shrinks the gates with an L1 proximal step after each optimizer
step, and every few steps prunes the components whose gate reached zero and hands the freed
rank to the adapters that need it, so the total rank stays at a budget.

This package holds that maths as plain NumPy functions and the run's configuration; it never
imports a deep-learning framework. Inputs may be anything ``numpy.asarray`` accepts: lists,
NumPy arrays, CPU tensors of PyTorch, JAX arrays.

- :class:`L1RAConfig`: every hyper-parameter of a run, validated, JSON round trip.
- :func:`allocate` -> :class:`AllocationPlan`: the prune-and-reassign step.
- :func:`soft_threshold`, :func:`prox_l1`, :func:`prox_elastic_net`: the proximal steps.
- :class:`ReallocationSchedule`: when to reallocate.
- :func:`adapter_singular_values`, :func:`energy_kept`, :func:`truncate_adapter`,
  :func:`spectral_budget`: spectra of ``B diag(c) A`` without forming it.
- :func:`rank_report` -> :class:`RankReport`: where the rank went, by layer and module type.
- :mod:`l1ra_core.adapter_files`, :mod:`l1ra_core.peft_config`: the adapter directory's schema
  and the PEFT LoRA config of an export, for any backend.
"""

from l1ra_core.allocation import AdapterPlan, AllocationPlan, allocate
from l1ra_core.config import L1RAConfig
from l1ra_core.plot import plot_rank_heatmap
from l1ra_core.proximal import prox_elastic_net, prox_l1, soft_threshold
from l1ra_core.report import RankEntry, RankReport, rank_report
from l1ra_core.schedules import ReallocationSchedule
from l1ra_core.spectra import adapter_singular_values, energy_kept, spectral_budget, truncate_adapter

__all__ = [
    "plot_rank_heatmap",
    "AdapterPlan",
    "AllocationPlan",
    "L1RAConfig",
    "RankEntry",
    "RankReport",
    "ReallocationSchedule",
    "adapter_singular_values",
    "allocate",
    "energy_kept",
    "prox_elastic_net",
    "prox_l1",
    "rank_report",
    "soft_threshold",
    "spectral_budget",
    "truncate_adapter",
]
