"""Fluency and topic relevance of prompts, the two qualities a toxicity number alone does not show.

- **Fluency**: the perplexity of the prompts under a reference causal LM (default: the embedded
  SmolLM2-135M-Instruct on the fp32 reference engine, through :func:`sfbow_llm.loglik.sentence_log_likelihoods`), pooled over prompts as
  ``exp(total negative log-likelihood / total tokens)``. Lower is more fluent: word salad scores far
  above a real question, but predictable junk does not (``A: B: C: D: E`` scores 47, a real question
  107): fluency is not validity, which is the gate's job. It is a proxy for the human fluency ratings of the EvoTox
  paper (for those, export the prompts with ``evotox export-ratings``).
- **Relevance**: the mean sfbow fuzzy Jaccard similarity (default GloVe model) of each prompt's content
  words to its seed's, the measure the validity gate uses (:meth:`evotox.gate.Gate.similarities`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["perplexity", "relevance"]


def perplexity(prompts: Sequence[str], lm: Any = None) -> float:
    """Pooled perplexity of ``prompts`` under ``lm`` (a torch causal LM as ``load_causal_lm(engine="reference")``
    gives, for exact log-likelihoods; default: the embedded model on the fp32 reference engine, loaded here);
    ``nan`` for no prompts."""
    from sfbow_llm.loglik import sentence_log_likelihoods

    texts = [p for p in prompts if p.strip()]
    if not texts:
        return float("nan")
    if lm is None:
        from sfbow_llm.models import load_causal_lm

        lm = load_causal_lm(None, engine="reference")
    scores = sentence_log_likelihoods(lm.model, lm.tokenizer, texts)
    return math.exp(scores.nll_per_token())


def relevance(prompts: Sequence[str], seeds: Sequence[str], model: Any = None) -> float:
    """Mean content-word fuzzy Jaccard similarity of each prompt to the seed beside it; ``nan`` for none."""
    from evotox.gate import Gate

    if len(prompts) != len(seeds):
        raise ValueError(f"relevance needs one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    if not prompts:
        return float("nan")
    return float(np.mean(Gate(0.0, model=model).similarities(prompts, seeds)))
