"""The study (package ``benchmarks/lora_rank``, run through its documented entry point
``benchmarks/lora_rank_bias.py``) end to end on the smoke configuration: every run, the report, resume (a
killed worker, a second and a third call that recompute nothing), the divergence guard (the smoke grid's
LoRA rate 1000 diverges on purpose: marked, never measured, re-run at the next rate down), learning-rate grids
extended at an edge, and refusals.

Tiny on purpose (2 steps of batch 2, 2 layers adapted, a few pairs): it checks the pipeline, not the finding.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("peft")
pytest.importorskip("gguf")
pytest.importorskip("matplotlib")

from benchmarks.lora_rank.cli import main
from benchmarks.lora_rank.config import PROFILES, Run
from benchmarks.lora_rank.scheduler import Study

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "lora_rank_bias.py"


def _run(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_smoke_grid_is_resumable_and_reported(tmp_path, capsys, monkeypatch):
    results, cache, out = tmp_path / "results", tmp_path / "cache", tmp_path / "out"
    common = ["--profile", "smoke", "--results-dir", str(results), "--cache-dir", str(cache)]
    runs = results / "winobias-anti" / "seed0"

    # Kill the grid right after its first result: nothing half-written, and the next call resumes.
    first = _run("run", *common)
    deadline = time.monotonic() + 600
    while not (runs / "base.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (runs / "base.json").exists()
    finished_base = (runs / "base.json").stat().st_mtime_ns
    for path in runs.glob("*.json"):
        json.loads(path.read_text())  # every result present is whole

    second = _run("run", *common)
    log, _ = second.communicate(timeout=1800)  # minutes on a quiet machine; a shared one is slower
    assert second.returncode == 0, log
    assert "seed 0 base" not in log  # a finished run is never recomputed
    assert (runs / "base.json").stat().st_mtime_ns == finished_base
    study = Study(PROFILES["smoke"], results, cache)
    plan = study.plan(14)
    tuned = study.tuned_lr("lora")
    aliases = {r.name for r in plan if r.kind == "lora" and r.lr == tuned}  # lora-r<r> at the tuned rate itself
    assert aliases and all(study.load(r) is not None for r in plan)
    assert sorted(p.name for p in runs.glob("*.json")) == sorted(f"{r.name}.json" for r in plan if r.name not in aliases)
    assert not list(runs.glob(".*"))  # no temporary files left behind
    # More seeds extend the grid: the finished runs still count; another first seed (tuning) does not.
    extended = Study(dataclasses.replace(PROFILES["smoke"], seeds=(0, 1)), results, cache)
    assert extended.load(Run("base", 0)) is not None
    with pytest.raises(ValueError, match="another configuration"):
        Study(dataclasses.replace(PROFILES["smoke"], seeds=(1, 0)), results, cache).load(Run("base", 0))

    # The divergence guard: LoRA at rate 1000 blows up; its tune rate cannot win, its runs are re-run at 3e-3.
    tune = json.loads((runs / "tune-lora-lr1000.json").read_text())
    assert tune["divergence"]["diverged"] and tune["dev_nll"] is None and tune["format"] == 2
    assert study.tuning("lora").scores[1000.0] is None and tune_lr_is_not(1000.0, study)
    for rank in (1, 2):
        blown = Run("lora", 0, rank=rank, lr=1000.0)
        result = study.load(blown)
        assert result["divergence"]["diverged"] and "measures" not in result
        assert study.retry_of(blown) == Run("lora", 0, rank=rank, lr=3e-3)
        assert study.load(study.retry_of(blown))["measures"]["plain_nll"] > 0
    # One-rate grids were extended once (their winner was at both edges), and the report says where it is.
    for method in ("full", "l1ra"):
        state = study.tuning(method)
        assert len(state.extensions) == 1 and len(state.rates) == 2 and state.winner is not None

    check = json.loads((runs / "check-r2.json").read_text())
    assert check["max_loss_difference"] < 1e-4 and check["max_gap_difference"] < 1e-3
    full = json.loads((runs / "full.json").read_text())
    assert full["measures"]["kl_to_base"] > 0 and full["measures"]["kl_to_full"] == pytest.approx(0, abs=1e-3)
    assert len(full["spectra"]["energy_kept"]) == 14
    assert all(0 < e["1"] <= e["128"] <= 1 for e in full["spectra"]["energy_kept"].values())
    l1ra = json.loads((runs / "l1ra-b28.json").read_text())
    assert sum(l1ra["adapters"]["ranks"].values()) == 28
    base = json.loads((runs / "base.json").read_text())
    assert base["measures"]["winobias"]["n"] == 6 and base["measures"]["crows"]["gender"]["n"] == 3
    assert base["measures"]["gaps"]["crows_types"].count("gender") == 3  # each pair's type, for the selection

    # The calls after the first two run in this process (as main() from the entry point): a new process costs
    # the torch and transformers imports again, and the kill above already tests a separate process.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    capsys.readouterr()
    assert main(["report", "--profile", "smoke", "--results-dir", str(results), "--out-dir", str(out)]) == 0
    text = (out / "lora_rank_bias_smoke.md").read_text()
    assert "Partial grid" not in text and "| lora-r2" in text and "PEFT LoRA vs l1ra_core" in text
    assert "Speed (rank 2 budget" in text and "learning rate tuned at each rank" in text
    assert "Diverged runs" in text and re.search(r"\| lora-r1-lr1000 +\| +0 \| +1000 \|", text)
    assert re.search(r"\| tune-lora-lr1000 +\|", text)
    assert "Learning-rate tuning" in text and "(1 seed, no interval)" in text
    assert "pre-registered selection on seed0/base" in text and "each pair's type" not in text  # per-pair types
    assert "CrowS-Pairs, descriptive (no power at this n)" in text  # 6 pairs: no type can pass
    for name in ("bias_vs_rank", "energy", "l1ra_vs_oracle", "loss"):
        assert (out / f"lora_rank_bias_smoke_{name}.png").stat().st_size > 1000

    # A cleared cache (KL references, full updates) is rebuilt from the cached weights, never measured as None.
    truncated = json.loads((runs / "truncated-r1.json").read_text())["measures"]
    (runs / "truncated-r1.json").unlink()
    for path in [*cache.rglob("kl_reference_*"), *cache.rglob("full_deltas_*")]:
        path.unlink()
    assert main(["run", *common]) == 0
    redone = json.loads((runs / "truncated-r1.json").read_text())["measures"]
    for name in ("kl_to_base", "kl_to_full"):
        assert redone[name] == pytest.approx(truncated[name], rel=1e-4, abs=1e-6), name

    # A finished grid is finished: another call recomputes nothing and rewrites no file.
    stamps = {path: path.stat().st_mtime_ns for path in runs.glob("*.json")}
    capsys.readouterr()
    assert main(["run", *common]) == 0
    assert "] seed 0 " not in capsys.readouterr().out and {path: path.stat().st_mtime_ns for path in runs.glob("*.json")} == stamps

    # Another configuration never mixes with finished results.
    with pytest.raises(ValueError, match="made with another configuration"):
        main(["run", *common, "--steps", "3"])


def tune_lr_is_not(rate, study):
    return study.tuned_lr("lora") != rate and all(study.tuned_lr("lora", r) != rate for r in (1, 2))


@pytest.mark.slow
def test_bad_grid_arguments_fail_before_training(tmp_path):
    common = ["run", "--profile", "smoke", "--results-dir", str(tmp_path), "--cache-dir", str(tmp_path)]
    with pytest.raises(ValueError, match=r"ranks: rank 500 exceeds min\(out, in\) = 192 of .*k_proj"):
        main([*common, "--ranks", "1,500"])
    with pytest.raises(ValueError, match=r"budget 5 is below the number of adapters \(14\)"):
        main([*common, "--l1ra-budgets", "5"])
    with pytest.raises(SystemExit):
        main([*common, "--ranks", "0"])
    assert not list(tmp_path.rglob("*.json"))
