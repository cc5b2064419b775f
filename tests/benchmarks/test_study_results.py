"""Run files across formats: the committed format-1 grid is read (migrated: a divergence verdict from its
losses), renders a report that leaves its diverged run out and says what changed; other formats and other
configurations are refused by name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from benchmarks.lora_rank.config import PROFILES, Run
from benchmarks.lora_rank.report import report
from benchmarks.lora_rank.store import Results

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "lora_rank_bias"
QUICK = PROFILES["quick"]


@pytest.fixture(scope="module")
def committed():
    if not (RESULTS / "winobias-anti" / "seed0" / "base.json").is_file():
        pytest.skip(f"{RESULTS} has no committed quick grid")
    return Results(QUICK, RESULTS)


def test_format_1_runs_are_migrated_and_the_diverged_one_chains_to_its_rerun(committed):
    diverged = committed.load(Run("lora", 1, rank=8))
    assert diverged["format"] == 1 and diverged["divergence"]["diverged"]
    assert committed.chain(Run("lora", 1, rank=8)) == [Run("lora", 1, rank=8), Run("lora", 1, rank=8, lr=1e-3)]
    assert committed.load(Run("lora", 0, rank=8))["divergence"]["diverged"] is False
    assert committed.tuned_lr("lora") == 3e-3 and committed.tuning("lora").at_edge == "top"
    n_adapters = 30 * 7
    assert all(committed.load(run) is not None for run in committed.plan(n_adapters))  # nothing to recompute


def test_the_committed_grid_renders_with_the_diverged_run_left_out(committed, tmp_path):
    target = report(QUICK, RESULTS, tmp_path, "quick", "quick")
    text = target.read_text()
    assert "Partial grid" not in text and "73 of 73 runs are of run-file format 1" in text
    assert "| lora-r8 |    1 | 0.003 |    8 | spike without recovery" in text
    row = next(line for line in text.splitlines() if line.startswith("| lora-r8 "))
    assert "(n=2*)" in row and "(n=3*)" not in row
    summary = json.loads((tmp_path / "quick.json").read_text())
    assert [e["seed"] for e in summary["rows"]["lora-r8"]["seeds"]] == [0, 2]
    assert summary["tuning"]["full"]["at_edge"] == "top"
    assert (tmp_path / "quick_loss.png").stat().st_size > 1000


def test_other_formats_and_configurations_are_refused(committed, tmp_path):
    folder = tmp_path / "winobias-anti" / "seed0"
    folder.mkdir(parents=True)
    shutil.copy(RESULTS / "winobias-anti" / "seed0" / "base.json", folder / "base.json")
    copy = Results(QUICK, tmp_path)
    assert copy.load(Run("base", 0)) is not None
    with pytest.raises(ValueError, match="another configuration"):  # format 1 made without extensions
        Results(dataclasses.replace(QUICK, lr_extensions=1), tmp_path).load(Run("base", 0))
    result = json.loads((folder / "base.json").read_text())
    (folder / "base.json").write_text(json.dumps({**result, "format": 3}))
    with pytest.raises(ValueError, match="run-file format 3; this code reads formats 1, 2"):
        Results(QUICK, tmp_path).load(Run("base", 0))
    (folder / "base.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        Results(QUICK, tmp_path).load(Run("base", 0))
