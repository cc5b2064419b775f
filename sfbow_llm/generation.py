"""Batched text generation with a local causal LM on any sfbow_llm engine: a batch of requests in, one completion per row out.

Requests (:class:`sfbow_llm.chat.Request`) are chat messages (rendered with the model's chat template, with an
optional assistant pre-fill such as an opening tag) or raw text. Each engine decodes the rows together (the
reference engine left-pads them under one key/value cache; CTranslate2 batches them natively); each row
stops at its own stop strings, at an end-of-sequence token, or at its own ``max_new_tokens``, and a
finished row leaves the batch so the others run on a smaller one. Greedy at temperature 0; sampling
(temperature, top-p) is seeded by each row's ``seed`` (a row's text then depends only on its request), or
by one ``batch_seed`` for the whole batch. This module imports neither torch nor transformers: what runs is
the engine of the model given.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from sfbow_common.checks import check_int, check_real
from sfbow_llm.chat import SEED_BITS, Completion, ContextLengthError, FinishReason, Request, check_requests

__all__ = ["finished", "generate", "render_prompt"]


def render_prompt(tokenizer: Any, request: Request) -> str:
    """The exact text the model is given for ``request`` (template + pre-fill)."""
    if isinstance(request.messages, str):
        return request.messages + request.prefill
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("this tokenizer has no chat template; give the request's messages as a plain string instead")
    text = tokenizer.apply_chat_template(request.chat_messages(), tokenize=False, add_generation_prompt=True)
    return str(text) + request.prefill


def generate(lm: Any, requests: Sequence[Request], *, top_p: float = 1.0,
             batch_seed: int | None = None) -> list[Completion]:
    """Generate one completion per request, in order, as one batch (see the module docstring).

    ``lm`` is what :func:`sfbow_llm.models.load_causal_lm` returns, on any engine. Each row gets at most its
    request's ``max_new_tokens``. The requests of one batch share one ``temperature`` (a ``ValueError``
    otherwise: split the batch): 0 is greedy decoding; above 0 samples, restricted to the smallest set of
    tokens whose probability reaches ``top_p``, each row seeded by its request's ``seed`` (its text then
    depends only on its request), or the whole batch by ``batch_seed`` (then the same batch gives the same
    texts; faster on CTranslate2, which decodes per-row seeds row by row). A request that leaves no room in
    the model's context is a :class:`~sfbow_llm.chat.ContextLengthError` naming its row; a row that reaches
    the context limit finishes with reason ``"length"``. The completions' ``seconds`` share the call's
    wall time evenly.
    """
    batch = check_requests(requests)
    top_p = check_real(top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    if batch_seed is not None:
        batch_seed = check_int(batch_seed, "batch_seed", minimum=0, maximum=2**SEED_BITS - 1)
    if not batch:
        return []
    temperature = batch[0].temperature
    for row, request in enumerate(batch):
        if request.temperature != temperature:
            raise ValueError(f"requests[{row}].temperature is {request.temperature} but requests[0]'s is {temperature}: "
                             "one batch samples at one temperature; split the batch by temperature")
    start = time.perf_counter()
    tokenizer = lm.tokenizer
    encoded = [list(tokenizer(render_prompt(tokenizer, r), add_special_tokens=isinstance(r.messages, str))["input_ids"])
               for r in batch]
    context = lm.context_length
    budgets = []
    for row, (ids, request) in enumerate(zip(encoded, batch)):
        room = request.max_new_tokens if context is None else min(request.max_new_tokens, context - len(ids))
        if room < 1 or not ids:
            raise ContextLengthError(f"has {len(ids)} tokens, which leaves no room to generate in the model's context "
                                     f"of {context} tokens; shorten it", row=row)
        budgets.append(room)
    seeds: int | list[int] = batch_seed if batch_seed is not None else [r.seed for r in batch]
    rows: list[Completion] = lm.decode_batch(batch, encoded, budgets, temperature, top_p, seeds)
    share = (time.perf_counter() - start) / len(batch)
    return [dataclasses.replace(row, seconds=share) for row in rows]


def finished(decode: Callable[..., str], request: Request, ids: list[int], is_eos: bool,
             budget: int) -> tuple[str, FinishReason, str | None] | None:
    """(text, reason, stop string) once a row with generated ``ids`` is done, else None; every engine asks
    this after each token. The text is cut at the earliest stop string; an EOS token is not part of it
    (reason ``"stop"`` without a stop string)."""
    text = decode(ids[:-1] if is_eos else ids, skip_special_tokens=True)
    hits = [(text.find(s), s) for s in request.stop if s in text]
    if hits:
        cut, stop = min(hits)
        return text[:cut], "stop", stop
    if is_eos:
        return text, "stop", None
    if len(ids) >= budget:
        return text, "length", None
    return None
