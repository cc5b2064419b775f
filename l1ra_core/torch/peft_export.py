"""Export L1RA adapters as a standard PEFT LoRA adapter, loadable with ``peft.PeftModel.from_pretrained``.

The gates are folded into A (A' = diag(c) A); the config, with each module's rank and alpha, is
``l1ra_core.peft_config.peft_lora_config``. PEFT itself is not needed to export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from l1ra_core.config import L1RAConfig
from l1ra_core.peft_config import peft_lora_config
from sfbow_common.atomic import atomic_write_text, atomic_write_via

from .model import adapter_layers

__all__ = ["export_peft"]


def export_peft(
    model: nn.Module,
    config: L1RAConfig,
    directory: str | os.PathLike[str],
    *,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` for PEFT's LoRA to ``directory``.

    Every adapter is exported (ranks never drop below ``config.min_rank`` >= 1). ``model`` keeps its
    adapters; the export reads the unmerged factors, so it is correct whether or not the adapters are merged.

    Args:
        model: the model carrying L1RA adapters (not wrapped in a PEFT model).
        config: the run's configuration (alpha, initial_rank, dropout).
        directory: output directory, created if needed.
        base_model_name_or_path: recorded in the PEFT config, e.g. the Hub id of the base model.
        task_type: PEFT task type (e.g. ``"FEATURE_EXTRACTION"``); ``None`` loads with a plain ``PeftModel``.

    Returns:
        The directory.
    """
    adapters = adapter_layers(model)
    if not adapters:
        raise ValueError(
            f"{type(model).__name__} has no L1RA adapters to export; inject_adapters or load_adapters first"
        )
    conv1d = {layer.fan_in_fan_out for layer in adapters.values()}
    if len(conv1d) > 1:
        raise ValueError(
            "PEFT's LoRA config has one fan_in_fan_out flag for all modules, but these adapters wrap both "
            "nn.Linear and Conv1D layers; export them as two adapters with different target modules"
        )
    tensors = {}
    with torch.no_grad():
        for name, layer in adapters.items():
            prefix = f"base_model.model.{name}"
            folded = layer.gate[:, None] * layer.lora_A.float()  # the gate is float32
            tensors[f"{prefix}.lora_A.weight"] = folded.to(layer.lora_A.dtype).cpu().contiguous()
            tensors[f"{prefix}.lora_B.weight"] = layer.lora_B.detach().cpu().contiguous()
    peft_config = peft_lora_config(
        config,
        {name: layer.rank for name, layer in adapters.items()},
        fan_in_fan_out=conv1d.pop(),
        base_model_name_or_path=base_model_name_or_path,
        task_type=task_type,
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_via(directory / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_text(directory / "adapter_config.json", json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
    return directory

