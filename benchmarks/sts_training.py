"""STS-B training helpers for the L1RA benchmark and tests: train / evaluate a transformer as a sentence
encoder (mean pooling, cosine-similarity MSE against score / 5).

Not part of the library (nothing in ``l1ra_core`` imports it): ``benchmarks/l1ra_minilm.py`` and
``tests/l1ra_torch`` do. STS-B is read with the project's one reader, ``sfbow.evaluation.load_stsb``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from sfbow.evaluation import load_stsb

__all__ = ["encode", "read_sts", "spearman", "sts_loss"]


def read_sts(path: str | os.PathLike[str], limit: int | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """The first ``limit`` pairs (all with ``None``) of an STS-B file: (sentences 1, sentences 2, scores 0-5)."""
    dataset = load_stsb(path)
    end = len(dataset) if limit is None else limit
    return dataset.sentences1[:end], dataset.sentences2[:end], np.asarray(dataset.scores[:end], dtype=np.float64)


def encode(model: nn.Module, tokenizer: Any, sentences: list[str], max_length: int) -> torch.Tensor:
    """Mean-pooled token embeddings of ``sentences`` (the all-MiniLM-L6-v2 recipe)."""
    device = next(model.parameters()).device
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items()}
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def sts_loss(model: nn.Module, tokenizer: Any, left: list[str], right: list[str], scores: np.ndarray, max_length: int) -> torch.Tensor:
    """MSE between the cosine similarity of the two sentences' embeddings and score / 5."""
    a = encode(model, tokenizer, left, max_length)
    b = encode(model, tokenizer, right, max_length)
    target = torch.as_tensor(scores / 5.0, dtype=a.dtype, device=a.device)
    return nn.functional.mse_loss(nn.functional.cosine_similarity(a, b), target)


@torch.no_grad()
def spearman(model: nn.Module, tokenizer: Any, left: list[str], right: list[str], scores: np.ndarray,
             max_length: int, batch_size: int = 128) -> float:
    """Spearman correlation x 100 between cosine similarities and gold scores (model put in eval mode)."""
    was_training = model.training
    model.eval()
    sims = []
    for i in range(0, len(left), batch_size):
        a = encode(model, tokenizer, left[i : i + batch_size], max_length)
        b = encode(model, tokenizer, right[i : i + batch_size], max_length)
        sims.append(nn.functional.cosine_similarity(a, b).float().cpu())
    model.train(was_training)
    return float(spearmanr(torch.cat(sims).numpy(), scores).statistic * 100)
