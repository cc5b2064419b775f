"""l1ra_core: the framework-agnostic maths of L1RA, rank allocation for LoRA adapters.

L1RA (Singh, Brunello, Scotti, Carman; ICNLSP 2025) gives every LoRA adapter a gate vector
``c`` (``dW = B diag(c) A``), shrinks the gates with an L1 proximal step after each optimizer
step, and every few steps prunes the components whose gate reached zero and hands the freed
rank to the adapters that need it, so the total rank stays at a budget.

This package holds that maths as plain NumPy functions; it never imports a deep-learning
framework. Inputs may be anything ``numpy.asarray`` accepts, CPU tensors included.

- :func:`allocate` -> :class:`AllocationPlan`: the prune-and-reassign step.
"""

from l1ra_core.allocation import AdapterPlan, AllocationPlan, allocate

__all__ = ["AdapterPlan", "AllocationPlan", "allocate"]
