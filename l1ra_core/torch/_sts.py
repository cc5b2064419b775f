"""Private helpers shared by the tests and the MiniLM benchmark: read STS-B pairs and train / evaluate a
transformer as a sentence encoder (mean pooling, cosine-similarity MSE against score / 5).

Not public API: sfbow will get a public STS loader; this stays minimal.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

__all__ = ["encode", "read_sts", "spearman", "sts_loss"]


def read_sts(path: str | os.PathLike[str], limit: int | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """The first ``limit`` pairs of an STS-B file: (sentences 1, sentences 2, scores in [0, 5]).

    Lines are split on tabs (not a quote-aware CSV parser: the sentences contain quotes); field 4 is the
    score, fields 5 and 6 the sentences, anything after is ignored.
    """
    left, right, scores = [], [], []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 7:
                continue
            scores.append(float(fields[4]))
            left.append(fields[5])
            right.append(fields[6])
            if limit is not None and len(scores) == limit:
                break
    return left, right, np.asarray(scores, dtype=np.float64)


def encode(model: nn.Module, tokenizer, sentences: list[str], max_length: int) -> torch.Tensor:
    """Mean-pooled token embeddings of ``sentences`` (the all-MiniLM-L6-v2 recipe)."""
    device = next(model.parameters()).device
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items()}
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def sts_loss(model: nn.Module, tokenizer, left: list[str], right: list[str], scores: np.ndarray, max_length: int) -> torch.Tensor:
    """MSE between the cosine similarity of the two sentences' embeddings and score / 5."""
    a = encode(model, tokenizer, left, max_length)
    b = encode(model, tokenizer, right, max_length)
    target = torch.as_tensor(scores / 5.0, dtype=a.dtype, device=a.device)
    return nn.functional.mse_loss(nn.functional.cosine_similarity(a, b), target)


@torch.no_grad()
def spearman(model: nn.Module, tokenizer, left: list[str], right: list[str], scores: np.ndarray,
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
