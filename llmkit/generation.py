"""Batched text generation with a local causal LM on any llmkit engine: a batch of prompts in, one completion per row out.

Prompts are chat messages (rendered with the model's chat template, with an optional assistant pre-fill
such as an opening tag) or raw text. Each engine decodes the rows together (the reference engine
left-pads them under one key/value cache; CTranslate2 batches them natively); each row stops at its own
stop strings, at an end-of-sequence token, or at ``max_new_tokens``, and a finished row leaves the batch
so the others run on a smaller one. Greedy by default; sampling (temperature, top-p) is seeded: one
``seed`` for the batch, or one per row, which makes each row's text independent of its batch mates.
This module imports neither torch nor transformers: what runs is the engine of the model given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared_utils.checks import check_int, check_positive_int, check_real

__all__ = ["Completion", "ContextLengthError", "Prompt", "finished", "generate", "render_prompt"]

FinishReason = Literal["stop", "eos", "length"]


class ContextLengthError(ValueError):
    """A prompt leaves no room to generate within the model's context; the message names its row."""


@dataclass(frozen=True)
class Prompt:
    """One row of a batch. ``messages`` is a list of ``{"role", "content"}`` dicts (chat template applied,
    with the assistant turn opened) or a plain string (used as it is, no template). ``prefill`` is appended
    after the template: the model continues from it, and it is not repeated in the completion. ``stop``
    strings end the row; the completion is cut before the first one found."""

    messages: Sequence[Mapping[str, str]] | str
    prefill: str = ""
    stop: Sequence[str] = ()


@dataclass(frozen=True)
class Completion:
    """What one row produced. ``text`` excludes the pre-fill and the stop string. ``completion_tokens``
    counts generated tokens up to the one that finished the row (EOS or the token completing a stop string).
    ``seconds`` is the wall time from the start of the batch call until this row finished: rows of one
    batch overlap, so the batch's cost is the largest ``seconds``, not their sum."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: FinishReason
    stop: str | None = None  # the stop string that ended the row, if any


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The exact text the model is given for ``prompt`` (template + pre-fill)."""
    if isinstance(prompt.messages, str):
        return prompt.messages + prompt.prefill
    if not prompt.messages:
        raise ValueError("a prompt's messages must not be empty; give at least one {'role', 'content'} message")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("this tokenizer has no chat template; give the prompt as a plain string instead")
    text = tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
    return str(text) + prompt.prefill


def generate(lm: Any, prompts: Sequence[Prompt], *, max_new_tokens: int = 128, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | Sequence[int] | None = None) -> list[Completion]:
    """Generate one completion per prompt, in order, as one batch (see the module docstring).

    ``lm`` is what :func:`llmkit.models.load_causal_lm` returns, on any engine. ``temperature`` 0 is greedy
    decoding; above 0 samples, restricted to the smallest set of tokens whose probability reaches
    ``top_p``, seeded by ``seed``: an int for the whole batch (the same batch gives the same texts), a
    sequence of one int per row (a row's text then depends only on its prompt and seed), or ``None``
    (fresh randomness). A prompt that leaves no room in the model's context is a ``ValueError``
    (:class:`ContextLengthError`) naming its row; a row that reaches the context limit finishes with
    reason ``"length"``.
    """
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
    temperature = check_real(temperature, "temperature", minimum=0.0)
    top_p = check_real(top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    seeds: int | list[int] | None = None
    if isinstance(seed, Sequence):
        if len(seed) != len(prompts):
            raise ValueError(f"seed has {len(seed)} per-row seeds for {len(prompts)} prompts; give one per row")
        seeds = [check_int(s, f"seed[{row}]", minimum=0) for row, s in enumerate(seed)]
    elif seed is not None:
        seeds = check_int(seed, "seed", minimum=0)
    for row, prompt in enumerate(prompts):
        if isinstance(prompt.stop, str) or not all(isinstance(s, str) and s for s in prompt.stop):
            raise ValueError(f"prompts[{row}].stop must be a sequence of non-empty strings, got {prompt.stop!r}")
    if not prompts:
        return []
    start = time.perf_counter()
    tokenizer = lm.tokenizer
    encoded = [list(tokenizer(render_prompt(tokenizer, p), add_special_tokens=isinstance(p.messages, str))["input_ids"])
               for p in prompts]
    context = lm.context_length
    budgets = []
    for row, ids in enumerate(encoded):
        room = max_new_tokens if context is None else min(max_new_tokens, context - len(ids))
        if room < 1 or not ids:
            raise ContextLengthError(f"prompts[{row}] has {len(ids)} tokens, which leaves no room to generate in the "
                             f"model's context of {context} tokens; shorten it")
        budgets.append(room)
    completions: list[Completion] = lm.decode_batch(prompts, encoded, budgets, temperature, top_p, seeds, start)
    return completions


def finished(decode: Callable[..., str], prompt: Prompt, ids: list[int], is_eos: bool,
             budget: int) -> tuple[str, FinishReason, str | None] | None:
    """(text, reason, stop string) once a row with generated ``ids`` is done, else None; every engine asks
    this after each token. The text is cut at the earliest stop string; an EOS token is not part of it."""
    text = decode(ids[:-1] if is_eos else ids, skip_special_tokens=True)
    hits = [(text.find(s), s) for s in prompt.stop if s in text]
    if hits:
        cut, stop = min(hits)
        return text[:cut], "stop", stop
    if is_eos:
        return text, "eos", None
    if len(ids) >= budget:
        return text, "length", None
    return None
