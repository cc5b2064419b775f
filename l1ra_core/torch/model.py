"""Put L1RA adapters into any ``nn.Module``, find them again, and merge / unmerge / remove them.

Injection replaces each target layer in place by an :class:`L1RALayer` that wraps it, so the model keeps
its class, its forward signature and its module names (the adapter sits at the name the layer had).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from l1ra_core.config import L1RAConfig, compile_target_pattern

from .layer import L1RALayer, is_supported_base

__all__ = [
    "adapter_layers",
    "adapter_parameter_groups",
    "find_target_modules",
    "inject_adapters",
    "merge_adapters",
    "rank_pattern",
    "unload_adapters",
    "unmerge_adapters",
]

_MAX_NAMES_IN_MESSAGE = 12


def find_target_modules(model: nn.Module, target_modules: str | tuple[str, ...] | list[str]) -> list[str]:
    """Qualified names of the modules of ``model`` selected by ``target_modules``, in model order.

    A sequence selects names equal to an entry or ending in ``"." + entry``; a string is a regular
    expression matched against the whole name. Every selected module must be ``nn.Linear`` or ``Conv1D``.

    Raises:
        ValueError: nothing matches (the message lists names that could be targeted).
        TypeError: a selected module is of a type that cannot take an adapter.
    """
    if isinstance(target_modules, str):
        pattern = compile_target_pattern(target_modules)
        selected = lambda name: pattern.fullmatch(name) is not None  # noqa: E731
    else:
        suffixes = tuple(target_modules)
        selected = lambda name: any(name == s or name.endswith("." + s) for s in suffixes)  # noqa: E731
    names: list[str] = []
    unsupported: list[str] = []
    for name, module in _named_modules_outside_adapters(model):
        if name and selected(name):
            (names if is_supported_base(module) else unsupported).append(name)
    _refuse_shared_modules(model, names)
    if unsupported:
        raise TypeError(
            f"target_modules={target_modules!r} selects modules that are not nn.Linear/Conv1D: "
            f"{_preview(unsupported)}. Name the linear layers themselves, e.g. "
            f"{_preview(_linear_names(model))}"
        )
    if not names:
        raise ValueError(
            f"target_modules={target_modules!r} matches no module of {type(model).__name__}. "
            f"Linear layers you can target: {_preview(_linear_names(model))}"
        )
    return names


def inject_adapters(model: nn.Module, config: L1RAConfig) -> dict[str, L1RALayer]:
    """Freeze ``model`` and wrap every target layer in an :class:`L1RALayer` of rank ``config.initial_rank``.

    Only the adapters' parameters are trainable afterwards. Returns the adapters by qualified name.
    """
    _refuse_existing_adapters(model)
    names = find_target_modules(model, config.target_modules)
    return inject_at_ranks(model, config, {name: config.initial_rank for name in names})


def inject_at_ranks(model: nn.Module, config: L1RAConfig, ranks: Mapping[str, int]) -> dict[str, L1RALayer]:
    """Wrap exactly the modules named in ``ranks``, each at its own rank (used to load saved adapters).

    The scale of every adapter is ``config.alpha / config.initial_rank`` whatever its rank. Everything is
    checked and every adapter built before the model changes.
    """
    _refuse_existing_adapters(model)
    modules = _linear_modules(model, list(ranks))
    generator = None if config.init_seed is None else torch.Generator().manual_seed(config.init_seed)
    adapters = {
        name: L1RALayer(modules[name], rank, config.initial_rank, config.alpha, config.dropout, generator=generator)
        for name, rank in ranks.items()
    }
    for param in model.parameters():
        param.requires_grad_(False)
    for name, adapter in adapters.items():
        _set_submodule(model, name, adapter)
    return adapters


def adapter_layers(model: nn.Module) -> dict[str, L1RALayer]:
    """The model's L1RA adapters by qualified name, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, L1RALayer)}


