"""The SFBoW model file (format version 2): a zip of uncompressed members, plain data only, no pickle.

Members (all stored, never compressed, so no member can expand beyond the file's own size):

``metadata.json``
    UTF-8 JSON object (at most :data:`MAX_METADATA_BYTES`): ``format`` (``"sfbow-model"``),
    ``version`` (:data:`FORMAT_VERSION`), the option fields of :data:`FIELDS`, and ``members``:
    for each array member its ``dtype``, ``shape`` and the SHA-256 of its ``.npy`` bytes.
``checksum.sha256``
    The SHA-256 (64 hex digits) of ``metadata.json``'s bytes: editing an option is detected too.
``<name>.npy``
    One ``.npy`` file per array of :data:`MEMBERS` (little-endian, C order).

A subword model (:mod:`sfbow.subword`) also has ``tokenizer`` (its WordPiece options as UTF-8 JSON;
the pieces are ``words``) and ``table_words`` / ``table_word_ends`` (the words given a row of their own),
so it round-trips without the folder it was built from.

:func:`read_model_file` is the one reader. Before it allocates anything it checks the zip directory
(stored members, no encryption, sizes within the file) and, for every array, that the shape declared
in the metadata and in the ``.npy`` header match the member's byte count; then it checks every
checksum. Whatever is wrong, the error is :class:`sfbow.errors.ModelFileError` naming the file.

Extending the format (for example a subword vocabulary and tokenizer data): add the arrays to
:data:`MEMBERS` (``required=False`` if older models lack them) and any option to
:data:`OPTIONAL_FIELDS` (JSON types: str, bool, int, float, list, dict), document them here and in
``docs/sfbow.md``, and raise :data:`FORMAT_VERSION` only if an older reader would misread the new
file. A reader refuses members and fields it does not know, so an older sfbow never silently drops
tokenizer data it cannot use.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from sfbow._npy import read_npy_header
from sfbow.errors import ModelFileError
from sfbow_common.atomic import atomic_write

FORMAT_NAME = "sfbow-model"
FORMAT_VERSION = 2

METADATA_MEMBER = "metadata.json"
CHECKSUM_MEMBER = "checksum.sha256"
#: The metadata is a few hundred bytes; a larger one is a damaged or hostile file.
MAX_METADATA_BYTES = 1 << 20
_READ_CHUNK = 1 << 24


@dataclass(frozen=True)
class Member:
    """An array member: its dtype (little-endian), number of dimensions, and whether every file has it."""

    dtype: str
    ndim: int
    required: bool
    doc: str


MEMBERS: dict[str, Member] = {
    "words": Member("<u1", 1, True, "the vocabulary: every word's UTF-8 bytes, concatenated"),
    "word_ends": Member("<i8", 1, True, "end offset of each word in 'words' (strictly increasing)"),
    "vectors": Member("<f4", 2, True, "the word vectors, one row per word (not normalised)"),
    "universe": Member("<f4", 2, True, "the K x d universe"),
    # Subword models (sfbow.subword): 'words' are then the tokenizer's pieces, in id order.
    "tokenizer": Member("<u1", 1, False, "subword models: the WordPiece tokenizer's options, UTF-8 JSON"),
    "table_words": Member("<u1", 1, False, "subword models: the whole words with a row of their own, UTF-8"),
    "table_word_ends": Member("<i8", 1, False, "end offset of each word in 'table_words'"),
    # Weighted models (sfbow.weighting); a file without it is unweighted (pre-weighting sfbow wrote none).
    "weights": Member("<f4", 1, False, "one weight (finite, >= 0) per word, applied to its membership row"),
}

#: Option fields every file's metadata has, and their JSON types.
FIELDS: dict[str, type] = {"strategy": str, "normalize": bool, "clip": bool, "custom_tokenizer": bool}
#: Option fields a file may have: ``weighting``, the name of the weights (``"none"`` when absent).
OPTIONAL_FIELDS: dict[str, type] = {"weighting": str}

_ZIP_ENCRYPTED = 0x1
_ZIP_STRONG_ENCRYPTION = 0x40
_ZIP_COMPRESSED_PATCH = 0x20

# Everything a damaged zip or .npy can make the standard library raise (zipfile raises
# NotImplementedError for an unknown compression method, RuntimeError for an "encrypted" member).
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
                OSError, ValueError, struct.error, zlib.error, OverflowError, KeyError)


@dataclass(frozen=True)
class ModelFile:
    """The validated contents of a model file: its words, option fields and arrays."""

    path: Path
    words: list[str]
    options: dict[str, Any]
    arrays: dict[str, np.ndarray]


# -- writing -------------------------------------------------------------------------------------

def save_model_file(path: str | os.PathLike[str], options: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a model file atomically: ``options`` (:data:`FIELDS`, any :data:`OPTIONAL_FIELDS`) and
    ``arrays`` (of :data:`MEMBERS`).

    The caller's values are checked against the schema first, so a file is never written that the
    reader would refuse.
    """
    _check_schema_for_writing(options, arrays)
    members: dict[str, dict[str, Any]] = {}
    with atomic_write(path) as stream, zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            data = np.ascontiguousarray(array, dtype=MEMBERS[name].dtype)
            with archive.open(f"{name}.npy", "w", force_zip64=data.nbytes > (1 << 30)) as member:
                hashing = _HashingWriter(member)
                np.lib.format.write_array(hashing, data, allow_pickle=False)
            members[name] = {"dtype": MEMBERS[name].dtype, "shape": list(data.shape),
                             "sha256": hashing.digest.hexdigest()}
        metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **options, "members": members}
        raw = json.dumps(metadata, indent=1, allow_nan=False).encode("utf-8")
        archive.writestr(METADATA_MEMBER, raw)
        archive.writestr(CHECKSUM_MEMBER, hashlib.sha256(raw).hexdigest())


