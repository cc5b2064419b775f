"""The toxicity arm's two offline builds, and a measurement of what each stage costs at small size.

- :func:`build_training_data`: EvoTox searches on the training seeds against the base, the hard prompts
  they asked, sampled answers, the least toxic kept (selection oracle), written as a detox pairs file.
- :func:`build_evaluation_prompts`: the base's EvoTox search on the evaluation seeds (evaluation oracle),
  whose prompts become the fixed hard-prompt set; the search is also the base's row of the per-model
  search measure.

Each file's header records the seeds (text and hash), the split, the search settings, the sizes, the
oracles, the model's identity (``describe()``: name, SHA-256, engine) and the seconds each stage took.

    OMP_NUM_THREADS=1 python benchmarks/lora_rank/toxicity_arm.py measure   # stage costs at small size

writes ``benchmarks/results/lora_rank_detox_cost.json`` (figures per prompt, per search iteration, per
training step) and prints the extrapolation to the full arm.
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

from benchmarks.lora_rank.detox_data import (  # noqa: E402
    SeedSplit,
    build_pairs,
    hard_prompts,
    run_search,
    sample_answers,
    seed_hash,
    write_pairs,
    write_prompts,
)
from benchmarks.lora_rank.toxicity_eval import check_apart  # noqa: E402

__all__ = ["build_evaluation_prompts", "build_training_data"]


def _seeds(seeds: Sequence[str]) -> list[dict[str, str]]:
    return [{"text": seed, "hash": seed_hash(seed)} for seed in seeds]


def build_training_data(split: SeedSplit, *, lm: Any, search: Any, search_oracle: Any, selection_oracle: Any,
                        evaluation_oracle: Any, samples: int, temperature: float, top_p: float,
                        max_new_tokens: int, sampling_seed: int, per_seed: int | None, choose: str,
                        run_file: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Build the detox pairs of ``split.training`` with the base ``lm`` (any engine; it is SUT and generator
    of the searches and samples the answers) and write them to ``out``; returns the file's header.
    ``evaluation_oracle`` is only checked to be apart from ``selection_oracle``."""
    from evotox.backends.local import LocalBackend

    check_apart(selection_oracle, evaluation_oracle)
    backend = LocalBackend(lm=lm)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    _, records = run_search(split.training, search, sut=backend, generator=backend, oracle=search_oracle,
                            run_file=run_file)
    prompts = hard_prompts(records, split.training, per_seed=per_seed)
    seconds["search"] = time.perf_counter() - start
    start = time.perf_counter()
    answers = sample_answers(lm, [p.prompt for p in prompts], samples=samples, system_prompt=search.system_prompt,
                             max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             seed=sampling_seed)
    seconds["sampling"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs, dropped = build_pairs(prompts, answers, selection_oracle, choose=choose)
    seconds["selection"] = time.perf_counter() - start
    header = {"seeds": _seeds(split.training), "split": split.describe(), "search": search.to_dict(),
              "search_run_file": Path(run_file).name, "search_oracle": search_oracle.describe(),
              "selection_oracle": selection_oracle.describe(), "model": backend.describe(),
              "sampling": {"samples": samples, "temperature": temperature, "top_p": top_p,
                           "max_new_tokens": max_new_tokens, "seed": sampling_seed, "per_seed": per_seed,
                           "system_prompt": search.system_prompt},
              "choose": choose, "prompts": len(prompts), "dropped_without_answer": dropped,
              "seconds": {k: round(v, 2) for k, v in seconds.items()}}
    write_pairs(out, pairs, header)
    return header


def build_evaluation_prompts(split: SeedSplit, *, sut: Any, generator: Any, search: Any, oracle: Any,
                             per_seed: int | None, run_file: str | os.PathLike[str],
                             out: str | os.PathLike[str]) -> dict[str, Any]:
    """The base's (``sut``: an evotox backend over the base on the engine every SUT is measured on) search on
    ``split.evaluation`` with ``generator`` and the evaluation ``oracle``; its hard prompts (``per_seed``
    most toxic per seed) are written to ``out``; returns the header, with the base's best fitness per seed."""
    start = time.perf_counter()
    results, records = run_search(split.evaluation, search, sut=sut, generator=generator, oracle=oracle,
                                  run_file=run_file)
    prompts = hard_prompts(records, split.evaluation, per_seed=per_seed)
    best = {r.seed_index: r.best.fitness for r in results if r.method == search.methods[0]}
    header = {"seeds": _seeds(split.evaluation), "split": split.describe(), "search": search.to_dict(),
              "search_run_file": Path(run_file).name, "oracle": oracle.describe(), "sut": sut.describe(),
              "generator": generator.describe(), "per_seed": per_seed,
              "base_search_best": [best[i] for i in range(len(split.evaluation))],
              "seconds": {"search": round(time.perf_counter() - start, 2)}}
    write_prompts(out, prompts, header)
    return header


# ------------------------------------------------------------------------------------------ stage costs
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
    from llmkit.models import load_causal_lm

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
    from shared_utils.atomic import atomic_write_text

    atomic_write_text(out, json.dumps(figures, indent=1) + "\n")
    return figures


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
    args = parser.parse_args(argv)
    figures = measure(args.out, args.work, train_seeds=args.train_seeds, iterations=args.iterations,
                      samples=args.samples, train_steps=args.train_steps)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
