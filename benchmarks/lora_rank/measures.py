"""Measuring one model: bias (WinoBias, CrowS-Pairs, per-pair gaps for paired bootstraps), KL of
next-token distributions to cached references, forgetting on STS-B sentences, toxicity of answers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.atomic import atomic_write_via

from .config import StudyConfig
from .data import EvalData

PLAIN_TEXT_START = "<|endoftext|>"


class References:
    """Next-token log-probabilities of the base and of each seed's full fine-tune on the KL sentences,
    cached as safetensors in the cache folder (written atomically)."""

    def __init__(self, cache: Path, tokenizer: Any, sentences: list[str], config: StudyConfig,
                 rebuild: Callable[[str], Any | None]) -> None:
        """``rebuild(key)`` gives the model of a reference whose file is missing (a cleared cache), or None
        while the run behind it has not finished."""
        from sfbow_llm.loglik import tokenize_sentences

        self.cache = cache
        self.ids = tokenize_sentences(tokenizer, sentences)
        self.config = config
        self.rebuild = rebuild
        self.loaded: dict[str, list[Any]] = {}

    def path(self, key: str) -> Path:
        return self.cache / f"kl_reference_{key}_{self.config.kl_pairs}.safetensors"

    def store(self, key: str, model: Any) -> None:
        from safetensors.torch import save_file

        from sfbow_llm.loglik import next_token_log_probs

        values = next_token_log_probs(model, self.ids, batch_size=self.config.eval_batch_size)
        self.cache.mkdir(parents=True, exist_ok=True)
        atomic_write_via(self.path(key), lambda tmp: save_file({str(i): v for i, v in enumerate(values)}, str(tmp)))
        self.loaded[key] = values

    def get(self, key: str) -> list[Any] | None:
        """The reference ``key``: from memory, from its cache file, or recomputed (and cached) from its
        model; None only while its run has not finished."""
        if key not in self.loaded and self.path(key).is_file():
            from safetensors.torch import load_file

            tensors = load_file(str(self.path(key)))
            self.loaded[key] = [tensors[str(i)] for i in range(len(self.ids))]
        if key not in self.loaded:
            model = self.rebuild(key)
            if model is not None:
                self.store(key, model)
        return self.loaded.get(key)


def evaluate(model: Any, lm: Any, data: EvalData, config: StudyConfig, references: References,
             seed: int) -> dict[str, Any]:
    """Every measure of issue 11 for one model (``lm``: the loaded base, for its tokenizer and chat
    template), with per-pair gaps for the report's paired bootstraps."""
    from biasbench import crows_metrics, winobias_metrics
    from sfbow_llm.loglik import mean_next_token_kl, sentence_log_likelihoods

    tokenizer = lm.tokenizer

    def score(sentences: list[str]) -> np.ndarray:
        return sentence_log_likelihoods(model, tokenizer, sentences, batch_size=config.eval_batch_size,
                                        progress=True).log_likelihood

    started = time.perf_counter()
    bootstrap: dict[str, Any] = {"n_resamples": config.bootstrap, "seed": 0}
    winobias, winobias_gaps = winobias_metrics(data.winobias, score, **bootstrap)
    crows, crows_gaps = crows_metrics(data.crows, score, **bootstrap)
    measures: dict[str, Any] = {
        "winobias": winobias.to_dict(),
        "crows": {kind: metrics.to_dict() for kind, metrics in crows.items()},
        "gaps": {"winobias": [round(float(g), 4) for g in winobias_gaps],
                 "crows": [round(float(g), 4) for g in crows_gaps],
                 "crows_gender": [p.bias_type == "gender" for p in data.crows],
                 "crows_types": [p.bias_type for p in data.crows]},  # for the per-type selection (crows_types.py)
    }
    for key, name in (("base", "kl_to_base"), (f"full_seed{seed}", "kl_to_full")):
        reference = references.get(key)
        measures[name] = None if reference is None else mean_next_token_kl(
            model, references.ids, reference, batch_size=config.eval_batch_size)
    if data.sts_sentences:
        measures["sts_nll"] = sentence_log_likelihoods(model, tokenizer, data.sts_sentences,
                                                       batch_size=config.eval_batch_size).nll_per_token()
        measures["plain_nll"] = sentence_log_likelihoods(model, tokenizer, data.sts_sentences,
                                                         batch_size=config.eval_batch_size,
                                                         prefix_token_id=plain_text_start(tokenizer)).nll_per_token()
    measures["toxicity"] = toxicity(model, lm, data.toxicity_prompts, config)
    measures["eval_seconds"] = round(time.perf_counter() - started, 1)
    return measures


def plain_text_start(tokenizer: Any) -> int:
    """The token that starts plain text for forgetting: SmolLM2's pretraining document separator
    ``PLAIN_TEXT_START``. The instruct tokenizer's BOS is ``<|im_start|>``, the chat-turn token, so scoring
    after it (``sts_nll``) partly measures the chat format, which fine-tuning on bare sentences teaches away;
    scored after the separator, the same sentences measure language modelling alone (``plain_nll``, read
    against the base's)."""
    token = tokenizer.get_vocab().get(PLAIN_TEXT_START)
    if not isinstance(token, int):
        raise ValueError(f"the tokenizer has no {PLAIN_TEXT_START!r} token to start plain text; this study scores "
                         "forgetting for SmolLM2-family tokenizers")
    return token


def toxicity(model: Any, lm: Any, prompts: list[str], config: StudyConfig) -> dict[str, Any] | None:
    """Toxicity (sfbow_llm's default oracle; an answer's score is its largest attribute, as EvoTox's fitness) of
    greedy answers to the EvoTox seeds; a note instead when sfbow_llm's generation or oracle is unavailable."""
    if not prompts:
        return None
    try:
        from sfbow_llm.chat import Request
        from sfbow_llm.generation import generate
        from sfbow_llm.oracles import default_oracle
    except ImportError as error:
        return {"skipped": f"sfbow_llm generation/oracle unavailable: {error}"}
    system = {"role": "system", "content": "You are a helpful assistant."}
    answers = generate(dataclasses.replace(lm, model=model),
                       [Request([system, {"role": "user", "content": q}], max_new_tokens=config.max_new_tokens)
                        for q in prompts])
    oracle = default_oracle()
    scores = np.asarray(oracle.score([a.text for a in answers]), dtype=np.float64).max(axis=1)
    return {"mean": float(scores.mean()), "max": float(scores.max()), "n": len(prompts), "oracle": oracle.describe()}

