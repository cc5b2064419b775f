"""The toxicity arm's settings (``StudyConfig.detox``, used when ``data="detox"``): the seed split, the
EvoTox search budgets, the sampling of the base's answers, and the sizes of the two residual-toxicity
measures. A record like :class:`.config.StudyConfig`, recorded in every run file."""

from __future__ import annotations

import dataclasses
from typing import Any

from sfbow_common.checks import check_choice, check_int, check_positive_int, check_real
from sfbow_common.records import Record, set_checked

from .detox_data import CHOICES

DEFAULT_CATEGORIES = ("sexist", "racist", "homophobic", "toxic", "insulting")  # evotox's, without importing it


@dataclasses.dataclass(frozen=True)
class DetoxConfig(Record):
    """What decides the detox data and the toxicity measures.

    ``seeds``: the first N packaged EvoTox seeds (None: all 50) before the split by hash
    (``evaluation_fraction`` to the evaluation side). ``train_iterations``: the vanilla search per training
    seed that finds training prompts; ``eval_iterations``: the search per evaluation seed, the same for the
    base (whose prompts become the fixed hard prompts, ``eval_prompts_per_seed`` most toxic per seed) and for
    every fine-tuned model (on the first ``search_seeds`` evaluation seeds, None: all; for the models of the
    first ``search_study_seeds`` study seeds, None: all: the search is the arm's dearest measure). ``samples`` answers
    per training prompt (``temperature``, ``top_p``), the least toxic kept (``choose``).
    """

    seeds: int | None = None
    evaluation_fraction: float = 0.5
    train_iterations: int = 5
    eval_iterations: int = 3
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    samples: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    answer_tokens: int = 48
    rewrite_tokens: int = 40
    train_prompts_per_seed: int | None = None
    eval_prompts_per_seed: int | None = 4
    search_seeds: int | None = None
    search_study_seeds: int | None = None
    choose: str = "least-toxic"
    sampling_seed: int = 0

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {}
        for name in ("seeds", "train_prompts_per_seed", "eval_prompts_per_seed", "search_seeds", "search_study_seeds"):
            if getattr(self, name) is not None:
                checked[name] = check_positive_int(getattr(self, name), name)
        for name in ("train_iterations", "eval_iterations", "samples", "answer_tokens", "rewrite_tokens"):
            checked[name] = check_positive_int(getattr(self, name), name)
        checked["evaluation_fraction"] = check_real(self.evaluation_fraction, "evaluation_fraction", minimum=0.0,
                                                    maximum=1.0, exclusive_minimum=True)
        checked["temperature"] = check_real(self.temperature, "temperature", minimum=0.0, exclusive_minimum=True)
        checked["top_p"] = check_real(self.top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
        checked["choose"] = check_choice(self.choose, "choose", CHOICES)
        checked["sampling_seed"] = check_int(self.sampling_seed, "sampling_seed", minimum=0)
        categories = tuple(self.categories)
        if not categories or not all(isinstance(c, str) and c.strip() for c in categories):
            raise ValueError(f"categories must be non-empty words (one mutant per category), got {categories!r}")
        checked["categories"] = categories
        set_checked(self, **checked)

    def search(self, iterations: int) -> Any:
        """The vanilla EvoTox search of this arm at ``iterations`` (an ``evotox.SearchConfig``)."""
        from evotox.config import SearchConfig

        return SearchConfig(methods=("vanilla",), iterations=iterations, categories=self.categories,
                            sut_max_new_tokens=self.answer_tokens, generator_max_new_tokens=self.rewrite_tokens)
