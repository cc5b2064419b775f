"""Batched text generation with a local causal LM: a batch of prompts in, one completion per row out.

Prompts are chat messages (rendered with the tokenizer's chat template, with an optional assistant
pre-fill such as an opening tag) or raw text. Rows are left-padded with an attention mask and decoded
together with a key/value cache; each row stops at its own stop strings, at an end-of-sequence token, or at
``max_new_tokens``, and a finished row leaves the batch so the others run on a smaller one. Greedy by
default; sampling (temperature, top-p) draws from a private ``torch.Generator`` seeded by ``seed``, so a
seed gives the same text whatever else uses torch's global random state.
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import DynamicCache

from llmkit.models import CausalLM
from shared_utils.checks import check_int, check_positive_int, check_real

__all__ = ["Completion", "ContextLengthError", "Prompt", "generate", "render_prompt"]

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


def generate(lm: CausalLM, prompts: Sequence[Prompt], *, max_new_tokens: int = 128, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | None = None) -> list[Completion]:
    """Generate one completion per prompt, in order, as one batch (see the module docstring).

    ``temperature`` 0 is greedy decoding; above 0 samples, restricted to the smallest set of tokens whose
    probability reaches ``top_p``. A prompt that leaves no room in the model's context is a ``ValueError``
    (:class:`ContextLengthError`) naming its row; a row that reaches the context limit finishes with reason ``"length"``.
    """
    max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
    temperature = check_real(temperature, "temperature", minimum=0.0)
    top_p = check_real(top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    for row, prompt in enumerate(prompts):
        if isinstance(prompt.stop, str) or not all(isinstance(s, str) and s for s in prompt.stop):
            raise ValueError(f"prompts[{row}].stop must be a sequence of non-empty strings, got {prompt.stop!r}")
    if not prompts:
        return []
    start = time.perf_counter()
    tokenizer, model = lm.tokenizer, lm.model
    encoded = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=isinstance(p.messages, str)).input_ids
               for p in prompts]
    context = int(getattr(model.config, "max_position_embeddings", 0)) or None
    budgets = []
    for row, ids in enumerate(encoded):
        room = max_new_tokens if context is None else min(max_new_tokens, context - len(ids))
        if room < 1 or not ids:
            raise ContextLengthError(f"prompts[{row}] has {len(ids)} tokens, which leaves no room to generate in the "
                             f"model's context of {context} tokens; shorten it")
        budgets.append(room)
    generator = None
    if temperature > 0:
        generator = torch.Generator(device=model.device)
        generator.manual_seed(seed if seed is not None else secrets.randbits(63))
    with torch.inference_mode():
        return _decode_batch(lm, prompts, encoded, budgets, temperature, top_p, generator, start)


def _decode_batch(lm: CausalLM, prompts: Sequence[Prompt], encoded: list[list[int]], budgets: list[int],
                  temperature: float, top_p: float, generator: torch.Generator | None,
                  start: float) -> list[Completion]:
    tokenizer, model = lm.tokenizer, lm.model
    device = model.device
    eos_ids = _eos_ids(lm)
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()  # filled in place by every forward call
    cache_argument = {_cache_keyword(model): cache}
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **cache_argument)
    logits = out.logits[:, -1, :]
    active = list(range(len(prompts)))  # original row of each row still in the batch
    generated: list[list[int]] = [[] for _ in prompts]
    results: list[Completion | None] = [None] * len(prompts)
    while True:
        next_ids = _next_tokens(logits, temperature, top_p, generator)
        keep = []
        for slot, row in enumerate(active):
            token = int(next_ids[slot])
            generated[row].append(token)
            done = _finished(tokenizer, prompts[row], generated[row], token in eos_ids, budgets[row])
            if done is None:
                keep.append(slot)
            else:
                text, reason, stop = done
                results[row] = Completion(text, len(encoded[row]), len(generated[row]),
                                          time.perf_counter() - start, reason, stop)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, positions, next_ids = mask[index], positions[index], next_ids[index]
            active = [active[slot] for slot in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                    **cache_argument)
        logits = out.logits[:, -1, :]
    return [r for r in results if r is not None]


def _cache_keyword(model: Any) -> str:
    """transformers 5.x calls the key/value cache argument ``cache``; earlier versions ``past_key_values``.
    A PEFT wrapper's ``forward`` takes ``**kwargs`` and passes them on, so look at the model it wraps."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _eos_ids(lm: CausalLM) -> set[int]:
    ids: set[int] = set()
    for source in (lm.tokenizer.eos_token_id, getattr(lm.model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    return ids


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or a temperature / nucleus sample drawn with ``generator``."""
    if generator is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # tokens after the nucleus is full
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _finished(tokenizer: Any, prompt: Prompt, ids: list[int], is_eos: bool,
              budget: int) -> tuple[str, FinishReason, str | None] | None:
    """(text, reason, stop string) once the row is done, else None. The text is cut at the earliest stop
    string; an EOS token is not part of the text."""
    text = tokenizer.decode(ids[:-1] if is_eos else ids, skip_special_tokens=True)
    hits = [(text.find(s), s) for s in prompt.stop if s in text]
    if hits:
        cut, stop = min(hits)
        return text[:cut], "stop", stop
    if is_eos:
        return text, "eos", None
    if len(ids) >= budget:
        return text, "length", None
    return None
