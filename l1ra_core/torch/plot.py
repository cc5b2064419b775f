"""Heatmap of adapter ranks: one row per layer, one column per module type.

A module name is split at its first all-digit component: ``encoder.layer.3.attention.self.query`` is
layer 3, type ``attention.self.query``. Names without a number go to a row labelled ``-``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ._atomic import atomic_write

__all__ = ["plot_rank_heatmap", "rank_grid"]


def rank_grid(ranks: Mapping[str, int]) -> tuple[list[str], list[str], list[list[int | None]]]:
    """Arrange ``ranks`` as (layer labels, module types, grid[layer][type]); ``None`` where absent."""
    cells: dict[tuple[str, str], int] = {}
    for name, rank in ranks.items():
        parts = name.split(".")
        index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
        layer = "-" if index is None else parts[index]
        kind = name if index is None else ".".join(parts[index + 1 :]) or name
        cells[(layer, kind)] = rank
    layers = sorted({layer for layer, _ in cells}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    kinds = list(dict.fromkeys(kind for _, kind in cells))
    return layers, kinds, [[cells.get((layer, kind)) for kind in kinds] for layer in layers]


def plot_rank_heatmap(
    ranks: Mapping[str, int], path: str | os.PathLike[str], *, title: str = "L1RA ranks"
) -> Path:
    """Save a PNG heatmap of ``ranks`` (e.g. ``controller.ranks``) to ``path``, atomically; returns it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting rank heatmaps needs matplotlib: pip install sfbow[plot]") from exc
    if not ranks:
        raise ValueError("no ranks to plot; pass controller.ranks or rank_pattern(model)")
    layers, kinds, grid = rank_grid(ranks)
    values = [[float("nan") if v is None else v for v in row] for row in grid]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(kinds), 1.0 + 0.45 * len(layers)))
    try:
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
        ax.set_yticks(range(len(layers)), layers)
        ax.set_xlabel("module type")
        ax.set_ylabel("layer")
        ax.set_title(title)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value is not None:
                    ax.text(j, i, str(value), ha="center", va="center", color="white", fontsize=8)
        fig.colorbar(image, ax=ax, label="rank")
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
