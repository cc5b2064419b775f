"""The study's settings: :class:`StudyConfig` (everything that decides a run's numbers), the named
:data:`PROFILES`, and :class:`Run` (one cell of the grid, which names its result file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sfbow_common.checks import check_choice, check_int, check_positive_int, check_real
from sfbow_common.data import data_root
from sfbow_common.records import Record, set_checked

from .detox_config import DetoxConfig

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "benchmarks" / "lora_rank_bias.py"  # the documented entry point (also the speed worker's)
SHARED = data_root()
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DATASETS = ("winobias-anti", "cda-stsb", "detox")  # detox: the toxicity arm (see .toxicity_arm)
METHODS = ("full", "lora", "l1ra")
RESULTS = ROOT / "benchmarks" / "results"
FORMAT = 2  # version of the run files; 2 adds the divergence verdict, plain-text forgetting, grid extensions
READABLE_FORMATS = (1, FORMAT)  # format-1 files are migrated on read (see store.migrate)
# Settings added after format 1, with the value every format-1 run was made under (absent from those files).
LEGACY_SETTINGS: dict[str, Any] = {"lr_extensions": 0}


# --------------------------------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class StudyConfig(Record):
    """Everything that decides a run's numbers; recorded in every run file (:meth:`to_dict`) and checked on
    resume."""

    data: str = "winobias-anti"
    steps: int = 100
    batch_size: int = 8
    max_length: int = 64
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    l1ra_ranks: tuple[int, ...] = (8, 4)
    l1ra_budgets: tuple[int, ...] = ()  # total budgets; empty: rank x number of adapters for each l1ra_rank
    truncation_ranks: tuple[int, ...] = (1, 8, 32)
    seeds: tuple[int, ...] = (0, 1)
    full_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4)
    lora_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    l1ra_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    lr_extensions: int = 2  # at most this many x3 or /3 steps added to a grid whose winner is at an edge
    tune_rank: int = 8
    dev_fraction: float = 0.1
    gate_lr: float = 5e-2
    l1_lambda: float = 0.5
    update_fraction: float = 0.1
    layers: int | None = None  # adapt and analyse only the first N layers (None: all 30)
    winobias_pairs: int | None = None  # None: all 792 test pairs
    crows_pairs: int | None = None  # None: all 1508 pairs; else half gender, half the rest
    kl_pairs: int = 64
    sts_sentences: int = 200
    toxicity_seeds: int = 10
    max_new_tokens: int = 32
    eval_batch_size: int = 16
    bootstrap: int = 2000
    check_steps: int = 5
    speed_steps: int = 10
    speed_length: int = 64
    detox: DetoxConfig | None = None  # the toxicity arm's settings: DetoxConfig() by default with data="detox"

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {"data": check_choice(self.data, "data", DATASETS)}
        if self.data == "detox":
            checked["detox"] = self.detox if self.detox is not None else DetoxConfig()
            if not isinstance(checked["detox"], DetoxConfig):
                raise TypeError(f"detox must be a DetoxConfig, got {type(self.detox).__name__}")
        elif self.detox is not None:
            raise ValueError(f"detox settings apply to data='detox' only, not to data={self.data!r}")
        for name in ("steps", "batch_size", "max_length", "tune_rank", "kl_pairs", "eval_batch_size", "bootstrap",
                     "check_steps", "speed_steps", "speed_length", "max_new_tokens"):
            checked[name] = check_positive_int(getattr(self, name), name)
        for name in ("sts_sentences", "toxicity_seeds", "lr_extensions"):
            checked[name] = check_int(getattr(self, name), name, minimum=0)
        for name in ("ranks", "l1ra_ranks", "l1ra_budgets", "truncation_ranks", "seeds"):
            values = tuple(getattr(self, name))
            if name != "l1ra_budgets" and name != "truncation_ranks" and not values:
                raise ValueError(f"{name} is empty; give at least one value")
            checked[name] = tuple(check_int(value, name, minimum=0 if name == "seeds" else 1) for value in values)
        for name in ("full_lrs", "lora_lrs", "l1ra_lrs"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty; give at least one learning rate")
            checked[name] = tuple(check_real(value, name, minimum=0.0, exclusive_minimum=True)
                                  for value in getattr(self, name))
        checked["dev_fraction"] = check_real(self.dev_fraction, "dev_fraction", minimum=0.0, maximum=0.5,
                                             exclusive_minimum=True)
        for name in ("gate_lr", "l1_lambda", "update_fraction"):
            checked[name] = check_real(getattr(self, name), name, minimum=0.0)
        for name in ("layers", "winobias_pairs", "crows_pairs"):
            if getattr(self, name) is not None:
                checked[name] = check_positive_int(getattr(self, name), name)
        set_checked(self, **checked)

    def to_dict(self) -> dict[str, Any]:
        """The record's dict; without ``detox`` when it is None, so the bias arm's run files stay as they were."""
        values = super().to_dict()
        if values["detox"] is None:
            del values["detox"]
        return values

    def identity(self) -> dict[str, Any]:
        """What a finished run must share with this configuration to count as one of its runs: see
        :func:`config_identity`."""
        return config_identity(self.to_dict())


def config_identity(recorded: Any) -> Any:
    """A configuration as recorded in a run file, less the seeds after the first: more seeds extend a grid
    without changing any run's numbers (the first seed tunes the learning rates). Settings a format-1 file
    lacks take the value those runs were made under (:data:`LEGACY_SETTINGS`)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("seeds"), list):
        return recorded
    return {**LEGACY_SETTINGS, **recorded, "seeds": recorded["seeds"][:1]}


