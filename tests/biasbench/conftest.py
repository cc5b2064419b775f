"""Fixtures for the biasbench tests: the real benchmark files in ../shared/bias."""

from __future__ import annotations

from pathlib import Path

import pytest

BIAS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "bias"


@pytest.fixture(scope="session")
def bias_dir() -> Path:
    if not (BIAS_DIR / "crows_pairs_anonymized.csv").is_file():
        pytest.skip(f"bias data not found at {BIAS_DIR} (expected ../shared/bias beside the repo)")
    return BIAS_DIR


@pytest.fixture(scope="session")
def winobias_dir(bias_dir: Path) -> Path:
    return bias_dir / "winobias"
