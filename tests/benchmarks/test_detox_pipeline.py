"""The study's toxicity arm end to end at tiny size (profile ``detox-smoke``: 4 seeds split 2/2, one search
iteration of two mutants, two samples per prompt, 2 training steps of batch 2 on 2 layers): the data build,
the base, the full fine-tune and LoRA rank 1 with their tuning runs, resume without recomputing, and the
report's toxicity-retained table. It checks the pipeline, not the finding."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("peft")
pytest.importorskip("gguf")
pytest.importorskip("matplotlib")
pytest.importorskip("ctranslate2")

from benchmarks.lora_rank.cli import main
from benchmarks.lora_rank.config import PROFILES
from benchmarks.lora_rank.detox_data import read_pairs, read_prompts, seed_hash
from benchmarks.lora_rank.toxicity_arm import seed_split

RUNS = "detox-data,base,tune-full-lr0.0001,full,tune-lora-lr0.001,lora-r1"


@pytest.mark.slow
def test_the_toxicity_arm_builds_its_data_trains_measures_resumes_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results, cache, out = tmp_path / "results", tmp_path / "cache", tmp_path / "out"
    common = ["--profile", "detox-smoke", "--results-dir", str(results), "--cache-dir", str(cache)]
    assert main(["run", *common, "--only", RUNS]) == 0
    runs, data = results / "detox" / "seed0", cache / "detox"
    assert sorted(p.stem for p in runs.glob("*.json")) == sorted(RUNS.split(","))

    # The data: training pairs from the training seeds only, evaluation prompts from the others.
    split = seed_split(PROFILES["detox-smoke"])
    training, evaluation = {seed_hash(s) for s in split.training}, {seed_hash(s) for s in split.evaluation}
    assert training and evaluation and not training & evaluation
    header, pairs = read_pairs(data / "detox_pairs.jsonl")
    assert pairs and {p.seed_hash for p in pairs} <= training
    assert header["prompts"] == len(pairs) + header["dropped_without_answer"]
    assert header["selection_oracle"]["name"] == "profanity-check" and header["sampling"]["samples"] == 2
    assert header["model"]["engine"]["name"] == "ctranslate2" and len(header["model"]["sha256"]) == 64
    assert all(p.score == min(s for s in p.candidate_scores if s is not None) for p in pairs)
    prompt_header, prompts = read_prompts(data / "detox_eval_prompts.jsonl")
    assert prompts and {p.seed_hash for p in prompts} <= evaluation
    assert prompt_header["oracle"]["name"] == "jigsaw" and prompt_header["sut"]["engine"]["name"] == "reference"
    recorded = json.loads((runs / "detox-data.json").read_text())
    assert recorded["training"]["rows"] == len(pairs) and recorded["evaluation"]["rows"] == len(prompts)

    # Every measured model: toxicity on each fixed prompt and the best of its own search, apart by weights.
    measured = {name: json.loads((runs / f"{name}.json").read_text())["measures"]["detox"]
                for name in ("base", "full", "lora-r1")}
    for detox in measured.values():
        assert detox["hard_prompts"]["n"] == len(prompts) == len(detox["hard_prompts"]["scores"])
        assert detox["search"]["n"] == 1 and 0 <= detox["search"]["best"][0] <= 1
        assert (data / "detox_search" / detox["search"]["run_file"]).is_file()
    assert len({d["weights_sha256"] for d in measured.values()}) == 3
    for name in ("tune-full-lr0.0001", "tune-lora-lr0.001"):
        assert math.isfinite(json.loads((runs / f"{name}.json").read_text())["dev_nll"])

    # Resume: nothing is recomputed, no search file changes.
    stamps = {p: p.stat().st_mtime_ns for p in [*runs.glob("*.json"), *data.rglob("*.jsonl")]}
    capsys.readouterr()
    assert main(["run", *common, "--only", RUNS]) == 0
    assert "seed 0" not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in [*runs.glob("*.json"), *data.rglob("*.jsonl")]}

    assert main(["report", *common[:2], "--results-dir", str(results), "--out-dir", str(out)]) == 0
    text = (out / "lora_rank_bias_detox-smoke.md").read_text()
    assert "retained, hard prompts" in text and "| lora-r1" in text
    rows = json.loads((out / "lora_rank_bias_detox-smoke.json").read_text())["detox"]
    full = rows["full"]["seeds"][0]["hard_prompts_retained"]
    assert full["value"] == pytest.approx(0.0) or math.isnan(full["value"])  # the reference itself
    assert set(rows) == {"base", "full", "lora-r1"}
