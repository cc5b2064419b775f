"""Exact sentence log-likelihoods and next-token distributions under a causal LM, batched and padding-safe.

A causal LM gives ``log p(sentence) = sum_t log p(x_t | x_<t)`` in one forward pass. Every sentence is
prefixed with one start token (the tokenizer's BOS, else its EOS) so that its first word is scored too;
the prefix itself is not scored. Sentences are sorted by length, batched, and right-padded: with right
padding every real token keeps its position and, under the causal mask, attends only to real tokens, so a
batched score equals the unbatched one up to floating-point rounding (tested). Logits are turned into
log-probabilities in float32 whatever the model's dtype.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from sfbow_common.checks import check_int

__all__ = ["SentenceScores", "mean_next_token_kl", "next_token_log_probs", "sentence_log_likelihoods",
           "sequence_log_likelihoods", "tokenize_sentences"]


@dataclasses.dataclass(frozen=True)
class SentenceScores:
    """Per-sentence log-likelihood (nats, float64) and number of scored tokens."""

    log_likelihood: np.ndarray
    num_tokens: np.ndarray

    def nll_per_token(self) -> float:
        """Mean negative log-likelihood per scored token over all sentences (the corpus NLL)."""
        return float(-self.log_likelihood.sum() / self.num_tokens.sum())


def tokenize_sentences(tokenizer: Any, sentences: Sequence[str], *, prefix_token_id: int | None = None
                       ) -> list[list[int]]:
    """Token ids of each sentence, prefixed with ``prefix_token_id`` (default: BOS, else EOS)."""
    if isinstance(sentences, str) or not all(isinstance(s, str) and s.strip() for s in sentences):
        bad = next((i for i, s in enumerate(sentences) if not (isinstance(s, str) and s.strip())), 0)
        raise ValueError(f"sentences must be a sequence of non-empty strings; item {bad} is not")
    prefix = prefix_token_id
    if prefix is None:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token; pass prefix_token_id")
    encoded = tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    return [[int(prefix), *ids] for ids in encoded]


def sequence_log_likelihoods(model: Any, token_ids: Sequence[Sequence[int]], *, batch_size: int = 16,
                             progress: bool = False) -> SentenceScores:
    """Sum of ``log p(x_t | x_<t)`` over t >= 1 of each id sequence (the first id is context only)."""
    lengths = check_sequences(token_ids)
    totals = np.zeros(len(token_ids))
    for rows, log_probs, targets, mask in _batches(model, token_ids, batch_size, progress, "log-likelihood"):
        picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        totals[rows] = (picked * mask).sum(-1).double().numpy()
    return SentenceScores(log_likelihood=totals, num_tokens=lengths - 1)


def sentence_log_likelihoods(model: Any, tokenizer: Any, sentences: Sequence[str], *, batch_size: int = 16,
                             progress: bool = False, prefix_token_id: int | None = None) -> SentenceScores:
    """Exact log-likelihood of each sentence (see the module docstring for the start token;
    ``prefix_token_id`` replaces it, e.g. a base model's document separator to score plain text where an
    instruct tokenizer's BOS is its chat-turn token)."""
    return sequence_log_likelihoods(model, tokenize_sentences(tokenizer, sentences, prefix_token_id=prefix_token_id),
                                    batch_size=batch_size, progress=progress)


def next_token_log_probs(model: Any, token_ids: Sequence[Sequence[int]], *, batch_size: int = 16,
                         dtype: torch.dtype = torch.float16, progress: bool = False) -> list[torch.Tensor]:
    """Log-probabilities of the next token at every scored position: one ``(len - 1, vocab)`` tensor per
    sequence, stored in ``dtype`` (float16 halves the memory of a cached reference distribution)."""
    check_sequences(token_ids)
    out: list[torch.Tensor] = [torch.empty(0)] * len(token_ids)
    for rows, log_probs, _, mask in _batches(model, token_ids, batch_size, progress, "next-token"):
        for row, values, row_mask in zip(rows, log_probs, mask):
            out[row] = values[: int(row_mask.sum())].to(dtype).clone()
    return out


def mean_next_token_kl(model: Any, token_ids: Sequence[Sequence[int]], reference: Sequence[torch.Tensor], *,
                       batch_size: int = 16, progress: bool = False) -> float:
    """Mean over scored positions of ``KL(reference || model)`` between next-token distributions, in nats.

    ``reference`` is :func:`next_token_log_probs` of the reference model on the same ``token_ids``.
    """
    lengths = check_sequences(token_ids)
    if len(reference) != len(token_ids) or any(r.shape[0] != n - 1 for r, n in zip(reference, lengths)):
        raise ValueError("reference must hold one (len - 1, vocab) tensor per sequence of token_ids, as "
                         "next_token_log_probs returns for the same sequences")
    total = 0.0
    for rows, log_probs, _, mask in _batches(model, token_ids, batch_size, progress, "KL"):
        for row, values, row_mask in zip(rows, log_probs, mask):
            ref = reference[row].float()
            here = values[: int(row_mask.sum())]
            total += float((ref.exp() * (ref - here)).sum())
    return total / float((lengths - 1).sum())


def check_sequences(token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    if not len(token_ids):
        raise ValueError("token_ids is empty; pass at least one sequence")
    lengths = np.array([len(ids) for ids in token_ids])
    if (lengths < 2).any():
        raise ValueError(f"sequence {int(np.argmax(lengths < 2))} has fewer than 2 tokens; a sequence needs a "
                         "context token and at least one scored token")
    return lengths


@contextlib.contextmanager
def _evaluating(model: Any) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the model's training flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _batches(model: Any, token_ids: Sequence[Sequence[int]], batch_size: int, progress: bool, what: str
             ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (rows, log-probs (B, T-1, V) float32, targets (B, T-1), mask (B, T-1)) per length-sorted batch."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=what, unit="batch", leave=False)
    device = next(model.parameters()).device
    with _evaluating(model):
        for start in starts:
            rows = order[start:start + batch_size]
            width = len(token_ids[rows[0]])
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for k, row in enumerate(rows):
                ids[k, : len(token_ids[row])] = torch.as_tensor(token_ids[row])
                attention[k, : len(token_ids[row])] = 1
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
            yield rows, log_probs, ids[:, 1:], attention[:, 1:].float()
