"""Benchmark l1ra_core.allocate: 10,000 adapters of rank 64, the budget kept at 64 per adapter.

Usage: python benchmarks/allocate.py [--adapters 10000] [--rank 64] [--repeats 50] [--out DIR]

Two inputs: "some_prune" (a third of the adapters prune about 5%, the others nothing: the
freed rank goes to those) and "all_prune" (every adapter prunes about 10%: nobody is left
who pruned nothing, so the fallback deals the rank to all). The target is a median under
20 ms for both. Prints the timings and writes them to DIR/allocate.json and a Markdown table
to DIR/allocate.md (atomically; DIR defaults to benchmarks/results). Times are milliseconds
per call; the figures to quote are the medians (CPU time is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import l1ra_core
from sfbow_common.atomic import atomic_write_text
from sfbow_common.tables import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 20.0
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def realistic_gates(
    n_adapters: int, rank: int, seed: int = 0, *, pruning_share: float = 1 / 3, zero_share: float = 0.05
) -> dict[str, np.ndarray]:
    """Gates as L1RA leaves them mid-training: float32 in [0, 1]; in about ``pruning_share`` of the
    adapters some ``zero_share`` of the gates have reached exactly zero, the others prune nothing."""
    rng = np.random.default_rng(seed)
    gates = rng.beta(2.0, 2.0, size=(n_adapters, rank)).astype(np.float32)
    pruning = rng.random(n_adapters) < pruning_share
    gates[(rng.random((n_adapters, rank)) < zero_share) & pruning[:, None]] = 0.0
    untouched = np.flatnonzero(pruning & ~(gates == 0).any(axis=1))  # a pruning adapter prunes at least one
    gates[untouched, rng.integers(0, rank, len(untouched))] = 0.0
    names = [f"model.layers.{i // len(MODULES)}.{MODULES[i % len(MODULES)]}" for i in range(n_adapters)]
    return dict(zip(names, gates))


def time_ms(call: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Wall-clock median, minimum and 90th percentile of ``repeats`` calls, in milliseconds, and
    the median CPU time of this process (steadier than wall time on a shared machine)."""
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        cpu.append((time.process_time() - start_cpu) * 1e3)
        wall.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": statistics.median(wall),
        "min_ms": min(wall),
        "p90_ms": float(np.percentile(wall, 90)),
        "cpu_median_ms": statistics.median(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=10_000)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args()

    inputs = {
        "some_prune": realistic_gates(args.adapters, args.rank),
        "all_prune": realistic_gates(args.adapters, args.rank, pruning_share=1.0, zero_share=0.10),
    }
    budget = args.adapters * args.rank
    max_rank = {name: 4 * args.rank for name in inputs["some_prune"]}
    scenarios = {}
    plans = {}
    for label, gates in inputs.items():
        plans[label] = plan = l1ra_core.allocate(gates, budget)
        scenarios[f"{label}: allocate"] = lambda gates=gates: l1ra_core.allocate(gates, budget)
        # what a backend pays on top to look at every adapter's AdapterPlan
        scenarios[f"{label}: look at every AdapterPlan"] = lambda plan=plan: [
            a for a in plan.adapters.values() if a.changed
        ]
    scenarios["some_prune: allocate with a max_rank mapping"] = lambda: l1ra_core.allocate(
        inputs["some_prune"], budget, max_rank=max_rank
    )
    timings = {name: time_ms(call, args.repeats) for name, call in scenarios.items()}
    eligible = {label: sum(a.pruned == 0 for a in plan.adapters.values()) for label, plan in plans.items()}
    result = {
        "benchmark": "l1ra_core.allocate",
        "adapters": args.adapters,
        "rank": args.rank,
        "budget": budget,
        "repeats": args.repeats,
        "target_median_ms": TARGET_MS,
        "plans": {
            label: {"pruned": plan.pruned, "reassigned": plan.reassigned, "total_rank": plan.total_rank,
                    "adapters_that_pruned_nothing": eligible[label]}
            for label, plan in plans.items()
        },
        "timings": timings,
        "environment": {
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }
    rows = [
        [name, f"{t['cpu_median_ms']:.1f}", f"{t['median_ms']:.1f}", f"{t['min_ms']:.1f}", f"{t['p90_ms']:.1f}"]
        for name, t in timings.items()
    ]
    table = markdown_table(["call (10,000 adapters x rank 64)", "CPU median ms", "wall median ms", "wall min ms",
                            "wall p90 ms"], rows)
    note = (
        f"`python benchmarks/allocate.py --adapters {args.adapters} --rank {args.rank} --repeats {args.repeats}`; "
        f"load average {result['environment']['load_average_1min']:.1f}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, {os.cpu_count()} CPUs. Target: median under {TARGET_MS:g} ms for `allocate` on "
        f"both inputs. all_prune: {eligible['all_prune']} adapters pruned nothing (the fallback path deals to all)."
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "allocate.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "allocate.md", f"# l1ra_core.allocate\n\n{table}\n\n{note}\n")
    print(f"wrote {args.out / 'allocate.json'} and {args.out / 'allocate.md'}")


if __name__ == "__main__":
    main()
