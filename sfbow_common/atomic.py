"""Atomic file writes: write a temporary file beside the target, fsync it, then rename it into place.

A reader never sees a half-written file, and an interrupted write leaves the old file intact. The file
gets the permissions an ordinary ``open`` would give it (0666 less the umask), not mkstemp's 0600.
The target's folder must exist: a typo in a path is an error, not a new folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_via"]

# The process umask, read once at import: reading it means setting it, which would race with threads
# creating files if done on every write.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _temporary_beside(target: Path) -> tuple[int, Path]:
    if not target.name or target.is_dir():  # Path("") is ".": renaming onto a folder fails with EBUSY
        raise IsADirectoryError(f"cannot write {str(target) or repr('')}: it names a folder, not a file; "
                                "give a file name")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: the folder {target.parent} does not exist; "
                                "create it first")
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    return handle, Path(tmp)


def _commit(tmp: Path, target: Path) -> None:
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path``, on error it is removed."""
    target = Path(path)
    handle, tmp = _temporary_beside(target)
    try:
        with os.fdopen(handle, mode, **open_kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _commit(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; return the path."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as stream:
        stream.write(text)
    return Path(path)


def atomic_write_via(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Atomically write ``path`` with a writer that takes a file name (``safetensors.save_file``,
    ``savefig``): ``write(temporary_path)`` fills a temporary file, which is fsynced and renamed."""
    target = Path(path)
    handle, tmp = _temporary_beside(target)
    os.close(handle)
    try:
        write(tmp)
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        _commit(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