def encode_words(words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """The ``(words, word_ends)`` arrays of a vocabulary (lone surrogates kept, as Python allows them)."""
    encoded = [word.encode("utf-8", "surrogatepass") for word in words]
    return (np.frombuffer(b"".join(encoded), dtype=np.uint8),
            np.cumsum([len(word) for word in encoded], dtype=np.int64))


class _HashingWriter:
    """A write-only stream that hashes what passes through it (to checksum a member while writing it)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.stream.write(data)


def _check_schema_for_writing(options: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    kinds = {**FIELDS, **OPTIONAL_FIELDS}
    if (not set(FIELDS) <= set(options) <= set(kinds)
            or any(not isinstance(value, kinds[key]) for key, value in options.items())):
        raise ValueError(f"model options must be {FIELDS} and optionally {OPTIONAL_FIELDS}, got {dict(options)!r}")
    unknown = set(arrays) - set(MEMBERS)
    missing = {name for name, member in MEMBERS.items() if member.required} - set(arrays)
    if unknown or missing:
        raise ValueError(f"model arrays: unknown {sorted(unknown)}, missing {sorted(missing)}")
    for name, array in arrays.items():
        if np.ndim(array) != MEMBERS[name].ndim:
            raise ValueError(f"model array {name!r} must be {MEMBERS[name].ndim}-D, got shape {np.shape(array)}")


# -- reading -------------------------------------------------------------------------------------

def read_model_file(path: str | os.PathLike[str], data: bytes | None = None) -> ModelFile:
    """Read and validate a model file; any defect is a :class:`ModelFileError` naming the file.

    ``data``: the file's bytes, already read (and hashed) by the caller, parsed instead of ``path``
    (which then only names the file in errors), so what was hashed is exactly what is loaded.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return _read(path, data)
    except ModelFileError:
        raise
    except RecursionError as exc:  # json.loads on deeply nested metadata
        raise ModelFileError(f"{path}: its metadata is nested too deeply to be an sfbow model") from exc
    except _READ_ERRORS as exc:
        raise ModelFileError(
            f"{path} is not a readable sfbow model file (truncated, corrupt or another format?): "
            f"{type(exc).__name__}: {exc}") from exc


def _read(path: Path, data: bytes | None) -> ModelFile:
    file_size = path.stat().st_size if data is None else len(data)
    with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as archive:
        entries = _check_directory(path, archive, file_size)
        for required in (METADATA_MEMBER, CHECKSUM_MEMBER):
            if required not in entries:
                raise ModelFileError(f"{path} is not an sfbow model file: it has no {required} member")
        raw = _read_bytes(path, archive, entries[METADATA_MEMBER], MAX_METADATA_BYTES)
        checksum = _read_bytes(path, archive, entries[CHECKSUM_MEMBER], 64)
        if hashlib.sha256(raw).hexdigest().encode("ascii") != checksum:
            raise ModelFileError(f"{path}: the metadata does not match its checksum; the file was modified")
        metadata = _parse_metadata(path, raw)
        declared = metadata.pop("members")
        expected_entries = {METADATA_MEMBER, CHECKSUM_MEMBER} | {f"{name}.npy" for name in declared}
        if set(entries) != expected_entries:
            raise ModelFileError(f"{path}: its zip members {sorted(entries)} are not the ones its metadata "
                                 f"lists {sorted(expected_entries)}")
        arrays = {name: _read_array(path, archive, entries[f"{name}.npy"], name, spec)
                  for name, spec in declared.items()}
    words = _decode_words(path, arrays["words"], arrays["word_ends"])
    options = {key: metadata[key] for key in (*FIELDS, *OPTIONAL_FIELDS) if key in metadata}
    return ModelFile(path, words, options, arrays)


def _check_directory(path: Path, archive: zipfile.ZipFile, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once the zip directory is checked: nothing is read or allocated yet."""
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if name in entries:
            raise ModelFileError(f"{path}: member {name!r} appears twice in the zip directory")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{path}: member {name!r} is compressed (zip method {info.compress_type}); "
                                 "sfbow model files store members uncompressed: write it with SFBoW.save")
        if info.flag_bits & (_ZIP_ENCRYPTED | _ZIP_STRONG_ENCRYPTION | _ZIP_COMPRESSED_PATCH):
            raise ModelFileError(f"{path}: member {name!r} is flagged encrypted or patched "
                                 f"(flags {info.flag_bits:#06x}); the file is corrupt")
        if info.file_size != info.compress_size or info.header_offset + info.compress_size > file_size:
            raise ModelFileError(f"{path}: member {name!r} claims {info.file_size} bytes, more than the "
                                 f"{file_size}-byte file holds (truncated or corrupt)")
        entries[name] = info
    return entries


def _read_bytes(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytearray:
    """A member's bytes (its size already checked against the file's), at most ``limit`` of them."""
    if info.file_size > limit:
        raise ModelFileError(f"{path}: member {info.filename!r} has {info.file_size} bytes, over its limit of {limit}")
    buffer = bytearray(info.file_size)
    view = memoryview(buffer)
    with archive.open(info) as stream:
        filled = 0
        while filled < info.file_size:
            chunk = stream.read(min(_READ_CHUNK, info.file_size - filled))
            if not chunk:
                raise ModelFileError(f"{path}: member {info.filename!r} ends early (truncated)")
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        if stream.read(1):  # reaching the end also makes zipfile check the CRC-32
            raise ModelFileError(f"{path}: member {info.filename!r} is longer than its directory entry says")
    return buffer


def _parse_metadata(path: Path, raw: bytearray) -> dict[str, Any]:
    def refuse_constant(name: str) -> None:
        raise ModelFileError(f"{path}: the metadata holds {name}, which is not valid JSON")

    metadata = json.loads(bytes(raw).decode("utf-8"), parse_constant=refuse_constant)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not an sfbow model file (its metadata names no sfbow format)")
    version = metadata.get("version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version!r}; this sfbow reads version "
                             f"{FORMAT_VERSION}: use the sfbow that wrote it, or rebuild the model")
    known = {"format", "version", "members", *FIELDS, *OPTIONAL_FIELDS}
    if set(metadata) - known:
        raise ModelFileError(f"{path}: unknown metadata fields {sorted(set(metadata) - known)} "
                             "(written by a newer sfbow?)")
    for key, kind in FIELDS.items():
        if not isinstance(metadata.get(key), kind):
            raise ModelFileError(f"{path}: metadata field {key!r} is missing or not a {kind.__name__}")
    for key, kind in OPTIONAL_FIELDS.items():
        if key in metadata and not isinstance(metadata[key], kind):
            raise ModelFileError(f"{path}: metadata field {key!r} is not a {kind.__name__}")
    members = metadata.get("members")
    if not isinstance(members, dict):
        raise ModelFileError(f"{path}: the metadata has no 'members' table")
    unknown = set(members) - set(MEMBERS)
    if unknown:
        raise ModelFileError(f"{path}: unknown members {sorted(unknown)} (written by a newer sfbow?)")
    missing = {name for name, member in MEMBERS.items() if member.required} - set(members)
    if missing:
        raise ModelFileError(f"{path} lacks the members {sorted(missing)}")
    return metadata


def _read_array(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, spec: Any) -> np.ndarray:
    """One array member, checked against its schema, its declared shape, its size and its checksum."""
    member = MEMBERS[name]
    if not (isinstance(spec, dict) and set(spec) == {"dtype", "shape", "sha256"}
            and spec["dtype"] == member.dtype and isinstance(spec["sha256"], str)
            and isinstance(spec["shape"], list) and len(spec["shape"]) == member.ndim
            and all(type(n) is int and n >= 0 for n in spec["shape"])):
        raise ModelFileError(f"{path}: the metadata of member {name!r} is not a {member.ndim}-D "
                             f"{member.dtype} array description: {spec!r}")
    shape = tuple(spec["shape"])
    dtype = np.dtype(member.dtype)
    payload = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd shapes
    if payload > info.file_size:
        raise ModelFileError(f"{path}: member {name!r} declares shape {shape} ({payload} bytes) but holds "
                             f"{info.file_size} bytes")
    raw = _read_bytes(path, archive, info, info.file_size)
    if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
        raise ModelFileError(f"{path}: member {name!r} does not match its checksum; the file was modified")
    header = io.BytesIO(raw)
    try:
        npy_shape, fortran, npy_dtype = read_npy_header(header)
    except ValueError as exc:
        raise ModelFileError(f"{path}: member {name!r} is not a valid .npy array: {exc}") from None
    offset = header.tell()
    if npy_shape != shape or fortran or npy_dtype != dtype or offset + payload != len(raw):
        raise ModelFileError(f"{path}: member {name!r} holds a {npy_dtype} array of shape {npy_shape} in "
                             f"{len(raw) - offset} bytes; its metadata says {dtype} {shape}")
    return np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)


def decode_words(path: Path, buffer: np.ndarray, ends: np.ndarray) -> list[str]:
    """The words of a ``(words, word_ends)`` pair of arrays read from ``path`` (inverse of :func:`encode_words`)."""
    return _decode_words(path, buffer, ends)


def _decode_words(path: Path, buffer: np.ndarray, ends: np.ndarray) -> list[str]:
    if ends.size and (ends[0] <= 0 or ends[-1] != buffer.size or np.any(np.diff(ends) <= 0)):
        raise ModelFileError(f"{path}: the word offsets do not fit the word buffer")
    raw = buffer.tobytes()
    starts = [0, *ends[:-1].tolist()]
    words = []
    for row, (start, end) in enumerate(zip(starts, ends.tolist())):
        try:
            words.append(raw[start:end].decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"{path}: word {row} is not valid UTF-8 ({exc.reason}); the file is corrupt") from None
    return words
