"""Save and load L1RA adapters (safetensors + JSON) and the training state needed to resume exactly.

Adapter directory layout:
    ``l1ra_config.json``       config, rank pattern and the (in, out) shape of every adapted layer
    ``l1ra_adapters.safetensors``  ``<module>.lora_A``, ``<module>.lora_B``, ``<module>.gate``
Training state: ``l1ra_training_state.pt`` (optimizer + controller state), read back with
``torch.load(weights_only=True)``. Nothing here ever executes code from a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from shared_utils.atomic import atomic_write_text, atomic_write_via
from .config import L1RAConfig
from .controller import L1RAController
from .layer import RANK_DIMS, linear_shape
from .model import adapter_layers, inject_at_ranks

__all__ = ["load_adapters", "load_training_state", "save_adapters", "save_training_state"]

CONFIG_FILE = "l1ra_config.json"
WEIGHTS_FILE = "l1ra_adapters.safetensors"
TRAINING_STATE_FILE = "l1ra_training_state.pt"
FORMAT_VERSION = 1


def save_adapters(model: nn.Module, config: L1RAConfig, directory: str | os.PathLike[str]) -> Path:
    """Write the model's adapters, their ranks and ``config`` to ``directory`` (created if needed).

    Merged adapters are saved as their factors (merging does not change them). Returns the directory.
    """
    adapters = adapter_layers(model)
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no L1RA adapters to save; call inject_adapters first")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{name}.{pname}": getattr(layer, pname).detach().cpu().contiguous()
        for name, layer in adapters.items()
        for pname in RANK_DIMS
    }
    meta = {
        "format": "l1ra",
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "rank_pattern": {name: layer.rank for name, layer in adapters.items()},
        "shapes": {name: [layer.in_features, layer.out_features] for name, layer in adapters.items()},
    }
    atomic_write_via(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


def load_adapters(model: nn.Module, directory: str | os.PathLike[str]) -> L1RAConfig:
    """Recreate the saved adapters in ``model`` (a fresh base model), each at its saved rank, with the
    saved values, and return the saved config. The base model is frozen as by :func:`inject_adapters`.

    Raises:
        FileNotFoundError: ``directory`` is not an L1RA adapter directory.
        ValueError: the model lacks a saved module, or a module has another shape (wrong base model).
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(
            f"{directory} is not an L1RA adapter directory (expected {CONFIG_FILE} and {WEIGHTS_FILE}, "
            "as written by save_adapters)"
        )
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    if meta.get("format") != "l1ra" or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{config_path} has format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this library reads l1ra version {FORMAT_VERSION}"
        )
    config = L1RAConfig.from_dict(meta["config"])
    modules = dict(model.named_modules())
    mismatched = []
    for name, (in_features, out_features) in meta["shapes"].items():
        module = modules.get(name)
        if module is None:
            continue  # inject_at_ranks reports missing modules with the list of available ones
        try:
            shape = linear_shape(module)
        except TypeError:
            shape = None
        if shape != (in_features, out_features):
            mismatched.append(f"{name}: saved (in, out)=({in_features}, {out_features}), model has {shape}")
    if mismatched:
        raise ValueError(
            "these adapters were saved for a model of another shape: "
            + "; ".join(mismatched[:6])
            + (" ..." if len(mismatched) > 6 else "")
            + ". Load them into the same base model they were trained on"
        )
    ranks = meta["rank_pattern"]
    if set(ranks) != set(meta["shapes"]):
        raise ValueError(f"{config_path}: rank_pattern and shapes name different modules; the file is inconsistent")
    bad_ranks = {name: r for name, r in ranks.items() if isinstance(r, bool) or not isinstance(r, int) or r < 1}
    if bad_ranks:
        raise ValueError(f"{config_path}: ranks must be ints >= 1, got {bad_ranks}")
    # Check every tensor before touching the model, so a bad file never leaves it half-loaded.
    tensors = load_file(str(weights_path))
    expected = {}
    for name, rank in ranks.items():
        in_features, out_features = meta["shapes"][name]
        expected[f"{name}.lora_A"] = (rank, in_features)
        expected[f"{name}.lora_B"] = (out_features, rank)
        expected[f"{name}.gate"] = (rank,)
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        raise ValueError(
            f"{weights_path} does not match {config_path}: "
            + (f"lacks tensors {missing[:6]}{' ...' if len(missing) > 6 else ''}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"has unknown tensors {unknown[:6]}{' ...' if len(unknown) > 6 else ''}" if unknown else "")
            + "; the adapter directory is incomplete or inconsistent"
        )
    wrong = [
        f"{key} {tuple(tensors[key].shape)} (rank pattern implies {shape})"
        for key, shape in expected.items()
        if tuple(tensors[key].shape) != shape
    ]
    if wrong:
        raise ValueError(
            f"{weights_path}: tensors of the wrong shape: {'; '.join(wrong[:6])}; the adapter directory is "
            "inconsistent"
        )
    adapters = inject_at_ranks(model, config, dict(ranks))
    with torch.no_grad():
        for name, layer in adapters.items():
            for pname in RANK_DIMS:
                getattr(layer, pname).copy_(tensors[f"{name}.{pname}"])
    return config


def save_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> Path:
    """Write the optimizer's and the controller's state next to the adapters (see :func:`save_adapters`),
    so that training can resume exactly. Returns the file written."""
    state: dict[str, Any] = {"optimizer": optimizer.state_dict(), "controller": controller.state_dict()}
    return atomic_write_via(Path(directory) / TRAINING_STATE_FILE, lambda tmp: torch.save(state, tmp))


def load_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> None:
    """Restore what :func:`save_training_state` wrote into a fresh optimizer and controller.

    Build them the same way as in the original run, over a model given the saved adapters with
    :func:`load_adapters` (the parameter order must match).
    """
    path = Path(directory) / TRAINING_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write it with save_training_state")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # The optimizer first: its load_state_dict is the one likely to fail (another parameter layout), and
    # the controller must not be changed when it does. If the controller then refuses its state, the
    # optimizer gets its previous state back.
    previous = optimizer.state_dict()
    optimizer.load_state_dict(state["optimizer"])
    try:
        controller.load_state_dict(state["controller"])
    except Exception:
        optimizer.load_state_dict(previous)
        raise
