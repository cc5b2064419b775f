"""Fixtures for the biasbench tests: the real benchmark files under the data root's bias/ (see :mod:`sfbow_common.data`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfbow_common.data import data_path, missing_data

BIAS_DIR = data_path("bias")


@pytest.fixture(scope="session")
def bias_dir() -> Path:
    if not (BIAS_DIR / "crows_pairs_anonymized.csv").is_file():
        pytest.skip(missing_data(BIAS_DIR / "crows_pairs_anonymized.csv"))
    return BIAS_DIR


@pytest.fixture(scope="session")
def winobias_dir(bias_dir: Path) -> Path:
    return bias_dir / "winobias"
