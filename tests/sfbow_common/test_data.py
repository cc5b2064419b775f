"""The one data root: ``$SFBOW_DATA_DIR`` wins when set, else ``../shared`` beside the repository."""

from __future__ import annotations

from pathlib import Path

from sfbow_common.data import DATA_ENV, data_path, data_root, missing_data

REPOSITORY = Path(__file__).resolve().parents[2]


def test_environment_variable_then_the_documented_default(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_path("bias", "x.csv") == tmp_path / "bias" / "x.csv"
    monkeypatch.setenv(DATA_ENV, "  ")
    assert data_root() == REPOSITORY.parent / "shared"
    monkeypatch.delenv(DATA_ENV)
    assert data_root() == REPOSITORY.parent / "shared"
    reason = missing_data(tmp_path / "seeds.txt")
    assert str(tmp_path / "seeds.txt") in reason and DATA_ENV in reason
