"""Smoke test of benchmarks/l1ra_minilm.py: every method trains, and the results files are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "l1ra_minilm.py"


@pytest.mark.slow
def test_benchmark_runs_end_to_end(minilm_path, stsb_dir, tmp_path):
    pytest.importorskip("peft")
    command = [sys.executable, str(SCRIPT), "--steps", "4", "--batch-size", "4", "--max-length", "16",
               "--update-fraction", "0.5", "--memory-steps", "1", "--dev-limit", "16", "--device", "cpu",
               "--sts-dir", str(stsb_dir), "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| l1ra |" in done.stdout and "| adalora |" in done.stdout
    results = json.loads((tmp_path / "l1ra_minilm.json").read_text())["results"]
    assert set(results) == {"lora", "adalora", "l1ra"}
    assert sum(results["l1ra"]["final_ranks"].values()) == results["l1ra"]["budget"] == 8 * 36
    assert (tmp_path / "l1ra_minilm.md").is_file() and (tmp_path / "l1ra_minilm_ranks.png").is_file()
