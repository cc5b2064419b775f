"""The SFBoW model file: one uncompressed ``.npz`` of plain arrays plus JSON metadata. No pickle.

Members: ``metadata`` (UTF-8 JSON as uint8), ``words`` (the vocabulary as one UTF-8 buffer) with
``word_ends`` (int64 end offsets), ``vectors`` (float32, words x d) and ``universe`` (float32, K x d).
The membership table is recomputed on load, which keeps the file small. The metadata holds the
format name and version, the model options and a SHA-256 of every array, so a truncated or edited
file fails to load with a clear error instead of giving wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sfbow.tokenization import tokenize
from shared_utils.atomic import atomic_write

if TYPE_CHECKING:
    from sfbow.model import SFBoW

FORMAT_NAME = "sfbow-model"
FORMAT_VERSION = 1
_ARRAYS = {"words": np.uint8, "word_ends": np.int64, "vectors": np.float32, "universe": np.float32}


class ModelFileError(ValueError):
    """A model file that is not a valid sfbow model (truncated, edited, or another format)."""


def save_model(path: str | os.PathLike[str], model: SFBoW) -> None:
    """Write ``model`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
    encoded = [w.encode("utf-8", "surrogatepass") for w in model.vectors.words]
    arrays = {
        "words": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "word_ends": np.cumsum([len(w) for w in encoded], dtype=np.int64),
        "vectors": model.vectors.matrix,
        "universe": model.universe,
    }
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "strategy": model.strategy,
        "normalize": model.normalize,
        "clip": model.clip,
        "custom_tokenizer": model.tokenizer is not tokenize,
        "sha256": {name: _digest(array) for name, array in arrays.items()},
    }
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as stream:
        np.savez(stream, **arrays)


def load_model(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
    """Read and validate a model file; return ``(words, vectors, universe, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = set(archive.files)
            if "metadata" not in members:
                raise ModelFileError(f"{path} is not an sfbow model: it has no metadata member")
            metadata = json.loads(bytes(archive["metadata"]).decode("utf-8"))
            _check_metadata(path, metadata)
            missing = set(_ARRAYS) - members
            if missing:
                raise ModelFileError(f"{path} lacks the arrays {sorted(missing)}")
            arrays = {name: archive[name] for name in _ARRAYS}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:  # JSON and Unicode errors too
        raise ModelFileError(f"{path} is not a readable sfbow model file (truncated or corrupt?): {exc}") from exc
    for name, dtype in _ARRAYS.items():
        if arrays[name].dtype != dtype:
            raise ModelFileError(f"{path}: array {name!r} has dtype {arrays[name].dtype}, expected {np.dtype(dtype)}")
        if _digest(arrays[name]) != metadata["sha256"].get(name):
            raise ModelFileError(f"{path}: array {name!r} does not match its checksum; the file was modified")
    words = _decode_words(path, arrays["words"], arrays["word_ends"])
    vectors, universe = arrays["vectors"], arrays["universe"]
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ModelFileError(f"{path}: vectors of shape {vectors.shape} do not fit {len(words)} words")
    if universe.ndim != 2 or universe.shape[1] != vectors.shape[1]:
        raise ModelFileError(f"{path}: universe of shape {universe.shape} does not fit vectors of dim {vectors.shape[1]}")
    return words, vectors, universe, metadata


def _check_metadata(path: Path, metadata: Any) -> None:
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not an sfbow model file")
    if metadata.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {metadata.get('version')!r}; this sfbow reads version "
            f"{FORMAT_VERSION}: upgrade sfbow or re-save the model"
        )
    for key, kind in (("strategy", str), ("normalize", bool), ("clip", bool), ("sha256", dict)):
        if not isinstance(metadata.get(key), kind):
            raise ModelFileError(f"{path}: metadata field {key!r} is missing or not a {kind.__name__}")


def _decode_words(path: Path, buffer: np.ndarray, ends: np.ndarray) -> list[str]:
    if ends.ndim != 1 or (ends.size and (ends[-1] != buffer.size or np.any(np.diff(ends) <= 0) or ends[0] <= 0)):
        raise ModelFileError(f"{path}: the word offsets do not fit the word buffer")
    raw = buffer.tobytes()
    starts = np.concatenate(([0], ends[:-1]))
    return [raw[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts.tolist(), ends.tolist())]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
