"""Save and load L1RA adapters (safetensors + JSON) and the training state needed to resume exactly.

The adapter directory's layout and every check on it are ``l1ra_core.adapter_files`` (no torch);
this module writes the tensors, checks their values (finite in the model's dtype, gates in [0, 1])
and copies them into a model. Training state (optimizer + controller): no pickle either, its tensors in
``l1ra_training_state.safetensors`` and its structure in ``l1ra_training_state.json`` (tagged lists,
tuples and dicts, so int keys and tuples come back as they were; the JSON records the tensors' SHA-256).
Nothing here ever executes code from a file, and a load that fails leaves model, optimizer and controller
as they were.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from l1ra_core.adapter_files import (
    CONFIG_FILE,
    RANK_DIMS,
    WEIGHTS_FILE,
    AdapterFileError,
    AdapterMetadata,
    check_weights,
    read_metadata,
)
from l1ra_core.config import L1RAConfig
from shared_utils.atomic import atomic_write_text, atomic_write_via
from shared_utils.hashing import file_sha256

from .controller import L1RAController
from .layer import base_weight, linear_shape
from .model import _linear_modules, _refuse_existing_adapters, adapter_layers, inject_at_ranks

__all__ = ["load_adapters", "load_training_state", "save_adapters", "save_training_state"]

TRAINING_STATE_FILE = "l1ra_training_state.json"
TRAINING_TENSORS_FILE = "l1ra_training_state.safetensors"


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
    weights = atomic_write_via(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    metadata = AdapterMetadata(
        config,
        {name: layer.rank for name, layer in adapters.items()},
        {name: (layer.in_features, layer.out_features) for name, layer in adapters.items()},
        file_sha256(weights),
    )
    atomic_write_text(directory / CONFIG_FILE, json.dumps(metadata.to_dict(), indent=2, sort_keys=True) + "\n")
    return directory


def load_adapters(model: nn.Module, directory: str | os.PathLike[str]) -> L1RAConfig:
    """Recreate the saved adapters in ``model`` (a fresh base model), each at its saved rank, with the
    saved values, and return the saved config. The base model is frozen as by :func:`inject_adapters`.

    Everything is checked before the model changes: the files (``l1ra_core.adapter_files``), the model
    (no adapters yet, every saved module present with its saved shape) and the values.

    Raises:
        FileNotFoundError: ``directory`` is not an L1RA adapter directory.
        l1ra_core.adapter_files.AdapterFileError: a file is damaged, edited or inconsistent (a ValueError).
        ValueError: the model has adapters already, lacks a saved module, or has one of another shape.
    """
    _refuse_existing_adapters(model)
    directory = Path(directory)
    metadata = read_metadata(directory)
    modules = _check_model_shapes(model, metadata)
    check_weights(directory, metadata)
    weights_path = directory / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise AdapterFileError(f"{weights_path} cannot be read as safetensors ({error}); it is damaged") from None
    for name in metadata.ranks:
        dtype = base_weight(modules[name]).dtype
        for pname in RANK_DIMS:
            _check_values(weights_path, f"{name}.{pname}", tensors[f"{name}.{pname}"], dtype)
    adapters = inject_at_ranks(model, metadata.config, metadata.ranks)
    with torch.no_grad():
        for name, layer in adapters.items():
            for pname in RANK_DIMS:
                getattr(layer, pname).copy_(tensors[f"{name}.{pname}"])
    return metadata.config


def save_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> Path:
    """Write the optimizer's and the controller's state next to the adapters (see :func:`save_adapters`),
    so that training can resume exactly. Returns the JSON file written (the tensors go beside it)."""
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(
        {"optimizer_type": type(optimizer).__name__, "optimizer": optimizer.state_dict(),
         "controller": controller.state_dict()},
        tensors,
    )
    weights = atomic_write_via(directory / TRAINING_TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    document = {"format": "l1ra-training-state", "format_version": 1, "tensors_sha256": file_sha256(weights),
                "state": structure}
    return atomic_write_text(directory / TRAINING_STATE_FILE, json.dumps(document) + "\n")


def load_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> None:
    """Restore what :func:`save_training_state` wrote into a fresh optimizer and controller.

    Build them the same way as in the original run, over a model given the saved adapters with
    :func:`load_adapters` (the parameter order must match). The saved optimizer state must come from the
    same optimizer type with the same parameter groups; that is checked before anything changes, and if a
    later part is refused the optimizer gets its previous state back.
    """
    path, tensors_path = Path(directory) / TRAINING_STATE_FILE, Path(directory) / TRAINING_TENSORS_FILE
    if not path.is_file() or not tensors_path.is_file():
        raise FileNotFoundError(f"{path} or {tensors_path.name} does not exist; write them with save_training_state")
    state = _read_training_state(path, tensors_path)
    _check_optimizer_state(path, optimizer, state["optimizer_type"], state["optimizer"])
    previous = optimizer.state_dict()
    try:
        optimizer.load_state_dict(state["optimizer"])
        controller.load_state_dict(state["controller"])
    except Exception:
        optimizer.load_state_dict(previous)
        raise


def _read_training_state(path: Path, tensors_path: Path) -> dict[str, Any]:
    """The saved state, checked: JSON structure, checksum of the tensors file, every tensor reference."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path} cannot be read as an L1RA training state ({error}); it is damaged") from None
    if not isinstance(document, dict) or document.get("format") != "l1ra-training-state" or \
            document.get("format_version") != 1 or "state" not in document:
        raise ValueError(f"{path} is not an L1RA training state (written by save_training_state)")
    if file_sha256(tensors_path) != document.get("tensors_sha256"):
        raise ValueError(f"{tensors_path} does not match the checksum in {path.name}: truncated, damaged or replaced")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{tensors_path} cannot be read as safetensors ({error})") from None
    try:
        state = _decode(document["state"], tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the saved structure is damaged ({error})") from None
    if not isinstance(state, dict) or not {"optimizer_type", "optimizer", "controller"} <= set(state):
        raise ValueError(f"{path} is not an L1RA training state (written by save_training_state)")
    return state


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON: tensors go to ``tensors`` (referenced by key); lists, tuples and dicts are tagged."""
    if torch.is_tensor(value):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v, tensors) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {type(value).__name__} in a training state; only tensors and plain containers")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_encode`; anything that is not what it writes raises ``ValueError``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"unexpected {type(value).__name__} in the structure")
    (tag, content), = value.items()
    if tag == "tensor":
        return tensors[content]
    if tag in ("list", "tuple") and isinstance(content, list):
        items = [_decode(v, tensors) for v in content]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict" and isinstance(content, list) and all(isinstance(p, list) and len(p) == 2 for p in content):
        return {_decode(k, tensors): _decode(v, tensors) for k, v in content}
    raise ValueError(f"unexpected tag {tag!r} in the structure")


def _check_model_shapes(model: nn.Module, metadata: AdapterMetadata) -> dict[str, nn.Module]:
    """Every saved module must exist in ``model`` as a linear layer of the saved (in, out); returns them."""
    modules = _linear_modules(model, list(metadata.shapes))
    mismatched = [
        f"{name}: saved (in, out)={shape}, model has {linear_shape(modules[name])}"
        for name, shape in metadata.shapes.items()
        if linear_shape(modules[name]) != shape
    ]
    if mismatched:
        raise ValueError(
            "these adapters were saved for a model of another shape: " + "; ".join(mismatched[:6])
            + (" ..." if len(mismatched) > 6 else "") + ". Load them into the same base model they were trained on"
        )
    return modules


def _check_values(path: Path, key: str, tensor: torch.Tensor, dtype: torch.dtype) -> None:
    """Factors must be finite in the model's ``dtype``; gates finite and in [0, 1] (where L1RA keeps them)."""
    target = torch.float32 if key.endswith(".gate") else dtype
    converted = tensor.to(target)
    if not bool(torch.isfinite(converted).all()):
        raise AdapterFileError(f"{path}: tensor {key} has NaN or inf values in {target}; the adapters are unusable")
    if key.endswith(".gate") and not bool(((converted >= 0) & (converted <= 1)).all()):
        raise AdapterFileError(
            f"{path}: gate {key} has values outside [0, 1] (min {converted.min().item():g}); L1RA gates live in "
            "[0, 1], so the file is not one it wrote"
        )


def _check_optimizer_state(path: Path, optimizer: torch.optim.Optimizer, saved_type: object, saved: Any) -> None:
    """Refuse optimizer state of another optimizer type or parameter layout, before anything is loaded."""
    if saved_type != type(optimizer).__name__:
        raise ValueError(
            f"{path} holds {saved_type} state, but the optimizer is {type(optimizer).__name__}; build the same "
            "optimizer type as in the saved run"
        )
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), dict):
        raise ValueError(f"{path}: the saved optimizer state is malformed")
    current = optimizer.param_groups
    layout = [len(group["params"]) for group in current]
    saved_layout = [len(group.get("params", ())) if isinstance(group, dict) else -1 for group in groups]
    if layout != saved_layout:
        raise ValueError(
            f"{path}: the saved optimizer has parameter groups of sizes {saved_layout}, this one {layout}; build "
            "the optimizer the same way as in the saved run (same groups, after load_adapters)"
        )
    for index, (group, saved_group) in enumerate(zip(current, groups)):
        if set(group) != set(saved_group):
            raise ValueError(
                f"{path}: parameter group {index} has settings {sorted(set(saved_group) - {'params'})} in the file "
                f"but {sorted(set(group) - {'params'})} here; build the same optimizer as in the saved run"
            )
