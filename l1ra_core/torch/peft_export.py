"""Export L1RA adapters as a standard PEFT LoRA adapter, loadable with ``peft.PeftModel.from_pretrained``.

The gates are folded into A (A' = diag(c) A), each module gets its own rank through ``rank_pattern``, and
``alpha_pattern`` sets alpha_i = alpha * r_i / r0 so that PEFT's per-module scale alpha_i / r_i equals the
L1RA scale alpha / r0. PEFT itself is not needed to export.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from shared_utils.atomic import atomic_write_text, atomic_write_via
from .config import L1RAConfig
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
        config: the run's configuration (alpha, r0, dropout).
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
    # PEFT (0.21) looks a module up in rank_pattern / alpha_pattern with
    # re.match(rf"(.*\.)?({key})$", name), a suffix match: key "a\.x" would also give module "z.a.x" the
    # rank of "a.x". A leading "^" anchors the key at the start of the name, so each key matches exactly
    # its own module. target_modules as a list is a suffix match too (PEFT would wrap modules L1RA never
    # adapted); as a string it is a regex that must match the whole name: one alternation of the names.
    names = sorted(adapters)
    peft_config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": "|".join(re.escape(name) for name in names),
        "rank_pattern": {_anchored(name): adapters[name].rank for name in names},
        "alpha_pattern": {_anchored(name): config.alpha * adapters[name].rank / config.r for name in names},
        "fan_in_fan_out": conv1d.pop(),
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_via(directory / "adapter_model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_text(directory / "adapter_config.json", json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
    return directory


def _anchored(name: str) -> str:
    """A PEFT pattern key that matches the module ``name`` and no other (see the comment in export_peft)."""
    return "^" + re.escape(name)
