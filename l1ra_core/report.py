"""Where the rank went: totals of adapter ranks by layer and by module type.

L1RA's final ranks are a diagnostic in their own right (the paper finds rank concentrating in
the feed-forward projections and in later layers). :func:`rank_report` groups adapter names
such as ``encoder.layer.3.attention.output.dense`` into layer ``3`` and module type
``attention.output.dense`` (what follows the layer index: the last component alone would merge
the different ``dense`` layers of a block). Every backend's report uses this one grouping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from l1ra_core.allocation import AllocationPlan
from sfbow_common.checks import check_int

__all__ = ["LAYER_PATTERN", "RankEntry", "RankReport", "rank_report"]

Layer = int | str | None

#: The default layer pattern: a dotted component of digits (``.3.``, or ``3.`` at the start).
LAYER_PATTERN = r"(?:^|\.)(\d+)\."


class RankEntry(NamedTuple):
    """One adapter in a report."""

    name: str
    layer: Layer
    module_type: str
    rank: int


@dataclass(frozen=True)
class RankReport:
    """Adapter ranks grouped into a ``layers x module_types`` grid of summed ranks.

    ``entries`` lists every adapter (sorted by name); ``grid[i, j]`` is the total rank of the
    adapters in layer ``layers[i]`` with module type ``module_types[j]``. Layers are sorted
    numerically; ``None`` collects the names the layer pattern did not match.
    """

    entries: tuple[RankEntry, ...]
    layers: tuple[Layer, ...]
    module_types: tuple[str, ...]
    grid: np.ndarray

    @property
    def total(self) -> int:
        """Sum of all ranks."""
        return int(self.grid.sum())

    @property
    def by_layer(self) -> dict[Layer, int]:
        """Total rank per layer."""
        return dict(zip(self.layers, self.grid.sum(axis=1).tolist()))

    @property
    def layer_labels(self) -> list[str]:
        """The layers as printed: their value, ``-`` for the unmatched (``None``)."""
        return [_layer_label(layer) for layer in self.layers]

    @property
    def by_module_type(self) -> dict[str, int]:
        """Total rank per module type."""
        return dict(zip(self.module_types, self.grid.sum(axis=0).tolist()))

    def to_dict(self) -> dict[str, Any]:
        """Plain Python containers (``json.dumps``-able): totals, the grid and every adapter's rank."""
        return {
            "total": self.total,
            "by_layer": self.by_layer,
            "by_module_type": self.by_module_type,
            "layers": list(self.layers),
            "module_types": list(self.module_types),
            "grid": self.grid.tolist(),
            "ranks": {entry.name: entry.rank for entry in self.entries},
        }

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per adapter (name, layer, module_type, rank), for ``pandas.DataFrame(records)``."""
        return [entry._asdict() for entry in self.entries]

    def table(self) -> str:
        """The grid as a plain-text table with row and column totals."""
        header = ["layer", *self.module_types, "total"]
        rows = [
            [_layer_label(layer), *map(str, row), str(sum(row))]
            for layer, row in zip(self.layers, self.grid.tolist())
        ]
        rows.append(["total", *map(str, self.grid.sum(axis=0).tolist()), str(self.total)])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])])
            for row in [header, *rows]
        )

    def __str__(self) -> str:
        return self.table()


def rank_report(
    plan_or_ranks: AllocationPlan | Mapping[str, int],
    *,
    layer_pattern: str | re.Pattern[str] = LAYER_PATTERN,
    module_type: Callable[[str], str] | None = None,
) -> RankReport:
    """Group adapter ranks by layer and module type.

    ``plan_or_ranks`` is an :class:`AllocationPlan` (its new ranks) or a name -> rank mapping.
    The layer is the first group of the first ``layer_pattern`` match in the name (the whole
    match if the pattern has no group), an int when it is all digits, ``None`` when nothing
    matches. ``module_type(name)`` defaults to what follows the match (the whole name when nothing matches or nothing follows).
    """
    ranks = plan_or_ranks.ranks if isinstance(plan_or_ranks, AllocationPlan) else plan_or_ranks
    if not isinstance(ranks, Mapping):
        raise TypeError(
            "plan_or_ranks must be an AllocationPlan or a name -> rank mapping, "
            f"got {type(ranks).__name__}"
        )
    bad_keys = [key for key in ranks if not isinstance(key, str)]
    if bad_keys:
        raise TypeError(
            f"adapter names must be str, got {type(bad_keys[0]).__name__} {bad_keys[0]!r}; pass a "
            "name -> rank mapping such as {'encoder.layer.0.query': 8}"
        )
    pattern = re.compile(layer_pattern)
    type_of = module_type or (lambda name: _module_type(name, pattern))
    entries = []
    for name in sorted(ranks):
        kind = type_of(name)
        if not isinstance(kind, str):
            raise TypeError(f"module_type({name!r}) must return a str, got {type(kind).__name__}")
        rank = check_int(ranks[name], f"rank of {name!r}", minimum=0)
        entries.append(RankEntry(name, _layer_of(name, pattern), kind, rank))
    layers = tuple(sorted({entry.layer for entry in entries}, key=_layer_sort_key))
    module_types = tuple(sorted({entry.module_type for entry in entries}))
    grid = np.zeros((len(layers), len(module_types)), dtype=np.int64)
    row = {layer: i for i, layer in enumerate(layers)}
    column = {kind: j for j, kind in enumerate(module_types)}
    for entry in entries:
        grid[row[entry.layer], column[entry.module_type]] += entry.rank
    grid.flags.writeable = False
    return RankReport(tuple(entries), layers, module_types, grid)


def _module_type(name: str, pattern: re.Pattern[str]) -> str:
    """The part of ``name`` after its layer: ``encoder.layer.3.attention.output.dense`` ->
    ``attention.output.dense``; the whole name when ``pattern`` does not match or nothing follows."""
    match = pattern.search(name)
    return name if match is None or match.end() == len(name) else name[match.end() :]


def _layer_of(name: str, pattern: re.Pattern[str]) -> Layer:
    match = pattern.search(name)
    label = None if match is None else match.group(1 if pattern.groups else 0)
    if label is None:
        return None
    return int(label) if label.isdecimal() else label


def _layer_sort_key(layer: Layer) -> tuple[int, int, str]:
    """Numbers first in numeric order, then named layers, then ``None``."""
    if isinstance(layer, int):
        return (0, layer, "")
    return (1, 0, layer) if layer is not None else (2, 0, "")


def _layer_label(layer: Layer) -> str:
    """How a layer is printed: its value, ``-`` for ``None`` (names the pattern did not match)."""
    return "-" if layer is None else str(layer)
