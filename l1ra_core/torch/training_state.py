"""The training state needed to resume exactly (optimizer + controller), pickle-free and checked on load.

Its tensors go to ``l1ra_training_state.safetensors`` and its structure to ``l1ra_training_state.json``
(tagged lists, tuples and dicts, so int keys and tuples come back as they were). The JSON records the
controller's step, the SHA-256 of the tensors file, of the adapter weights beside it (so a state is never
loaded next to adapters of another save) and of its own content, as the adapter files do. On load
everything is validated before anything changes: the checksums, then the schema (every optimizer setting
of the type the optimizer has, finite, ``lr`` > 0; every state tensor finite and shaped like its
parameter; the step an int >= 0); every error names the file and the field.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from l1ra_core.adapter_files import WEIGHTS_FILE, json_digest
from sfbow_common.atomic import atomic_write_text, atomic_write_via
from sfbow_common.hashing import file_sha256

from .controller import L1RAController

__all__ = ["TRAINING_STATE_FILE", "TRAINING_TENSORS_FILE", "load_training_state", "save_training_state"]

TRAINING_STATE_FILE = "l1ra_training_state.json"
TRAINING_TENSORS_FILE = "l1ra_training_state.safetensors"
_FORMAT, _VERSION = "l1ra-training-state", 2
_MAX_JSON_BYTES = 256 * 2**20


def save_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> Path:
    """Write the optimizer's and the controller's state next to the adapters (save those first, with
    :func:`~l1ra_core.torch.save_adapters`: the state records their checksum), so that training can resume
    exactly. Returns the JSON file written. :func:`~l1ra_core.torch.save_checkpoint` does both as one unit."""
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(
        {"optimizer_type": type(optimizer).__name__, "optimizer": optimizer.state_dict(),
         "controller": controller.state_dict()},
        tensors,
    )
    weights = atomic_write_via(directory / TRAINING_TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    adapters = directory / WEIGHTS_FILE
    document: dict[str, Any] = {
        "format": _FORMAT, "format_version": _VERSION, "step": controller.step_count,
        "tensors_sha256": file_sha256(weights),
        "adapters_sha256": file_sha256(adapters) if adapters.is_file() else None, "state": structure}
    document["document_sha256"] = json_digest(document)
    return atomic_write_text(directory / TRAINING_STATE_FILE, json.dumps(document) + "\n")


def load_training_state(
    directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer, controller: L1RAController
) -> None:
    """Restore what :func:`save_training_state` wrote into a fresh optimizer and controller.

    Build them the same way as in the original run, over a model given the saved adapters with
    :func:`~l1ra_core.torch.load_adapters` (the parameter order must match). Everything is checked before
    anything changes (see the module docstring); if the controller then refuses its part, the optimizer
    gets its previous state back. A state saved beside other adapters than the ones in ``directory`` (a
    checkpoint of mixed steps) is refused.
    """
    path, tensors_path = Path(directory) / TRAINING_STATE_FILE, Path(directory) / TRAINING_TENSORS_FILE
    if not path.is_file() or not tensors_path.is_file():
        raise FileNotFoundError(f"{path} or {tensors_path.name} does not exist; write them with save_training_state")
    document = _read_document(path)
    adapters = Path(directory) / WEIGHTS_FILE
    if document["adapters_sha256"] is not None and adapters.is_file() and \
            file_sha256(adapters) != document["adapters_sha256"]:
        raise ValueError(
            f"{path} (step {document['step']}) was saved beside other adapters than {adapters}: the directory mixes "
            "two saves (adapters of one step, training state of another). Load a checkpoint written whole by "
            "save_checkpoint, or save adapters and training state again together"
        )
    state = _read_state(path, tensors_path, document)
    _check_optimizer_state(path, optimizer, state["optimizer_type"], state["optimizer"])
    previous = optimizer.state_dict()
    try:
        optimizer.load_state_dict(state["optimizer"])
        controller.load_state_dict(state["controller"])
    except Exception:
        optimizer.load_state_dict(previous)
        raise


def _read_document(path: Path) -> dict[str, Any]:
    """The JSON document, checked: size, format, its own checksum, then its top-level fields."""
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise ValueError(f"{path} is larger than {_MAX_JSON_BYTES} bytes; it is not an L1RA training state")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path} cannot be read as an L1RA training state ({error}); it is damaged") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT or "state" not in document:
        raise ValueError(f"{path} is not an L1RA training state (written by save_training_state)")
    if document.get("format_version") != _VERSION:
        raise ValueError(f"{path} has training-state format version {document.get('format_version')!r}; this library "
                         f"reads version {_VERSION} (it has no checksum of its own): save the training state again")
    if document.get("document_sha256") != json_digest(document):
        raise ValueError(f"{path} does not match its own checksum: it was edited or damaged after saving")
    step = document.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"{path}: field 'step' must be an int >= 0, got {step!r}")
    for key in ("tensors_sha256", "adapters_sha256"):
        if not isinstance(document.get(key), str) and not (key == "adapters_sha256" and document.get(key) is None):
            raise ValueError(f"{path}: field {key!r} must be a SHA-256 hex string, got {document.get(key)!r}")
    return document


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a value a training state holds")


def _read_state(path: Path, tensors_path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """The saved state: the tensors file against its checksum, the structure decoded, the step agreeing."""
    if file_sha256(tensors_path) != document["tensors_sha256"]:
        raise ValueError(f"{tensors_path} does not match the checksum in {path.name}: truncated, damaged or replaced")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{tensors_path} cannot be read as safetensors ({error})") from None
    try:
        state = _decode(document["state"], tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the saved structure is damaged ({error})") from None
    if not isinstance(state, dict) or not {"optimizer_type", "optimizer", "controller"} <= set(state) or \
            not isinstance(state["controller"], dict):
        raise ValueError(f"{path} is not an L1RA training state (written by save_training_state)")
    if state["controller"].get("step_count") != document["step"]:
        raise ValueError(f"{path}: field 'step' is {document['step']}, but the controller state is at step "
                         f"{state['controller'].get('step_count')!r}; the file is inconsistent")
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
        for key, value in saved_group.items():
            if key != "params":
                _check_setting(path, index, key, value, group[key])
    params = [p for group in current for p in group["params"]]
    ids = [i for group in groups for i in group["params"]]
    if ids != list(range(len(params))):
        raise ValueError(f"{path}: the saved parameter ids are {ids[:8]}..., expected 0..{len(params) - 1} in order "
                         "(as optimizer.state_dict() writes them); the file is damaged")
    for pid, entry in saved["state"].items():
        if not (isinstance(pid, int) and 0 <= pid < len(params)) or not isinstance(entry, dict):
            raise ValueError(f"{path}: optimizer state entry {pid!r} names no parameter of the optimizer")
        for name, value in entry.items():
            where = f"{path}: optimizer state of parameter {pid}, field {name!r}"
            if torch.is_tensor(value):
                if value.dim() > 0 and tuple(value.shape) != tuple(params[pid].shape):
                    raise ValueError(f"{where} has shape {tuple(value.shape)}, the parameter "
                                     f"{tuple(params[pid].shape)}: the state belongs to adapters of other ranks; load the adapters "
                                     "saved with it (load_adapters) into a fresh model and build the optimizer on them")
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise ValueError(f"{where} has NaN or inf values")
            elif isinstance(value, bool) or not (value is None or (isinstance(value, numbers.Real)
                                                                   and math.isfinite(value))):
                raise ValueError(f"{where} must be a tensor or a finite number, got {value!r}")


def _check_setting(path: Path, index: int, key: str, saved: Any, current: Any) -> None:
    """A saved group setting must have the type of this optimizer's, be finite, and ``lr`` positive."""
    where = f"{path}: optimizer parameter group {index}, setting {key!r}"

    def kind(value: Any) -> str:
        if torch.is_tensor(value):
            return "tensor"
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return type(value).__name__
        if isinstance(value, numbers.Real):
            return "number"
        if isinstance(value, (tuple, list)):
            return "sequence of " + ",".join(kind(v) for v in value)
        return type(value).__name__

    if kind(saved) != kind(current):
        raise ValueError(f"{where} is {saved!r} ({kind(saved)}), but this optimizer has a {kind(current)} there")
    numbers_in = [float(v) for v in (saved if isinstance(saved, (tuple, list)) else [saved])
                  if torch.is_tensor(v) and v.numel() == 1 or isinstance(v, numbers.Real) and not isinstance(v, bool)]
    if not all(math.isfinite(v) for v in numbers_in) or (key == "lr" and not all(v > 0 for v in numbers_in)):
        raise ValueError(f"{where} must be finite{' and > 0' if key == 'lr' else ''}, got {saved!r}")
