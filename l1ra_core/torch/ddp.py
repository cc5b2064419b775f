"""L1RA under ``torch.distributed``: a controller whose reallocations are checked and agreed across ranks.

Under DistributedDataParallel every rank holds a replica of the adapters. Gradients are averaged before
the optimizer step, so the replicas' gates stay equal, every rank computes the same allocation plan and
resizes the same components at the same step; the controller's generator (seeded by ``config.seed``)
draws the same new components on every rank. :class:`DistributedL1RAController` checks rather than
assumes this, and keeps one rank's failure from leaving the others waiting in a collective:

1. before allocating, the ranks gather each other's gates and ranks (one small ``all_gather``); if any
   replica differs, every rank raises :class:`ReplicaMismatchError`;
2. each rank allocates and resizes locally (no collective), catching any error;
3. the ranks vote (one ``all_reduce``): if any rank failed, that rank raises its own error and every other
   rank raises :class:`PeerReallocationError` at once, instead of waiting for the process group's timeout;
4. only then does ``on_resize`` run on every rank (rebuild the DDP wrapper there: its buckets hold the
   replaced parameters).

Errors outside a reallocation (in ``on_resize``, in the forward pass) are the launcher's: ``torchrun`` and
``torch.multiprocessing.spawn`` end every rank when one exits; see ``docs/scaling.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from l1ra_core import AllocationPlan, L1RAConfig

from .controller import L1RAController

__all__ = ["DistributedL1RAController", "PeerReallocationError", "ReplicaMismatchError"]


class ReplicaMismatchError(RuntimeError):
    """The ranks' adapter replicas differ before a reallocation (so their plans would differ)."""


class PeerReallocationError(RuntimeError):
    """Another rank failed during a reallocation; this rank stops too."""


class DistributedL1RAController(L1RAController):
    """:class:`L1RAController` for one rank of a ``torch.distributed`` job (every rank builds one).

    Takes the arguments of :class:`L1RAController`, plus ``process_group`` (default: the default group,
    which must be initialised). ``on_resize`` runs on every rank after every reallocation that changed
    ranks, once all ranks have resized successfully.
    """

    def __init__(self, model: nn.Module, config: L1RAConfig, optimizer: torch.optim.Optimizer | None = None, *,
                 on_resize: Callable[[AllocationPlan], None] | None = None, process_group: Any = None,
                 **options: Any) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("DistributedL1RAController needs an initialised process group: call "
                               "torch.distributed.init_process_group first (torchrun sets up its environment)")
        self.process_group = process_group
        self._after_resize = on_resize
        super().__init__(model, config, optimizer, on_resize=None, **options)

    @property
    def rank(self) -> int:
        """This process's rank in :attr:`process_group`."""
        return dist.get_rank(self.process_group)

    @property
    def world_size(self) -> int:
        return dist.get_world_size(self.process_group)

    def reallocate(self) -> AllocationPlan:
        """Check the replicas agree, reallocate, agree that every rank succeeded, then run ``on_resize``."""
        self.check_replicas_agree()
        failure: BaseException | None = None
        try:
            plan = super().reallocate()
        except Exception as exc:  # reported to the other ranks below, then re-raised
            failure = exc
        failed = self._ranks_that_failed(failure is not None)
        if failure is not None:
            raise failure
        if failed:
            raise PeerReallocationError(
                f"rank(s) {failed} failed during the reallocation at step {self.step_count}, so rank "
                f"{self.rank} stops too; the cause is in the traceback of rank {failed[0]}"
            )
        if self._after_resize is not None and plan.changed:
            self._after_resize(plan)
        return plan

    @torch.no_grad()
    def check_replicas_agree(self) -> None:
        """Raise :class:`ReplicaMismatchError` on every rank unless all ranks hold the same adapter ranks
        and bitwise-equal gates (the inputs of the allocation)."""
        gates = [layer.gate.detach() for layer in self.adapters.values()]
        device = self._collective_device()
        ranks = torch.tensor([len(self.adapters)] + [g.numel() for g in gates], dtype=torch.int64, device=device)
        if len(set(self._gather(ranks[:1]).tolist())) > 1:
            raise ReplicaMismatchError("the ranks hold different numbers of adapters; every rank must inject "
                                       "the same adapters into the same model")
        every_ranks = self._gather(ranks).reshape(self.world_size, -1)
        if not (every_ranks == every_ranks[0]).all():
            differs = [r for r in range(self.world_size) if not torch.equal(every_ranks[r], every_ranks[0])]
            raise ReplicaMismatchError(f"adapter ranks of rank(s) {differs} differ from rank 0's at step "
                                       f"{self.step_count}: the replicas have diverged")
        flat = torch.cat([g.reshape(-1) for g in gates]).to(device=device, dtype=torch.float32)
        every_gates = self._gather(flat).reshape(self.world_size, -1)
        if not (every_gates == every_gates[0]).all():
            gap = (every_gates - every_gates[0]).abs().max(dim=1).values
            differs = [r for r in range(self.world_size) if gap[r] > 0]
            raise ReplicaMismatchError(
                f"the gates of rank(s) {differs} differ from rank 0's at step {self.step_count} (largest gap "
                f"{gap.max().item():.3g}), so the ranks would allocate differently. Every rank must apply the "
                "same averaged gradients: train through the DistributedDataParallel wrapper, with the same "
                "optimizer and learning rates on every rank"
            )

    def _collective_device(self) -> torch.device:
        """Where the agreement tensors live: NCCL takes only CUDA tensors (the adapters' device), gloo CPU."""
        if dist.get_backend(self.process_group) == "nccl":
            return next(iter(self.adapters.values())).gate.device
        return torch.device("cpu")

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous(), group=self.process_group)
        return torch.cat(parts).cpu()

    def _ranks_that_failed(self, failed: bool) -> list[int]:
        flags = torch.zeros(self.world_size, dtype=torch.int64, device=self._collective_device())
        flags[self.rank] = int(failed)
        dist.all_reduce(flags, group=self.process_group)
        return [r for r in range(self.world_size) if flags[r] and r != self.rank]
