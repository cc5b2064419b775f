"""The L1RA adapter directory: its layout, its metadata and every check a reader makes before loading.

Layout (written by a backend's ``save_adapters``)::

    l1ra_config.json            format, config, rank of every adapter, (in, out) of every layer, checksums
    l1ra_adapters.safetensors   <module>.lora_A (rank x in), <module>.lora_B (out x rank), <module>.gate (rank)

The JSON records the SHA-256 of the weights file and of its own content, so a truncated, flipped or
edited file is refused instead of loaded; the safetensors header is read here with the standard
library alone (names, dtypes, shapes, offsets against the file size). A backend then only checks
the values (finite in its dtype, gates in [0, 1]) and copies them in. Nothing is pickled and nothing
read is trusted: every error names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l1ra_core.config import L1RAConfig
from sfbow_common.checks import check_int
from sfbow_common.hashing import file_sha256
from sfbow_common.records import set_checked

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "RANK_DIMS",
    "WEIGHTS_FILE",
    "AdapterFileError",
    "AdapterMetadata",
    "check_weights",
    "json_digest",
    "read_metadata",
]

CONFIG_FILE = "l1ra_config.json"
WEIGHTS_FILE = "l1ra_adapters.safetensors"
FORMAT_VERSION = 2
#: Every adapter tensor and the dimension along which it has one entry per rank component.
RANK_DIMS: dict[str, int] = {"lora_A": 0, "lora_B": 1, "gate": 0}
#: dtypes a factor may have in the file (the gate is always written as F32).
FACTOR_DTYPES = ("F16", "BF16", "F32", "F64")
_MAX_JSON_BYTES = 64 * 2**20
_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class AdapterFileError(ValueError):
    """An adapter directory that cannot be loaded as it is; the message names the file and the fix."""


@dataclass(frozen=True)
class AdapterMetadata:
    """What ``l1ra_config.json`` holds: the run's config, every adapter's rank and its layer's (in, out)."""

    config: L1RAConfig
    ranks: dict[str, int]
    shapes: dict[str, tuple[int, int]]
    weights_sha256: str = ""  # the SHA-256 of the weights file this metadata describes

    def __post_init__(self) -> None:
        if not isinstance(self.config, L1RAConfig):
            raise TypeError(f"config must be an L1RAConfig, got {type(self.config).__name__}")
        if set(self.ranks) != set(self.shapes):
            raise ValueError("ranks and shapes must name the same modules")
        set_checked(
            self,
            ranks={name: check_int(rank, f"ranks[{name!r}]", minimum=1) for name, rank in self.ranks.items()},
            shapes={name: (check_int(shape[0], f"shapes[{name!r}]", minimum=1),
                           check_int(shape[1], f"shapes[{name!r}]", minimum=1)) for name, shape in self.shapes.items()},
            weights_sha256=str(self.weights_sha256),
        )

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape every tensor of the weights file must have, by tensor name."""
        expected: dict[str, tuple[int, ...]] = {}
        for name, rank in self.ranks.items():
            in_features, out_features = self.shapes[name]
            expected[f"{name}.lora_A"] = (rank, in_features)
            expected[f"{name}.lora_B"] = (out_features, rank)
            expected[f"{name}.gate"] = (rank,)
        return expected

    def to_dict(self) -> dict[str, Any]:
        """The content of ``l1ra_config.json`` (its keys are the file format's, checksum included)."""
        meta: dict[str, Any] = {
            "format": "l1ra",
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "rank_pattern": dict(sorted(self.ranks.items())),
            "shapes": {name: list(shape) for name, shape in sorted(self.shapes.items())},
            "weights_sha256": self.weights_sha256,
        }
        meta["metadata_sha256"] = json_digest(meta)
        return meta

    @classmethod
    def from_dict(cls, meta: Any, *, source: str | os.PathLike[str] = CONFIG_FILE) -> AdapterMetadata:
        """The metadata :meth:`to_dict` wrote, checked; :class:`AdapterFileError` naming ``source`` if wrong
        (another format version, a missing or unknown key, a checksum mismatch, an invalid config)."""
        path = source
        if not isinstance(meta, dict):
            raise AdapterFileError(f"{path} must hold a JSON object, got {type(meta).__name__}")
        if meta.get("format") != "l1ra" or meta.get("format_version") != FORMAT_VERSION:
            raise AdapterFileError(
                f"{path} has format {meta.get('format')!r} version {meta.get('format_version')!r}; this library "
                f"reads l1ra version {FORMAT_VERSION} (save the adapters again with this version)"
            )
        required = {"config", "rank_pattern", "shapes", "weights_sha256", "metadata_sha256"}
        missing = sorted(required - set(meta))
        if missing:
            raise AdapterFileError(f"{path} lacks the keys {missing}; the file is incomplete")
        unknown = sorted(set(meta) - required - {"format", "format_version"}, key=str)
        if unknown:
            raise AdapterFileError(f"{path} has unknown keys {unknown}; it was written by another version")
        if meta["metadata_sha256"] != json_digest(meta):
            raise AdapterFileError(f"{path} does not match its own checksum: it was edited or damaged after saving")
        try:
            config = L1RAConfig.from_dict(meta["config"])
        except (TypeError, ValueError) as error:
            raise AdapterFileError(f"{path}: the saved config is invalid: {error}") from None
        ranks, shapes = meta["rank_pattern"], meta["shapes"]
        if not isinstance(ranks, dict) or not isinstance(shapes, dict) or set(ranks) != set(shapes) or not ranks:
            raise AdapterFileError(f"{path}: rank_pattern and shapes must name the same, non-empty set of modules")
        for name in ranks:
            rank, shape = ranks[name], shapes[name]
            if not _is_int(rank, 1) or not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(s, 1) for s in shape)):
                raise AdapterFileError(
                    f"{path}: module {name!r} has rank {rank!r} and shape {shape!r}; a rank is an int >= 1 and a "
                    "shape a list [in_features, out_features] of ints >= 1"
                )
        return cls(
            config, dict(ranks), {name: (shape[0], shape[1]) for name, shape in shapes.items()}, str(meta["weights_sha256"])
        )


