"""The finished results of a configuration, read only: where each run's file lives, reading it (refusing
another configuration's, migrating format 1), the learning-rate searches the finished tune runs replay
(:mod:`.tuning`), and the chain from a diverged run to its re-run (:mod:`.guard`). The report reads through
it; the scheduler (:class:`.scheduler.Study`) adds executing runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .config import READABLE_FORMATS, Run, StudyConfig, config_identity
from .guard import MAX_RETRIES, divergence
from .plan import NotReady, plan
from .tuning import Tuning, next_rate_down, search

TRAINED = ("tune", "full", "lora", "l1ra")  # the kinds whose runs train, so have a loss curve and a verdict


def migrate(result: dict[str, Any]) -> dict[str, Any]:
    """A format-1 result as format 2 reads it: the divergence verdict computed from its recorded losses (the
    guard is a function of the curve alone); what format 1 did not measure (plain-text forgetting) stays
    absent, and the report says so. The file's ``format`` stays 1."""
    if result.get("format") == 1 and "divergence" not in result and isinstance(result.get("losses"), list):
        result = {**result, "divergence": divergence(result["losses"])}
    return result


def diverged(result: dict[str, Any] | None) -> bool:
    return bool(result is not None and (result.get("divergence") or {}).get("diverged"))


class Results:
    """The result files of ``config`` under ``results_dir / config.data``."""

    def __init__(self, config: StudyConfig, results_dir: Path) -> None:
        self.config = config
        self.results_dir = results_dir / config.data
        self._read: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}

    def plan(self, n_adapters: int) -> list[Run]:
        """The grid's runs as far as the finished results decide it: see :func:`.plan.plan`."""
        return plan(self.config, n_adapters, self)

    def path(self, run: Run) -> Path:
        return self.results_dir / f"seed{run.seed}" / f"{run.name}.json"

    def read(self, path: Path) -> dict[str, Any]:
        """The run file at ``path``, checked (JSON, readable format, this configuration) and migrated; parsed
        once per version of the file. Callers that change a result write it back at once."""
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._read.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); delete it to recompute that run") from None
        if not isinstance(result, dict) or result.get("format") not in READABLE_FORMATS:
            found = result.get("format") if isinstance(result, dict) else type(result).__name__
            raise ValueError(f"{path} has run-file format {found!r}; this code reads formats "
                             f"{', '.join(map(str, READABLE_FORMATS))}: delete it to recompute that run")
        if config_identity(result.get("config")) != self.config.identity():
            raise ValueError(f"{path} was made with another configuration than this one; use another "
                             "--results-dir, or delete the folder to recompute")
        result = migrate(result)
        self._read[path] = (key, result)
        return result

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
        return self.read(path) if path.is_file() else None

    # ---- learning rates
    def configured_lrs(self, method: str) -> tuple[float, ...]:
        return {"full": self.config.full_lrs, "lora": self.config.lora_lrs, "l1ra": self.config.l1ra_lrs}[method]

    def tuning(self, method: str, rank: int | None = None) -> Tuning:
        """The learning-rate search of ``method`` (LoRA: at ``rank``, default ``tune_rank``) replayed from the
        finished tune runs of the first seed."""
        rank = None if rank == self.config.tune_rank else rank
        first = self.config.seeds[0]

        def lookup(lr: float) -> dict[str, Any] | None:
            return self.load(Run("tune", first, method=method, rank=rank, lr=lr))

        what = method if rank is None else f"{method} at rank {rank}"
        return search(self.configured_lrs(method), lookup, self.config.lr_extensions, what)

    def tuned_lr(self, method: str, rank: int | None = None) -> float:
        """The winning learning rate of :meth:`tuning`; NotReady while a tune run of its grid is missing."""
        state = self.tuning(method, rank)
        if state.winner is None:
            names = ", ".join(f"{lr:g}" for lr in state.missing)
            raise NotReady(f"the {method} learning rate is not tuned yet (tune runs at {names} missing)")
        return state.winner

    # ---- diverged runs
    def trained_lr(self, run: Run) -> float | None:
        """The rate ``run`` trains at (its own, else the tuned one); None while that is not tuned yet."""
        if run.lr is not None:
            return run.lr
        try:
            return self.tuned_lr(run.kind)  # lora-r<r> trains at the rate tuned at tune_rank
        except NotReady:
            return None

    def retry_of(self, run: Run) -> Run | None:
        """The re-run of ``run`` at the next rate down when ``run`` has finished and diverged, else None.
        Tune runs are not re-run (a diverged rate just cannot win); chains stop after MAX_RETRIES."""
        if run.kind not in ("full", "lora", "l1ra") or not diverged(self.load(run)):
            return None
        lr = self.trained_lr(run)
        if lr is None:
            return None
        rank = run.rank if run.kind == "lora" else None
        return dataclasses.replace(run, lr=next_rate_down(self.tuning(run.kind, rank).rates, lr))

    def chain(self, run: Run) -> list[Run]:
        """``run`` followed by its re-runs (each at the next rate down) while they diverge, at most
        MAX_RETRIES of them; the last one is the run whose numbers count for that cell."""
        runs = [run]
        while len(runs) <= MAX_RETRIES:
            retry = self.retry_of(runs[-1])
            if retry is None:
                break
            runs.append(retry)
        return runs

    def final(self, run: Run) -> tuple[Run, dict[str, Any]] | None:
        """The last run of :meth:`chain` and its result; None while it has not finished."""
        last = self.chain(run)[-1]
        result = self.load(last)
        return None if result is None else (last, result)
