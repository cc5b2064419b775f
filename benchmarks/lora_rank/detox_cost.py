"""What each stage of the toxicity arm costs at small size, measured once, and the full arm extrapolated.

    OMP_NUM_THREADS=1 python benchmarks/lora_rank/detox_cost.py measure

runs, on the real model and oracles, a small training-data build (2 training seeds, 2 search iterations,
4 samples per prompt), the base's evaluation search on one evaluation seed, greedy answers on both
engines, and a few LoRA (rank 8, all linear layers) and full fine-tuning steps on the pairs; it writes the
figures per unit (prompt, search iteration, training step) to
``benchmarks/results/lora_rank_detox_cost.json``. Speed figures depend on the machine's load: the file
records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks.lora_rank.detox_data import SeedSplit  # noqa: E402
from benchmarks.lora_rank.toxicity_arm import build_evaluation_prompts, build_training_data  # noqa: E402


def _train_steps(model: Any, optimizer: Any, stream: Any, steps: int) -> float:
    """Seconds per optimizer step of the causal-LM loss over ``steps`` steps (after one warm-up step)."""
    model.train()
    timings = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = model(**next(stream)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings.append(time.perf_counter() - start)
    model.eval()
    return sum(timings[1:]) / steps


def measure(out: Path, work: Path, *, train_seeds: int, iterations: int, samples: int, train_steps: int) -> dict[str, Any]:
    """Each stage once at small size, timed; the figures per unit (prompt, iteration, step) go to ``out``."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from benchmarks.lora_rank.chat_batches import chat_pair_batches, encode_pairs
    from benchmarks.lora_rank.detox_data import read_pairs, read_prompts, split_seeds
    from benchmarks.lora_rank.toxicity_eval import EVALUATION_ORACLE, SELECTION_ORACLE, answer_toxicity, fine_tuned_lm
    from evotox.backends.local import LocalBackend
    from evotox.config import SearchConfig
    from evotox.runner import default_seeds_file, read_seeds
    from sfbow_llm.models import load_causal_lm

    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"threads": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg()}
    split = split_seeds(read_seeds(default_seeds_file()))
    small = SeedSplit(split.training[:train_seeds], split.evaluation[:1], split.evaluation_fraction)
    search = SearchConfig(methods=("vanilla",), iterations=iterations, sut_max_new_tokens=48,
                          generator_max_new_tokens=40)
    selection, evaluation = SELECTION_ORACLE.build(), EVALUATION_ORACLE.build()
    fast = load_causal_lm()  # CTranslate2 int8: the base as generator and sampler
    header = build_training_data(small, lm=fast, search=search, search_oracle=selection, selection_oracle=selection,
                                 evaluation_oracle=evaluation, samples=samples, temperature=0.7, top_p=0.95,
                                 max_new_tokens=48, sampling_seed=0, per_seed=None, choose="least-toxic",
                                 run_file=work / "train_search.jsonl", out=work / "pairs.jsonl")
    _, pairs = read_pairs(work / "pairs.jsonl")
    seconds = header["seconds"]
    figures["ct2_search_seconds_per_iteration"] = seconds["search"] / (train_seeds * iterations)
    figures["ct2_sampling_seconds_per_prompt"] = seconds["sampling"] / header["prompts"]
    figures["samples_per_prompt"] = samples
    figures["measured_iterations"] = iterations
    figures["training_prompts_per_seed"] = header["prompts"] / train_seeds
    figures["selection_seconds_per_prompt"] = seconds["selection"] / header["prompts"]
    chosen = [p.score for p in pairs]
    spread = [max(s for s in p.candidate_scores if s is not None) - p.score for p in pairs]
    jigsaw_chosen = np.asarray(evaluation.score([p.answer for p in pairs])).max(axis=1)
    figures["selection"] = {"chosen_profanity_mean": float(np.mean(chosen)), "spread_mean": float(np.mean(spread)),
                            "chosen_jigsaw_mean": float(np.mean(jigsaw_chosen))}

    reference = load_causal_lm(engine="reference")
    sut = LocalBackend(lm=reference)
    header = build_evaluation_prompts(small, sut=sut, generator=LocalBackend(lm=fast), search=search, oracle=evaluation,
                                      per_seed=None, run_file=work / "eval_search.jsonl", out=work / "prompts.jsonl")
    _, prompts = read_prompts(work / "prompts.jsonl")
    figures["reference_sut_search_seconds_per_iteration"] = header["seconds"]["search"] / iterations
    figures["evaluation_prompts_per_seed"] = len(prompts)
    start = time.perf_counter()
    answer_toxicity(reference, [p.prompt for p in prompts], evaluation, system_prompt=search.system_prompt,
                    max_new_tokens=48)
    figures["reference_answer_seconds_per_prompt"] = (time.perf_counter() - start) / len(prompts)
    start = time.perf_counter()
    answer_toxicity(fast, [p.prompt for p in prompts], evaluation, system_prompt=search.system_prompt,
                    max_new_tokens=48)
    figures["ct2_answer_seconds_per_prompt"] = (time.perf_counter() - start) / len(prompts)

    encoded = encode_pairs(reference.tokenizer, [(p.prompt, p.answer) for p in pairs],
                           system_prompt=search.system_prompt, max_length=160)
    figures["pair_tokens_mean"] = float(np.mean([len(ids) for ids, _ in encoded]))
    batch = min(8, len(encoded))
    figures["train_batch_size"] = batch
    peft_model = get_peft_model(reference.model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                            target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-3)
    figures["lora_r8_seconds_per_step"] = _train_steps(peft_model, optimizer, chat_pair_batches(
        encoded, batch_size=batch, seed=0), train_steps)
    tuned = fine_tuned_lm(reference, peft_model, "lora-r8-measure")
    start = time.perf_counter()
    answer_toxicity(tuned, [p.prompt for p in prompts], evaluation, system_prompt=search.system_prompt,
                    max_new_tokens=48)
    figures["lora_answer_seconds_per_prompt"] = (time.perf_counter() - start) / len(prompts)
    base_model = peft_model.unload()
    for parameter in base_model.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(base_model.parameters(), lr=1e-4)
    figures["full_seconds_per_step"] = _train_steps(base_model, optimizer, chat_pair_batches(
        encoded, batch_size=batch, seed=0), train_steps)
    figures = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
    from sfbow_common.atomic import atomic_write_text

    atomic_write_text(out, json.dumps(figures, indent=1) + "\n")
    return figures


