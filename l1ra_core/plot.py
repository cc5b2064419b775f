"""Heatmap of adapter ranks: one row per layer, one column per module type (from ``l1ra_core.rank_report``).

It needs matplotlib (extra ``plot``) but no deep-learning framework."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from l1ra_core.report import rank_report
from sfbow_common.figures import new_figure, save_png

__all__ = ["plot_rank_heatmap"]


def plot_rank_heatmap(
    ranks: Mapping[str, int], path: str | os.PathLike[str], *, title: str = "L1RA ranks"
) -> Path:
    """Save a PNG heatmap of ``ranks`` (e.g. ``controller.ranks``) to ``path``, atomically; returns it."""
    if not ranks:
        raise ValueError("no ranks to plot; pass controller.ranks or rank_pattern(model)")
    report = rank_report(ranks)
    layers = report.layer_labels
    kinds = list(report.module_types)
    fig = new_figure(figsize=(1.6 + 1.2 * len(kinds), 1.2 + 0.45 * len(layers)))
    ax = fig.add_subplot()
    image = ax.imshow(report.grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    ax.set_yticks(range(len(layers)), layers)
    ax.set_xlabel("module type")
    ax.set_ylabel("layer")
    ax.set_title(title)
    bright = 0.6 * float(report.grid.max())  # viridis is light at the top: dark text there
    for (i, j), value in _cells(report.grid):
        ax.text(j, i, str(value), ha="center", va="center", color="black" if value > bright else "white",
                fontsize=8)
    fig.colorbar(image, ax=ax, label="rank")
    fig.tight_layout()
    return save_png(fig, path)


def _cells(grid: Any) -> list[tuple[tuple[int, int], int]]:
    return [((i, j), int(v)) for i, row in enumerate(grid.tolist()) for j, v in enumerate(row)]
