"""The one data root of tests and benchmarks: ``$SFBOW_DATA_DIR`` when set, else ``../shared`` beside the
repository (as CI lays it out). Nothing here reads a file; callers name what they need below the root."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_path", "data_root", "missing_data"]

DATA_ENV = "SFBOW_DATA_DIR"
_REPOSITORY = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$SFBOW_DATA_DIR`` if it is set and not empty, else ``../shared`` beside the repository."""
    override = os.environ.get(DATA_ENV, "").strip()
    return Path(override).expanduser() if override else _REPOSITORY.parent / "shared"


def data_path(*parts: str) -> Path:
    """A file or folder under the data root, e.g. ``data_path("sts", "stsbenchmark", "sts-dev.csv")``."""
    return data_root().joinpath(*parts)


def missing_data(path: Path) -> str:
    """Why a test or benchmark cannot run without ``path``: the reason names the file and how to provide it."""
    return (f"data file {path} not found (the data root is ${DATA_ENV} when set, else ../shared beside the "
            "repository)")
