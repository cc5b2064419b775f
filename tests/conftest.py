"""Shared test fixtures: where the real STS data lives (see :mod:`shared_utils.data`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared_utils.data import data_path, missing_data

#: ``sts/stsbenchmark`` under the data root (``$SFBOW_DATA_DIR``, else ``../shared`` beside the repository).
STSB_DIR = data_path("sts", "stsbenchmark")


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-dev.csv").is_file():
        pytest.skip(missing_data(STSB_DIR / "sts-dev.csv"))
    return STSB_DIR
