"""Reading the benchmarks' text files: an existing file, decoded as UTF-8, with errors naming file and line."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_text_lines"]


def read_text_lines(path: str | os.PathLike[str], what: str) -> list[str]:
    """The lines of ``path`` (UTF-8, line endings stripped); ``what`` names the file in errors."""
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"{what} file {target} does not exist; check the path (the study's data "
                                "lives in ../shared/bias)")
    raw = target.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(f"{target}:{line}: not valid UTF-8 ({error.reason}); re-save the file as UTF-8") from None
    return text.splitlines()
