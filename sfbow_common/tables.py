"""Markdown tables: the one formatter behind every report and benchmark results file."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, align: str | None = None) -> str:
    """A padded Markdown table. ``align`` holds one of ``l``/``r`` per column (default: first column
    left, the others right, as for a label followed by numbers). Cells are formatted with ``str``."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    width = len(header)
    for i, row in enumerate(cells[1:]):
        if len(row) != width:
            raise ValueError(f"rows[{i}] has {len(row)} cells; the header has {width}")
    align = align or "l" + "r" * (width - 1)
    if len(align) != width or set(align) - {"l", "r"}:
        raise ValueError(f"align must be {width} characters of 'l' or 'r', got {align!r}")
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(width)]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                 for c, w, a in zip(row, widths, align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])
