"""Save and load L1RA adapters (safetensors + JSON), and whole checkpoints (adapters + training state).

The adapter directory's layout and every check on it are ``l1ra_core.adapter_files`` (no torch);
this module writes the tensors, checks their values (finite in the model's dtype, gates in [0, 1])
and copies them into a model. The training state is :mod:`l1ra_core.torch.training_state`.

A checkpoint is one atomic unit: :func:`save_checkpoint` writes adapters and training state into a new
hidden directory under a checkpoint root, fsyncs it, renames it to ``step-<N>-<id>`` and only then
points ``LATEST`` at it (an atomic file replace), so an interrupted save leaves the previous checkpoint
the one :func:`latest_checkpoint` gives, whole. Nothing here ever executes code from a file, and a load
that fails leaves model, optimizer and controller as they were.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path

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
from sfbow_common.atomic import atomic_write_text, atomic_write_via
from sfbow_common.checks import check_int
from sfbow_common.hashing import file_sha256

from .controller import L1RAController
from .layer import base_weight, linear_shape
from .model import _linear_modules, _refuse_existing_adapters, adapter_layers, inject_at_ranks
from .training_state import load_training_state, save_training_state

__all__ = ["LATEST_FILE", "latest_checkpoint", "load_adapters", "load_training_state", "save_adapters",
           "save_checkpoint", "save_training_state"]

#: The file in a checkpoint root naming its current checkpoint directory.
LATEST_FILE = "LATEST"
_CHECKPOINT_NAME = re.compile(r"step-[0-9]{8,}-[0-9a-f]{8}")

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



def save_checkpoint(
    root: str | os.PathLike[str], model: nn.Module, config: L1RAConfig, optimizer: torch.optim.Optimizer,
    controller: L1RAController, *, keep: int = 1,
) -> Path:
    """Save adapters and training state as one checkpoint under ``root`` (created if needed); return its
    directory. Until the new one is complete and in place, :func:`latest_checkpoint` gives the previous
    one; afterwards all but the ``keep`` newest checkpoints (and leftovers of killed saves) are removed."""
    keep = check_int(keep, "keep", minimum=1)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{controller.step_count:08d}-{secrets.token_hex(4)}"
    staging = root / f".{name}.partial"
    staging.mkdir()
    try:
        save_adapters(model, config, staging)
        save_training_state(staging, optimizer, controller)
        _fsync_directory(staging)
        os.rename(staging, root / name)
        _fsync_directory(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST_FILE, name + "\n")
    _fsync_directory(root)
    done = sorted((p for p in root.iterdir() if _CHECKPOINT_NAME.fullmatch(p.name) and p.name != name),
                  key=lambda p: p.stat().st_mtime_ns)
    for stale in done[:len(done) - (keep - 1)] + [p for p in root.glob(".step-*.partial")]:
        shutil.rmtree(stale, ignore_errors=True)
    return root / name


def latest_checkpoint(root: str | os.PathLike[str]) -> Path:
    """The directory of the newest complete checkpoint under ``root`` (as named by its ``LATEST`` file):
    pass it to :func:`load_adapters` and then :func:`load_training_state`."""
    pointer = Path(root) / LATEST_FILE
    if not pointer.is_file():
        raise FileNotFoundError(f"{root} holds no checkpoint ({LATEST_FILE} is missing); write one with save_checkpoint")
    name = pointer.read_bytes()[:200].decode("utf-8", "replace").strip()
    if not _CHECKPOINT_NAME.fullmatch(name) or not (Path(root) / name).is_dir():
        raise ValueError(f"{pointer} names {name!r}, which is not a checkpoint directory in {root}; the checkpoint "
                         "root is damaged")
    return Path(root) / name


def _fsync_directory(directory: Path) -> None:
    """Make a directory's entries (new files, a rename) durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
