"""Benchmark l1ra_core.allocate: 10,000 adapters of rank 64, the budget kept at 64 per adapter.

Usage: python benchmarks/allocate.py [--adapters 10000] [--rank 64] [--repeats 50]

Prints the timings and writes them to benchmarks/results/allocate.json (atomically: a
temporary file in the same folder, then os.replace). Times are wall-clock milliseconds per
call; the figure to quote is the median.
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
from shared_utils.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "allocate.json"
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def realistic_gates(n_adapters: int, rank: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gates as L1RA leaves them mid-training: float32 in [0, 1]; in about a third of the
    adapters some 5% of the gates have reached exactly zero, the other adapters prune nothing."""
    rng = np.random.default_rng(seed)
    gates = rng.beta(2.0, 2.0, size=(n_adapters, rank)).astype(np.float32)
    pruning = rng.random(n_adapters) < 1 / 3
    gates[(rng.random((n_adapters, rank)) < 0.05) & pruning[:, None]] = 0.0
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
    args = parser.parse_args()

    gates = realistic_gates(args.adapters, args.rank)
    budget = args.adapters * args.rank
    max_rank = {name: 4 * args.rank for name in gates}
    plan = l1ra_core.allocate(gates, budget)

    scenarios = {
        "allocate": lambda: l1ra_core.allocate(gates, budget),
        "allocate_with_max_rank_mapping": lambda: l1ra_core.allocate(gates, budget, max_rank=max_rank),
        # what a backend pays on top to look at every adapter's AdapterPlan
        "materialise_all_adapter_plans": lambda: [a for a in plan.adapters.values() if a.changed],
    }
    timings = {name: time_ms(call, args.repeats) for name, call in scenarios.items()}
    result = {
        "benchmark": "l1ra_core.allocate",
        "adapters": args.adapters,
        "rank": args.rank,
        "budget": budget,
        "repeats": args.repeats,
        "plan": {"pruned": plan.pruned, "reassigned": plan.reassigned, "total_rank": plan.total_rank},
        "timings": timings,
        "environment": {
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }
    for name, timing in timings.items():
        print(
            f"{name:32s} median {timing['median_ms']:7.2f} ms  min {timing['min_ms']:7.2f} ms  "
            f"p90 {timing['p90_ms']:7.2f} ms  cpu median {timing['cpu_median_ms']:7.2f} ms"
        )
    atomic_write_text(RESULTS, json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
