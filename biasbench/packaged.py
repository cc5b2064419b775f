"""The benchmark files shipped inside biasbench (WinoBias, MIT; CrowS-Pairs, CC BY-SA 4.0; see
``biasbench/data/README.md``), so the loaders work on a fresh install with nothing beside it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["crows_pairs_file", "winobias_dir"]

_DATA = Path(__file__).resolve().parent / "data"


def winobias_dir() -> Path:
    """The folder of WinoBias' pro/anti type 1/2 dev/test files and its swap lists (for ``load_winobias_*``
    and ``load_swap_list``)."""
    return _DATA / "winobias"


def crows_pairs_file() -> Path:
    """``crows_pairs_anonymized.csv`` (for ``load_crows_pairs``; evaluation only)."""
    return _DATA / "crows_pairs_anonymized.csv"
