"""The PEFT LoRA ``adapter_config.json`` of an L1RA run: per-module ranks and alphas, exact names.

L1RA keeps the scale ``alpha / initial_rank`` fixed while ranks change, so each module gets its own
rank through ``rank_pattern`` and ``alpha_i = alpha * r_i / initial_rank`` through ``alpha_pattern``:
PEFT's per-module scale ``alpha_i / r_i`` then equals L1RA's. Pure data, no framework: every
backend's export writes this dict next to its tensors (gates folded into A).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from l1ra_core.config import L1RAConfig

__all__ = ["peft_lora_config"]


def peft_lora_config(
    config: L1RAConfig,
    ranks: Mapping[str, int],
    *,
    fan_in_fan_out: bool = False,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> dict[str, Any]:
    """PEFT's LoRA config for adapters at ``ranks`` (module name -> rank) trained with ``config``.

    PEFT (0.21) looks a module up in ``rank_pattern`` / ``alpha_pattern`` with
    ``re.match(rf"(.*\\.)?({key})$", name)``, a suffix match: key ``a\\.x`` would also give module
    ``z.a.x`` the rank of ``a.x``. A leading ``^`` anchors each key at the start of the name, so it
    matches exactly its own module. A list of ``target_modules`` is a suffix match too (PEFT would
    wrap modules L1RA never adapted); a string is a regex that must match the whole name, so the
    names are written as one alternation.
    """
    if not ranks:
        raise ValueError("ranks is empty: there are no adapters to export")
    names = sorted(ranks)
    return {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "r": config.initial_rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": "|".join(re.escape(name) for name in names),
        "rank_pattern": {_anchored(name): ranks[name] for name in names},
        "alpha_pattern": {_anchored(name): config.alpha * ranks[name] / config.initial_rank for name in names},
        "fan_in_fan_out": fan_in_fan_out,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }


def _anchored(name: str) -> str:
    """A PEFT pattern key that matches the module ``name`` and no other."""
    return "^" + re.escape(name)
