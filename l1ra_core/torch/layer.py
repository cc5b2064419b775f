"""The L1RA adapter layer: y = W x + (alpha / initial_rank) * B diag(c) A x around a frozen linear layer.

The layer never forms B A during training (two thin matmuls instead), keeps its factors on the device and
in the dtype of the wrapped layer and its gate in float32 (so small L1 steps are not rounded away in
bf16/fp16), and can change its rank in place (:meth:`L1RALayer.resize`) while leaving its output unchanged,
which is what the L1RA controller needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from l1ra_core.adapter_files import RANK_DIMS
from l1ra_core.allocation import AdapterPlan
from l1ra_core.config import MAX_ALPHA
from sfbow_common.checks import check_real

__all__ = ["L1RALayer", "base_weight", "is_supported_base", "linear_shape", "kaiming_rows"]


def is_supported_base(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and for GPT-2 style ``Conv1D`` (a linear layer that stores W transposed)."""
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _is_conv1d(module: nn.Module) -> bool:
    # transformers.pytorch_utils.Conv1D, detected by duck typing so transformers stays optional.
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and getattr(module, "nf", None) == weight.shape[1]
    )


def base_weight(module: nn.Module) -> torch.Tensor:
    """The ``weight`` tensor of a base layer (``nn.Linear`` or ``Conv1D``)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor; L1RA adapters wrap linear layers")
    return weight


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a supported base layer."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if _is_conv1d(module):
        weight = base_weight(module)
        return int(weight.shape[0]), int(weight.shape[1])
    raise TypeError(
        f"L1RA adapters wrap nn.Linear or transformers Conv1D layers, not {type(module).__name__}"
    )


def kaiming_rows(
    n: int, in_features: int, *, device: torch.device, dtype: torch.dtype, generator: torch.Generator | None
) -> torch.Tensor:
    """``n`` fresh rows of A with LoRA's initialisation (Kaiming uniform, a = sqrt(5), fan_in = in_features).

    Drawn on the CPU in float32 so that a CPU ``generator`` gives the same values on every device.
    """
    rows = torch.empty(n, in_features, dtype=torch.float32)
    if n:
        nn.init.kaiming_uniform_(rows, a=math.sqrt(5), generator=generator)
    return rows.to(device=device, dtype=dtype)


class L1RALayer(nn.Module):
    """A frozen linear layer plus a gated low-rank update.

    Args:
        base_layer: the ``nn.Linear`` or ``Conv1D`` to adapt. Its parameters are frozen.
        rank: current number of components (rows of A, columns of B, entries of the gate).
        initial_rank: the rank every adapter of the run started with; the scale ``alpha / initial_rank``
            never changes with the rank.
        alpha: LoRA alpha.
        dropout: dropout probability on the adapter input.
        generator: CPU generator for A's initialisation (``None``: torch's global RNG).

    Parameters ``lora_A`` (rank x in), ``lora_B`` (out x rank) and ``gate`` (rank) are trainable; B starts
    at zero and the gate at one, so a fresh adapter leaves the model's output unchanged.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        rank: int,
        initial_rank: int,
        alpha: float,
        dropout: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = linear_shape(base_layer)
        self.fan_in_fan_out = _is_conv1d(base_layer)
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.initial_rank = initial_rank
        self.alpha = check_real(alpha, "alpha", minimum=0.0, maximum=MAX_ALPHA, exclusive_minimum=True)
        self.scaling = alpha / initial_rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        weight = base_weight(base_layer)
        self.lora_A = nn.Parameter(
            kaiming_rows(rank, self.in_features, generator=generator, device=weight.device, dtype=weight.dtype)
        )
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=weight.device, dtype=weight.dtype))
        # The gate stays float32 whatever the base dtype: in bf16/fp16 the proximal step 1 - t rounds back
        # to 1 for small t (bf16 has 8 bits of mantissa), so nothing would ever be pruned.
        self.gate = nn.Parameter(torch.ones(rank, device=weight.device, dtype=torch.float32))
        self.merged = False

    @property
    def rank(self) -> int:
        """Current number of components."""
        return self.gate.shape[0]

    @property
    def max_rank(self) -> int:
        """The largest useful rank, min(in_features, out_features)."""
        return min(self.in_features, self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"initial_rank={self.initial_rank}, alpha={self.alpha}, merged={self.merged}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if self.merged:
            return y
        h = F.linear(self.dropout(x), self.lora_A)
        return y + F.linear(h * self._scaled_gate(h.dtype), self.lora_B)

    def _scaled_gate(self, dtype: torch.dtype) -> torch.Tensor:
        """``gate * scaling`` computed in float32, then cast to ``dtype`` (the factors' / input's dtype)."""
        return (self.gate * self.scaling).to(dtype)

    def delta_weight(self) -> torch.Tensor:
        """The update (alpha / initial_rank) * B diag(c) A, in the base weight's layout (transposed for Conv1D)."""
        delta = (self.lora_B * self._scaled_gate(self.lora_B.dtype)) @ self.lora_A
        return delta.T if self.fan_in_fan_out else delta

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the base weight, so inference costs one matmul. Undo with :meth:`unmerge`."""
        if self.merged:
            raise RuntimeError("adapter is already merged; call unmerge() first")
        weight = base_weight(self.base_layer)
        weight.add_(self.delta_weight().to(weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from the base weight again (exact up to floating-point rounding)."""
        if not self.merged:
            raise RuntimeError("adapter is not merged; nothing to unmerge")
        weight = base_weight(self.base_layer)
        weight.sub_(self.delta_weight().to(weight.dtype))
        self.merged = False

    @torch.no_grad()
    def resize(
        self, plan: AdapterPlan, *, generator: torch.Generator | None = None
    ) -> list[tuple[nn.Parameter, nn.Parameter, int]]:
        """Apply ``plan`` (an ``l1ra_core`` :class:`AdapterPlan`): keep its components, append its new ones.

        Surviving components keep their values; new ones get gate 1, a fresh Kaiming row of A and a zero
        column of B, so the output only changes by the pruned components' contribution (zero when their
        gates are zero). The parameters are replaced by new ``nn.Parameter`` objects.

        Returns:
            ``(old_parameter, new_parameter, rank_dim)`` for A, B and the gate, for optimizer bookkeeping.
        """
        if self.merged:
            raise RuntimeError("cannot resize a merged adapter; call unmerge() first")
        if plan.old_rank != self.rank:
            raise ValueError(f"the plan for {plan.name!r} expects rank {plan.old_rank}, this adapter has {self.rank}")
        fills = {"lora_A": 0.0, "lora_B": 0.0, "gate": 1.0}
        resized = {name: plan.resize(getattr(self, name).detach(), fill=fills[name], axis=dim)
                   for name, dim in RANK_DIMS.items()}
        resized["lora_A"][len(plan.keep) :] = kaiming_rows(
            plan.n_new, self.in_features, generator=generator, device=self.lora_A.device, dtype=self.lora_A.dtype
        )
        swaps = []
        for name, dim in RANK_DIMS.items():
            old = getattr(self, name)
            new = nn.Parameter(resized[name], requires_grad=old.requires_grad)
            setattr(self, name, new)
            swaps.append((old, new, dim))
        return swaps
