"""The one plotting convention: a standalone ``matplotlib.figure.Figure`` on its own Agg canvas, never
pyplot's global state (no backend switch, no figure registry to leak or close), saved atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfbow_common.atomic import atomic_write_via
from sfbow_common.extras import install_extra

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "png_bytes", "save_png"]


def new_figure(**options: Any) -> Figure:
    """A new figure (``options`` as for ``Figure``, e.g. ``figsize``) drawn by its own Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"plots need matplotlib: {install_extra('plot')}") from error
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` as PNG, atomically; returns the path."""
    return atomic_write_via(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))


def png_bytes(figure: Figure, *, dpi: int = 120) -> bytes:
    """``figure`` as PNG bytes (for writers that store several files together)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