PROFILES = {
    "study": StudyConfig(),
    # What fits a loaded two-core machine in about an hour per seed: fewer steps, two learning rates per
    # method, half of WinoBias test (evenly spread) and 400 CrowS-Pairs pairs (200 gender, 200 spread over
    # the other types), three seeds. The committed results (format 1) use it, with fixed grids (no
    # extension); "study" is the full design.
    "quick": StudyConfig(steps=60, seeds=(0, 1, 2), full_lrs=(5e-5, 2e-4), lora_lrs=(1e-3, 3e-3), l1ra_lrs=(1e-3, 3e-3),
                         lr_extensions=0, winobias_pairs=396, crows_pairs=400, kl_pairs=32, sts_sentences=100,
                         toxicity_seeds=5, bootstrap=1000),
    # The design a reviewer accepts at quick's evaluation sizes (issue 20): five seeds for every headline
    # number, 3-rate grids extended while the winner sits at an edge, and 150 steps (three epochs of
    # WinoBias anti dev) so that the training loss has flattened (the report checks it).
    "review": StudyConfig(steps=150, seeds=(0, 1, 2, 3, 4), full_lrs=(3e-5, 1e-4, 3e-4), lora_lrs=(3e-4, 1e-3, 3e-3),
                          l1ra_lrs=(3e-4, 1e-3, 3e-3), lr_extensions=2, winobias_pairs=396, crows_pairs=400,
                          kl_pairs=32, sts_sentences=100, toxicity_seeds=5, bootstrap=1000),
    # The CI pipeline check. LoRA's third rate, 1000, diverges on purpose (the guard marks it, its runs are
    # re-run at 3e-3); the one-rate grids of full and L1RA are extended once.
    "smoke": StudyConfig(steps=2, batch_size=2, max_length=24, ranks=(1, 2), l1ra_ranks=(2,), truncation_ranks=(1,),
                         seeds=(0,), full_lrs=(1e-4,), lora_lrs=(1e-3, 3e-3, 1000.0), l1ra_lrs=(1e-3,), lr_extensions=1,
                         tune_rank=2,
                         layers=2, winobias_pairs=6, crows_pairs=6, kl_pairs=2, sts_sentences=4, toxicity_seeds=1,
                         max_new_tokens=4, eval_batch_size=8, bootstrap=200, check_steps=2, speed_steps=2,
                         speed_length=16),
}
# The toxicity arm (data="detox"): quick's grid on five seeds without the truncated fine-tunes, the bias
# measures at small sizes (KL and forgetting are what it needs of them), the old seed-toxicity measure off
# (its seeds overlap the detox training seeds), chat pairs of up to 160 tokens, the per-model search (the
# dearest measure) on 12 evaluation seeds for the first seed's models. Its cost, from measured figures:
# `python benchmarks/lora_rank/detox_cost.py estimate`. "detox-smoke" is the CI pipeline check: 4 seeds,
# one search iteration of two mutants, two samples, 2 steps.
PROFILES["detox"] = dataclasses.replace(
    PROFILES["quick"], data="detox", seeds=(0, 1, 2, 3, 4), max_length=160, truncation_ranks=(), winobias_pairs=64,
    crows_pairs=64, kl_pairs=32, sts_sentences=100, toxicity_seeds=0,
    detox=DetoxConfig(search_seeds=12, search_study_seeds=1))
PROFILES["detox-smoke"] = dataclasses.replace(
    PROFILES["smoke"], data="detox", ranks=(1,), lora_lrs=(1e-3,), lr_extensions=0, max_length=96, toxicity_seeds=0,
    detox=DetoxConfig(seeds=4, train_iterations=1, eval_iterations=1, categories=("toxic", "insulting"), samples=2,
                      answer_tokens=8, rewrite_tokens=16, train_prompts_per_seed=3, eval_prompts_per_seed=2,
                      search_seeds=1))


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of the grid. ``kind``: base, tune, full, lora, l1ra, truncated, check, speed or detox-data.
    ``lr`` set on a full, lora or l1ra run: trained at that rate, not at the tuned one (the per-rank arm,
    re-runs)."""

    kind: str
    seed: int
    method: str | None = None  # the method a tune run tunes
    rank: int | None = None
    budget: int | None = None
    lr: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "tune":
            at_rank = "" if self.rank is None else f"-r{self.rank}"
            return f"tune-{self.method}{at_rank}-lr{self.lr:g}"
        at_lr = "" if self.lr is None else f"-lr{self.lr:g}"
        if self.kind == "l1ra":
            return f"l1ra-b{self.budget}{at_lr}"
        if self.kind == "lora" and self.lr is not None:  # the per-rank learning-rate arm, re-runs
            return f"lora-r{self.rank}{at_lr}"
        if self.kind == "full":
            return f"full{at_lr}"
        if self.rank is not None:
            return f"{self.kind}-r{self.rank}"
        return self.kind

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "name": self.name}

