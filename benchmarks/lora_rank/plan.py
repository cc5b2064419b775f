"""The run grid of a configuration, and :class:`NotReady` (a run waits for another run's result)."""

from __future__ import annotations

from .config import Run, StudyConfig
from .model import l1ra_budgets


class NotReady(Exception):
    """A run needs the result of another run that has not finished yet."""


def plan(config: StudyConfig, n_adapters: int) -> list[Run]:
    """Every run of ``config``'s grid, in the order that makes a partial grid most informative (base, full
    fine-tune, LoRA at the smallest and largest rank, ...)."""
    budgets = l1ra_budgets(config, n_adapters)
    first = config.seeds[0]
    plan: list[Run] = [Run("detox-data", first)] if config.data == "detox" else []  # builds what the rest train on
    plan.append(Run("base", first))
    for seed in config.seeds:
        tuning = seed == first
        cells: list[Run] = []
        if tuning:
            cells += [Run("tune", seed, method="full", lr=lr) for lr in config.full_lrs]
        cells.append(Run("full", seed))
        if tuning:
            cells += [Run("tune", seed, method="lora", lr=lr) for lr in config.lora_lrs]
        ranks = sorted(config.ranks)
        leading = list(dict.fromkeys([ranks[0], ranks[-1], *(r for r in (8,) if r in ranks)]))
        cells += [Run("lora", seed, rank=r) for r in leading]
        if tuning:
            cells += [Run("tune", seed, method="l1ra", lr=lr) for lr in config.l1ra_lrs]
        cells.append(Run("l1ra", seed, budget=budgets[0]))
        cells += [Run("lora", seed, rank=r) for r in ranks if r not in leading]
        cells += [Run("l1ra", seed, budget=b) for b in budgets[1:]]
        cells += [Run("truncated", seed, rank=r) for r in config.truncation_ranks]
        if tuning and config.data != "detox":  # implementation checks: the bias arm has them, on sentences
            cells += [Run("check", seed, rank=config.tune_rank), Run("speed", seed, rank=config.tune_rank)]
        plan += cells
    if len(config.lora_lrs) > 1:
        # The per-rank learning-rate arm: LoRA tuned on the dev fold at every rank (first seed), and trained
        # at every candidate rate (every seed), so the report can show each rank at its own best rate. The
        # run at the rate tuned at rank tune_rank is lora-r<r> itself (see load).
        ranks = sorted(config.ranks)
        plan += [Run("tune", first, method="lora", rank=r, lr=lr)
                 for r in ranks if r != config.tune_rank for lr in config.lora_lrs]
        plan += [Run("lora", seed, rank=r, lr=lr) for seed in config.seeds for r in ranks for lr in config.lora_lrs]
    return plan

