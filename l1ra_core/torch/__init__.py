"""PyTorch backend of L1RA: gated LoRA adapters whose ranks are reallocated under a fixed budget.

Typical use::

    from l1ra_core import L1RAConfig
    from l1ra_core.torch import L1RAController, adapter_parameter_groups, inject_adapters

    config = L1RAConfig(target_modules=["query", "value"], initial_rank=8, alpha=16, update_fraction=0.1)
    inject_adapters(model, config)
    optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=1e-3, gate_lr=2e-2))
    controller = L1RAController(model, config, optimizer, total_steps=1000)
    for batch in loader:            # any loop: the controller runs after every optimizer.step()
        loss = compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

See ``docs/l1ra_torch.md`` for saving, resuming, merging, PEFT export and the HF Trainer callback.
"""

from sfbow_common.extras import install_extra

try:
    import safetensors  # noqa: F401
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"l1ra_core.torch needs PyTorch and safetensors: {install_extra('torch')}") from exc

from l1ra_core.plot import plot_rank_heatmap  # kept here too for older callers

from .checkpoint import (
    latest_checkpoint,
    load_adapters,
    load_training_state,
    save_adapters,
    save_checkpoint,
    save_training_state,
)
from .controller import L1RAController
from .ddp import DistributedL1RAController
from .layer import L1RALayer
from .model import (
    adapter_layers,
    adapter_parameter_groups,
    find_target_modules,
    inject_adapters,
    merge_adapters,
    rank_pattern,
    unload_adapters,
    unmerge_adapters,
)
from .peft_export import export_peft

__all__ = [
    "DistributedL1RAController",
    "L1RAController",
    "L1RALayer",
    "adapter_layers",
    "adapter_parameter_groups",
    "export_peft",
    "find_target_modules",
    "inject_adapters",
    "latest_checkpoint",
    "load_adapters",
    "load_training_state",
    "merge_adapters",
    "plot_rank_heatmap",
    "rank_pattern",
    "save_adapters",
    "save_checkpoint",
    "save_training_state",
    "unload_adapters",
    "unmerge_adapters",
]
