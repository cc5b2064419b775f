"""Training batches of chat (prompt, answer) pairs with the loss on the answer only.

The bias arm trains on plain sentences (every token after BOS is a target). The toxicity arm teaches the
model how to *answer*, so a pair is laid out exactly as generation sees it: the chat template rendered
for the system prompt and the user's prompt with the assistant turn opened (``sfbow_llm.generation``'s
``render_prompt``, tokenised without special tokens as generation does), then the answer's tokens, then
the end-of-turn token (the tokenizer's EOS, ``<|im_end|>`` for SmolLM2), so the model also learns where to
stop. Tokenising the prompt and the answer separately keeps the boundary where generation has it. Labels
are -100 (ignored by the causal-LM loss) on every prompt token and on padding; batches are right-padded
with attention mask 0, in the batch dictionary the study's training loop takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sfbow_common.checks import check_int, check_positive_int

__all__ = ["IGNORE", "answer_nll", "chat_pair_batches", "encode_pairs"]

IGNORE = -100  # the label the causal-LM loss skips


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], *, system_prompt: str,
                 max_length: int) -> list[tuple[list[int], int]]:
    """``(ids, prompt_length)`` per (prompt, answer) pair: the first ``prompt_length`` ids are the rendered
    prompt, the rest the answer and the end-of-turn token, cut at ``max_length`` ids in all. A pair whose
    prompt leaves no room for an answer token is an error naming it (raise ``max_length``)."""
    from sfbow_llm.chat import Request
    from sfbow_llm.generation import render_prompt

    max_length = check_positive_int(max_length, "max_length")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to end the answer with")
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    encoded = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(t, str) and t.strip() for t in pair)):
            raise ValueError(f"pairs[{i}] must be a (prompt, answer) tuple of non-empty strings, got {pair!r}")
        prompt, answer = pair
        text = render_prompt(tokenizer, Request([*system, {"role": "user", "content": prompt}]))
        prompt_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], int(eos)]
        if len(prompt_ids) >= max_length:
            raise ValueError(f"pairs[{i}]: its prompt takes {len(prompt_ids)} tokens with the chat template, "
                             f"which leaves no answer token within max_length={max_length}; raise max_length")
        encoded.append(([*prompt_ids, *answer_ids][:max_length], len(prompt_ids)))
    return encoded


def _padded(rows: Sequence[tuple[list[int], int]]) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE)
    for k, (ids, prompt_length) in enumerate(rows):
        input_ids[k, :len(ids)] = torch.as_tensor(ids)
        mask[k, :len(ids)] = 1
        labels[k, prompt_length:len(ids)] = torch.as_tensor(ids[prompt_length:])
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def chat_pair_batches(encoded: Sequence[tuple[list[int], int]], *, batch_size: int, seed: int
                      ) -> Iterator[dict[str, Any]]:
    """Endless shuffled batches (a new permutation per epoch, from ``seed``) of :func:`encode_pairs` rows:
    ``input_ids`` (right-padded with 0), ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    batch_size = check_positive_int(batch_size, "batch_size")
    if len(encoded) < batch_size:
        raise ValueError(f"{len(encoded)} pairs cannot fill one batch of {batch_size}; give more pairs or a "
                         "smaller batch_size")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    while True:
        order = rng.permutation(len(encoded))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield _padded([encoded[i] for i in order[start:start + batch_size]])


def answer_nll(model: Any, encoded: Sequence[tuple[list[int], int]], *, batch_size: int = 16) -> float:
    """Mean negative log-likelihood per answer token (end-of-turn included) of :func:`encode_pairs` rows under
    ``model``: the dev-fold measure that tunes the detox arm's learning rates."""
    import torch

    batch_size = check_positive_int(batch_size, "batch_size")
    if not encoded:
        raise ValueError("answer_nll needs at least one encoded pair")
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(encoded), batch_size):
                batch = _padded(encoded[start:start + batch_size])
                count = int((batch["labels"][:, 1:] != IGNORE).sum())  # the loss skips position 0 (shifted)
                total += float(model(**batch).loss) * count
                tokens += count
    finally:
        model.train(was_training)
    return total / tokens
