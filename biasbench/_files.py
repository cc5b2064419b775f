"""Reading the benchmarks' text files: an existing file, decoded as UTF-8, with errors naming file and line.

Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (as ``open`` reads text), never at the other characters
``str.splitlines`` breaks at (U+2028, U+0085, form feed ...): those are data, and splitting there would
shift every later line. A leading byte-order mark is dropped, so it never sticks to the first field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["read_text_lines"]

_LINE_END = re.compile(r"\r\n|\r|\n")


def read_text_lines(path: str | os.PathLike[str], what: str) -> list[str]:
    """The lines of ``path`` (UTF-8, optional BOM dropped, line endings stripped); ``what`` names the file."""
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
    text = text.removeprefix("\ufeff")
    if not text:
        return []
    lines = _LINE_END.split(text)
    if lines[-1] == "":  # the final line's ending
        lines.pop()
    return lines