def adapter_parameter_groups(
    model: nn.Module, *, lr: float, gate_lr: float, weight_decay: float = 0.0
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for the adapters: the factors A and B at ``lr`` and ``weight_decay``,
    the gates at ``gate_lr`` with no weight decay (the L1 step is their only shrinkage).

    Gates start at 1 and must be able to reach 0 within a fraction of training, so they usually want a
    much larger learning rate than the factors (e.g. 1e-2 to 1e-1 for a few hundred steps); the
    controller's proximal step uses the gates' group lr unless ``config.gate_lr`` is set.
    """
    adapters = _require_adapters(model).values()
    return [
        {"params": [p for layer in adapters for p in (layer.lora_A, layer.lora_B)], "lr": lr,
         "weight_decay": weight_decay},
        {"params": [layer.gate for layer in adapters], "lr": gate_lr, "weight_decay": 0.0},
    ]


def rank_pattern(model: nn.Module) -> dict[str, int]:
    """Current rank of every adapter, by qualified name."""
    return {name: layer.rank for name, layer in adapter_layers(model).items()}


def merge_adapters(model: nn.Module) -> None:
    """Fold every adapter into its base weight (inference then costs nothing extra). Refused, with nothing
    merged, when some adapter is merged already."""
    adapters = _require_adapters(model)
    merged = [name for name, layer in adapters.items() if layer.merged]
    if merged:
        raise RuntimeError(f"adapters {_preview(merged)} are already merged; call unmerge_adapters(model) first")
    for layer in adapters.values():
        layer.merge()


def unmerge_adapters(model: nn.Module) -> None:
    """Undo :func:`merge_adapters`, restoring the base weights up to floating-point rounding. Refused, with
    nothing changed, when some adapter is not merged."""
    adapters = _require_adapters(model)
    unmerged = [name for name, layer in adapters.items() if not layer.merged]
    if unmerged:
        raise RuntimeError(f"adapters {_preview(unmerged)} are not merged; nothing to unmerge")
    for layer in adapters.values():
        layer.unmerge()


def unload_adapters(model: nn.Module, *, merge: bool = True) -> nn.Module:
    """Replace every adapter by its base layer, merged into it when ``merge`` (the default), and return
    ``model``. With ``merge=False`` the adapters are simply dropped and the base model comes back."""
    for name, layer in _require_adapters(model).items():
        if merge and not layer.merged:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        _set_submodule(model, name, layer.base_layer)
    return model


def _refuse_existing_adapters(model: nn.Module) -> None:
    if adapter_layers(model):
        raise ValueError(
            "model already has L1RA adapters; inject into a fresh base model, or remove them first with "
            "unload_adapters(model)"
        )


def _linear_modules(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """The modules ``names`` of ``model``, checked: each exists, can take an adapter and is not shared."""
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise ValueError(
            f"modules {_preview(missing)} do not exist in {type(model).__name__}; is this the right base model? "
            f"Linear layers it has: {_preview(_linear_names(model))}"
        )
    unsupported = [name for name in names if not is_supported_base(modules[name])]
    if unsupported:
        raise TypeError(f"modules {_preview(unsupported)} are not nn.Linear/Conv1D and cannot take an adapter")
    _refuse_shared_modules(model, names)
    return {name: modules[name] for name in names}


def _refuse_shared_modules(model: nn.Module, names: list[str]) -> None:
    """Refuse a target module reachable at two names (a shared or tied layer): an adapter would replace it
    at one name only, and the other name would silently keep the plain layer."""
    paths: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if name:
            paths.setdefault(id(module), []).append(name)
    targets = dict(model.named_modules())
    shared = [paths[id(targets[name])] for name in names if len(paths.get(id(targets[name]), [])) > 1]
    if shared:
        raise ValueError(
            f"the layer at {shared[0][0]!r} is also reachable as {shared[0][1:]} (a shared or tied module): an "
            "adapter would replace it at one name only. Untie the layers (give each name its own copy) or "
            "target modules that are not shared"
        )


def _require_adapters(model: nn.Module) -> dict[str, L1RALayer]:
    adapters = adapter_layers(model)
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no L1RA adapters; call inject_adapters(model, config) first")
    return adapters


def _named_modules_outside_adapters(model: nn.Module):
    """named_modules(), skipping what lives inside an adapter (its base layer must not be wrapped twice)."""
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if isinstance(module, L1RALayer):
            inside.append(name)
            continue
        yield name, module


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in _named_modules_outside_adapters(model) if name and is_supported_base(m)]


def _preview(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_IN_MESSAGE])
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]" if names else "[none]"


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
