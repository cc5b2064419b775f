"""The speed comparison: step time and peak memory of L1RA against PEFT LoRA at the same budget, each
method measured by a fresh worker process (``lora_rank_bias.py speed-worker``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import ENTRY, PROFILES, Run
from .model import load_base, projections
from .training import prepare

if TYPE_CHECKING:
    from .scheduler import Study


def run_speed(study: Study, run: Run) -> dict[str, Any]:
    """Step time and peak memory of L1RA vs PEFT LoRA at the same budget, each in a fresh process,
    alternated twice (the best of each counts); targets 1.02x time and 1.03x memory."""
    assert run.rank is not None
    measured: dict[str, list[dict[str, float]]] = {"lora": [], "l1ra": []}
    alternations = 2 if study.config.speed_steps >= 5 else 1  # the smoke profile measures each once
    for method in ("lora", "l1ra") * alternations:
        command = [sys.executable, str(ENTRY), "speed-worker", "--method", method,
                   "--rank", str(run.rank), "--steps", str(study.config.speed_steps), "--length",
                   str(study.config.speed_length), "--batch-size", str(study.config.batch_size),
                   "--layers", str(study.config.layers or 0)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ}).stdout
        measured[method].append(json.loads(output.strip().splitlines()[-1]))
    best = {m: {"step_seconds": min(r["step_seconds"] for r in rows), "peak_rss_mb": min(r["peak_rss_mb"] for r in rows)}
            for m, rows in measured.items()}
    return {"measured": measured, "best": best,
            "time_ratio": best["l1ra"]["step_seconds"] / best["lora"]["step_seconds"],
            "memory_ratio": best["l1ra"]["peak_rss_mb"] / best["lora"]["peak_rss_mb"],
            "targets": {"time_ratio": 1.02, "memory_ratio": 1.03}}


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def speed_worker(method: str, rank: int, steps: int, length: int, batch_size: int, layers: int) -> None:
    """One process, one method: median step time after 2 warm-up steps, and the peak resident memory while
    training (sampled by a thread; loading the model can peak higher and is not what is compared)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = dataclasses.replace(PROFILES["study"], batch_size=batch_size, layers=layers or None)
    model = load_base().model
    n_adapters = len(projections(model, config))
    run = Run(method, 0, rank=rank, budget=rank * n_adapters)
    model, optimizer, _ = prepare(method, model, config, run, 1e-3, steps + 2)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 49152, (batch_size, length), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids}
    model.train()
    times, resident = [], [resident_mb()]
    done = threading.Event()

    def sample() -> None:  # the training phase's resident memory, every 2 ms
        while not done.wait(0.002):
            resident.append(resident_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for step in range(steps + 2):
        started = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - started)
    done.set()
    sampler.join()
    peak = max(resident)
    print(json.dumps({"step_seconds": float(np.median(times)), "peak_rss_mb": peak, "steps": steps}))


