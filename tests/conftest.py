"""Shared test fixtures: where the real STS data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ``../shared/sts/stsbenchmark`` beside the repository, as CI lays it out.
STSB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "sts" / "stsbenchmark"


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-dev.csv").is_file():
        pytest.skip(f"STS Benchmark not found at {STSB_DIR} (expected ../shared/sts/stsbenchmark beside the repo)")
    return STSB_DIR
