"""The finished results of a configuration, read only: where each run's file lives, loading it (refusing
another configuration's), and the learning rates the finished tune runs pick. The report reads through it;
the scheduler (:class:`.scheduler.Study`) adds executing runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .config import FORMAT, Run, StudyConfig, config_identity
from .plan import NotReady, plan


class Results:
    """The result files of ``config`` under ``results_dir / config.data``."""

    def __init__(self, config: StudyConfig, results_dir: Path) -> None:
        self.config = config
        self.results_dir = results_dir / config.data

    def plan(self, n_adapters: int) -> list[Run]:
        """The grid's runs: see :func:`.plan.plan`."""
        return plan(self.config, n_adapters)

    def path(self, run: Run) -> Path:
        return self.results_dir / f"seed{run.seed}" / f"{run.name}.json"

    def load(self, run: Run) -> dict[str, Any] | None:
        """The finished result of ``run``, or None; a result of another configuration is an error. A LoRA run
        at the learning rate tuned at rank ``tune_rank`` is the grid's ``lora-r<r>`` run."""
        if run.kind == "lora" and run.lr is not None:
            try:
                if run.lr == self.tuned_lr("lora"):
                    return self.load(dataclasses.replace(run, lr=None))
            except NotReady:
                pass
        path = self.path(run)
        if not path.is_file():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); delete it to recompute that run") from None
        if (config_identity(result.get("config")) != self.config.identity()
                or result.get("format") != FORMAT):
            raise ValueError(f"{path} was made with another configuration than this one; use another "
                             "--results-dir, or delete the folder to recompute")
        return result

    def tuned_lr(self, method: str, rank: int | None = None) -> float:
        """The learning rate with the lowest dev-fold NLL among the finished tune runs of ``method`` (for LoRA,
        at ``rank``; default: ``tune_rank``)."""
        lrs = {"full": self.config.full_lrs, "lora": self.config.lora_lrs, "l1ra": self.config.l1ra_lrs}[method]
        rank = None if rank == self.config.tune_rank else rank
        scores = {}
        for lr in lrs:
            tune = Run("tune", self.config.seeds[0], method=method, rank=rank, lr=lr)
            result = self.load(tune)
            if result is None:
                raise NotReady(f"the {method} learning rate is not tuned yet ({tune.name} missing)")
            scores[lr] = result["dev_nll"]
        return min(scores, key=lambda lr: (scores[lr], lr))

