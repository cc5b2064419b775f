"""The run grid of a configuration, and :class:`NotReady` (a run waits for another run's result).

The grid is static except where finished results decide it: the tune runs of a learning-rate grid extended
because its winner sat at an edge (:mod:`.tuning`), the per-rank arm at a rank's own tuned rate when that
is an extension, and the re-run of a diverged run at the next rate down (:mod:`.guard`). The scheduler
re-plans after every finished run, so these appear as soon as they are decided."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Run, StudyConfig
from .model import l1ra_budgets

if TYPE_CHECKING:
    from .store import Results


class NotReady(Exception):
    """A run needs the result of another run that has not finished yet."""


def plan(config: StudyConfig, n_adapters: int, results: Results | None = None) -> list[Run]:
    """Every run of ``config``'s grid, in the order that makes a partial grid most informative (base, full
    fine-tune, LoRA at the smallest and largest rank, ...); with ``results``, the runs they decide too."""
    budgets = l1ra_budgets(config, n_adapters)
    first = config.seeds[0]
    ranks = sorted(config.ranks)

    def tunes(method: str, rank: int | None = None) -> list[Run]:
        rates = (results.tuning(method, rank).rates if results is not None
                 else {"full": config.full_lrs, "lora": config.lora_lrs, "l1ra": config.l1ra_lrs}[method])
        rank = None if rank == config.tune_rank else rank
        return [Run("tune", first, method=method, rank=rank, lr=lr) for lr in rates]

    grid: list[Run] = [Run("detox-data", first)] if config.data == "detox" else []  # builds what the rest train on
    grid.append(Run("base", first))
    for seed in config.seeds:
        tuning = seed == first
        cells: list[Run] = []
        if tuning:
            cells += tunes("full")
        cells.append(Run("full", seed))
        if tuning:
            cells += tunes("lora")
        leading = list(dict.fromkeys([ranks[0], ranks[-1], *(r for r in (8,) if r in ranks)]))
        cells += [Run("lora", seed, rank=r) for r in leading]
        if tuning:
            cells += tunes("l1ra")
        cells.append(Run("l1ra", seed, budget=budgets[0]))
        cells += [Run("lora", seed, rank=r) for r in ranks if r not in leading]
        cells += [Run("l1ra", seed, budget=b) for b in budgets[1:]]
        cells += [Run("truncated", seed, rank=r) for r in config.truncation_ranks]
        if tuning and config.data != "detox":  # implementation checks: the bias arm has them, on sentences
            cells += [Run("check", seed, rank=config.tune_rank), Run("speed", seed, rank=config.tune_rank)]
        grid += cells
    if len(config.lora_lrs) > 1 or config.lr_extensions > 0:
        # The per-rank learning-rate arm: LoRA tuned on the dev fold at every rank (first seed), and trained
        # at every configured rate and at the rank's own tuned rate (every seed), so the report can show each
        # rank at its own best rate. The run at the rate tuned at rank tune_rank is lora-r<r> itself (see
        # Results.load).
        grid += [run for r in ranks if r != config.tune_rank for run in tunes("lora", r)]
        grid += [Run("lora", seed, rank=r, lr=lr) for seed in config.seeds for r in ranks for lr in arm_rates(config, r, results)]
    if results is None:
        return grid
    chained: list[Run] = []
    for run in grid:
        chained += results.chain(run)
    return list({(run.seed, run.name): run for run in chained}.values())


def arm_rates(config: StudyConfig, rank: int, results: Results | None) -> list[float]:
    """The rates the per-rank arm trains ``rank`` at: the configured ones and, once tuned, the rank's own."""
    rates = list(config.lora_lrs)
    if results is not None:
        winner = results.tuning("lora", rank).winner
        if winner is not None and winner not in rates:
            rates.append(winner)
    return rates
