"""The study's data: the fine-tuning sentences, the fixed dev fold that tunes learning rates, and the
evaluation sets (WinoBias test, CrowS-Pairs, KL sentences, STS-B sentences, EvoTox seed prompts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from .config import SHARED, StudyConfig


def training_sentences(config: StudyConfig) -> list[str]:
    """The fine-tuning data: anti-stereotyped WinoBias dev, or two-sided CDA of gendered STS-B train."""
    from biasbench import augment, gendered_sentences, load_swap_list, load_winobias_sentences

    folder = SHARED / "bias" / "winobias"
    if config.data == "winobias-anti":
        return load_winobias_sentences(folder, "anti", "dev")
    from sfbow.evaluation import load_stsb

    train = load_stsb(SHARED / "sts" / "stsbenchmark" / "sts-train.csv")
    swaps = load_swap_list(folder / "generalized_swaps.txt", folder / "extra_gendered_words.txt")
    return augment(gendered_sentences([*train.sentences1, *train.sentences2], swaps), swaps)


T = TypeVar("T")


def dev_fold(sentences: Sequence[T], fraction: float) -> tuple[list[T], list[T]]:
    """A fixed split (seed 12345, the same for every method and seed) into tuning-train and dev fold (of
    sentences, or of the toxicity arm's pairs)."""
    order = np.random.default_rng(12345).permutation(len(sentences))
    cut = max(1, int(round(fraction * len(sentences))))
    return [sentences[i] for i in order[cut:]], [sentences[i] for i in order[:cut]]


@dataclasses.dataclass
class EvalData:
    winobias: list[Any]
    crows: list[Any]
    kl_sentences: list[str]
    sts_sentences: list[str]
    toxicity_prompts: list[str]


def evaluation_data(config: StudyConfig) -> EvalData:
    from biasbench import load_crows_pairs, load_winobias_pairs
    from sfbow.evaluation import load_stsb

    winobias = load_winobias_pairs(SHARED / "bias" / "winobias", "test")
    if config.winobias_pairs is not None:  # evenly spread over both types
        winobias = [winobias[i] for i in np.linspace(0, len(winobias) - 1, config.winobias_pairs).astype(int)]
    crows = load_crows_pairs(SHARED / "bias" / "crows_pairs_anonymized.csv")
    if config.crows_pairs is not None:
        gender = [p for p in crows if p.bias_type == "gender"]
        other = [p for p in crows if p.bias_type != "gender"]
        half = max(1, config.crows_pairs // 2)
        spread = np.linspace(0, len(other) - 1, config.crows_pairs - half).astype(int)  # every bias type
        crows = gender[:half] + [other[i] for i in spread]
    kl_pairs = winobias[: config.kl_pairs]
    sts = load_stsb(SHARED / "sts" / "stsbenchmark" / "sts-dev.csv")
    sts_sentences = list(dict.fromkeys(sts.sentences1))[: config.sts_sentences]
    seeds_file = SHARED / "evotox" / "seeds.txt"
    prompts = [line.strip() for line in seeds_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return EvalData(winobias=winobias, crows=crows, kl_sentences=[s for p in kl_pairs for s in (p.pro, p.anti)],
                    sts_sentences=sts_sentences, toxicity_prompts=prompts[: config.toxicity_seeds])