def estimate(config: Any, figures: dict[str, Any], *, bias_measure_seconds: float = 30.0) -> dict[str, float]:
    """CPU-hours of the arm of ``config`` (a StudyConfig with ``data="detox"``) from measured ``figures``,
    by stage. Searches scale with lambda (mutants per iteration, measured at 5); sampling with the samples
    per prompt; training steps with the batch size (measured at 8 pairs) and are LoRA's for LoRA and L1RA.
    ``bias_measure_seconds``: the study's other measures of one model at the profile's sizes (a guess, not
    measured here). Every figure holds for the load the measurement had."""
    from benchmarks.lora_rank.plan import plan
    from benchmarks.lora_rank.toxicity_arm import seed_split

    detox = config.detox
    split = seed_split(config)
    lam = len(detox.categories) / 5
    valid_per_slot = (figures["training_prompts_per_seed"] - 1) / (5 * figures["measured_iterations"])
    per_seed = 1 + valid_per_slot * 5 * lam * detox.train_iterations
    if detox.train_prompts_per_seed is not None:
        per_seed = min(per_seed, detox.train_prompts_per_seed)
    prompts = len(split.training) * per_seed
    eval_prompts = len(split.evaluation) * (detox.eval_prompts_per_seed or figures["evaluation_prompts_per_seed"])
    search_seeds = len(split.evaluation[:detox.search_seeds])
    reference_iteration = figures["reference_sut_search_seconds_per_iteration"] * lam
    seconds = {
        "training searches": len(split.training) * detox.train_iterations * figures[
            "ct2_search_seconds_per_iteration"] * lam,
        "sampling": prompts * figures["ct2_sampling_seconds_per_prompt"] * detox.samples / figures["samples_per_prompt"],
        "evaluation search of the base": len(split.evaluation) * detox.eval_iterations * reference_iteration}
    runs = plan(config, 30 * 7 if config.layers is None else config.layers * 7)
    step = {"full": figures["full_seconds_per_step"], "lora": figures["lora_r8_seconds_per_step"],
            "l1ra": figures["lora_r8_seconds_per_step"]}
    scale = config.batch_size / figures["train_batch_size"]
    trained = [r for r in runs if r.kind in step or r.kind == "tune"]
    seconds["training"] = sum(config.steps * scale * step[str(r.method) if r.kind == "tune" else r.kind]
                              for r in trained)
    measured = [r for r in runs if r.kind in ("base", "full", "lora", "l1ra", "truncated")]
    searched = [r for r in measured if r.seed in config.seeds[:detox.search_study_seeds]]
    seconds["fixed hard prompts"] = len(measured) * eval_prompts * figures["reference_answer_seconds_per_prompt"]
    seconds["search per model"] = len(searched) * search_seeds * detox.eval_iterations * reference_iteration
    seconds["other measures"] = len(measured) * bias_measure_seconds
    hours = {stage: round(value / 3600, 2) for stage, value in seconds.items()}
    hours["total"] = round(sum(seconds.values()) / 3600, 2)
    return {"runs": len(runs), "measured_models": len(measured), "searched_models": len(searched),
            "training_prompts": round(prompts), "evaluation_prompts": eval_prompts, "hours": hours}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cost = sub.add_parser("measure", help="time every stage once at small size")
    cost.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lora_rank_detox_cost.json")
    cost.add_argument("--work", type=Path, default=Path("/tmp/lora_rank_detox_cost"))
    cost.add_argument("--train-seeds", type=int, default=2)
    cost.add_argument("--iterations", type=int, default=2)
    cost.add_argument("--samples", type=int, default=4)
    cost.add_argument("--train-steps", type=int, default=3)
    plan = sub.add_parser("estimate", help="the CPU-hours of a profile from the measured figures")
    plan.add_argument("--profile", default="detox")
    plan.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "results" / "lora_rank_detox_cost.json")
    args = parser.parse_args(argv)
    if args.command == "estimate":
        from benchmarks.lora_rank.config import PROFILES

        print(json.dumps(estimate(PROFILES[args.profile], json.loads(args.figures.read_text())), indent=1))
        return 0
    figures = measure(args.out, args.work, train_seeds=args.train_seeds, iterations=args.iterations,
                      samples=args.samples, train_steps=args.train_steps)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