def read_metadata(directory: str | os.PathLike[str]) -> AdapterMetadata:
    """Read and check ``directory/l1ra_config.json``; raise :class:`AdapterFileError` naming it if wrong.

    ``FileNotFoundError`` when the directory holds no adapter files at all.
    """
    directory = Path(directory)
    path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not path.is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"{directory} is not an L1RA adapter directory (expected {CONFIG_FILE} and {WEIGHTS_FILE}, "
            "as written by save_adapters)"
        )
    raw = _read_bounded(path, _MAX_JSON_BYTES)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise AdapterFileError(f"{path} is not valid UTF-8 JSON ({error}); the file is damaged") from None
    return AdapterMetadata.from_dict(meta, source=path)


def check_weights(directory: str | os.PathLike[str], metadata: AdapterMetadata) -> None:
    """Check ``directory/l1ra_adapters.safetensors`` against ``metadata`` before any tensor is loaded.

    Its SHA-256 must be the recorded one; its header must be well formed, lie inside the file and list
    exactly the expected tensors with the expected shapes, factors in a floating dtype and gates in F32.
    Raises :class:`AdapterFileError` naming the file.
    """
    path = Path(directory) / WEIGHTS_FILE
    if file_sha256(path) != metadata.weights_sha256:
        raise AdapterFileError(
            f"{path} does not match the checksum recorded in {CONFIG_FILE}: the file is truncated, damaged or "
            "from another save"
        )
    header = _safetensors_header(path)
    expected = metadata.tensor_shapes()
    missing, unknown = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unknown:
        raise AdapterFileError(
            f"{path} does not match {CONFIG_FILE}: lacks {missing[:6]}, has unknown {unknown[:6]}; the adapter "
            "directory is inconsistent"
        )
    for key, shape in expected.items():
        dtype, found = header[key]
        allowed = ("F32",) if key.endswith(".gate") else FACTOR_DTYPES
        if found != shape or dtype not in allowed:
            raise AdapterFileError(
                f"{path}: tensor {key} is {dtype} {found}, expected one of {allowed} with shape {shape}; the "
                "adapter directory is inconsistent"
            )


def json_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON document's canonical form without its own checksum (``metadata_sha256`` here,
    ``document_sha256`` in a training state): how every L1RA JSON file checks itself."""
    body = {key: value for key, value in meta.items() if key not in ("metadata_sha256", "document_sha256")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors header, checked against the file's size."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 0 < length <= min(_MAX_HEADER_BYTES, size - 8):
            raise AdapterFileError(f"{path} is not a safetensors file (bad header length); it is truncated or damaged")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AdapterFileError(f"{path} has a damaged safetensors header") from None
    if not isinstance(header, dict):
        raise AdapterFileError(f"{path} has a damaged safetensors header")
    header.pop("__metadata__", None)
    tensors, end = {}, 0
    for key, info in header.items():
        try:
            dtype, shape, (begin, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            ok = dtype in _DTYPE_BYTES and all(_is_int(s, 0) for s in shape) and _is_int(begin, 0) and _is_int(stop, 0)
            count = 1
            for s in shape:
                count *= s
            ok = ok and stop - begin == count * _DTYPE_BYTES[dtype] and 8 + length + stop <= size
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise AdapterFileError(f"{path}: the safetensors entry for {key!r} is damaged or points past the file's end")
        tensors[key] = (dtype, shape)
        end = max(end, stop)
    if 8 + length + end != size:
        raise AdapterFileError(f"{path}: the safetensors data does not fill the file exactly; it is damaged")
    return tensors


def _read_bounded(path: Path, limit: int) -> bytes:
    if path.stat().st_size > limit:
        raise AdapterFileError(f"{path} is larger than {limit} bytes; it is not an L1RA adapter config")
    return path.read_bytes()


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
