"""The model side of the grid: the base model, the adapted projections, and the checks that a grid's ranks
and budgets fit the model before anything is trained."""

from __future__ import annotations

import re
from typing import Any

from .config import TARGETS, StudyConfig


def target_regex(config: StudyConfig) -> str:
    """Full-match regex of the adapted projections (PEFT and L1RA both full-match a string)."""
    layers = r"\d+" if config.layers is None else "(?:" + "|".join(map(str, range(config.layers))) + ")"
    return rf"(?:.*\.)?layers\.{layers}\.(?:self_attn|mlp)\.(?:{'|'.join(TARGETS)})"


def load_base() -> Any:
    from sfbow_llm.models import load_causal_lm

    return load_causal_lm(engine="reference")  # trained with LoRA and scored in fp32


def projections(model: Any, config: StudyConfig) -> dict[str, Any]:
    """The targeted ``nn.Linear`` modules by qualified name (of the plain model)."""
    pattern = re.compile(target_regex(config))
    found = {name: module for name, module in model.named_modules()
             if pattern.fullmatch(name) and hasattr(module, "weight") and module.weight.ndim == 2}
    if not found:
        raise ValueError(f"no module of the model matches {target_regex(config)!r}")
    return found


def check_grid(config: StudyConfig, model: Any) -> None:
    """Refuse ranks and budgets the model cannot take, before anything is trained."""
    layers = projections(model, config)
    smallest_name, smallest = min(layers.items(), key=lambda item: min(item[1].weight.shape))
    limit = min(smallest.weight.shape)
    for name in ("ranks", "l1ra_ranks", "truncation_ranks"):
        for rank in getattr(config, name):
            if rank > limit:
                raise ValueError(f"{name}: rank {rank} exceeds min(out, in) = {limit} of {smallest_name}; "
                                 f"choose ranks <= {limit}")
    if config.tune_rank > limit:
        raise ValueError(f"tune_rank {config.tune_rank} exceeds min(out, in) = {limit} of {smallest_name}")
    for budget in l1ra_budgets(config, len(layers)):
        if budget < len(layers):
            raise ValueError(f"l1ra_budgets: budget {budget} is below the number of adapters ({len(layers)}); "
                             "every adapter keeps at least rank 1, so give a budget >= that")


def l1ra_budgets(config: StudyConfig, n_adapters: int) -> list[int]:
    return list(config.l1ra_budgets) or [rank * n_adapters for rank in config.l1ra_ranks]

