"""Smoke test of benchmarks/speed.py: it runs end to end and reports missing peers as skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"


@pytest.mark.slow
def test_speed_benchmark_runs_and_names_skipped_peers(stsb_dir, tmp_path):
    output = tmp_path / "speed.json"
    command = [sys.executable, str(SCRIPT), "--sentences", "3000", "--repeats", "1",
               "--memory-sentences", "5000", "--no-start", "--no-distilled", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["throughput"]["sfbow"]["wall"] > 0
    for peer in ("fse-sif", "model2vec"):  # present in the benchmark's own venv, skipped or measured here
        assert peer in results["throughput"] or peer in results["skipped"]
    assert {"1", "2"} <= set(results["threads"])
    assert set(results["memory"]) == {"float32", "float16", "on-the-fly"}
    for kind, memory in results["memory"].items():
        assert "error" not in memory, (kind, memory)
    assert output.with_suffix(".md").read_text().startswith("# sfbow encode speed")
