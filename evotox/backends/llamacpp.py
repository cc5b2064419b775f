"""llama.cpp through ``llama-cpp-python`` as an evotox backend (optional; about twice the tokens per second of
the torch path on CPU for the default model).

``llama-cpp-python`` compiles llama.cpp from source on install (15-30 minutes on a small machine), so it
is not part of any extra and never built in CI: install it yourself (``pip install llama-cpp-python``),
then use ``--sut llamacpp:PATH.gguf``. It is imported only when this backend is created. The GGUF's own
chat template (from its metadata) renders the messages, the pre-fill is appended, and the text is
completed (raw-text requests are completed as they are); rows are answered one after another
(llama-cpp-python has no batched API).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evotox.backends.base import BackendError
from sfbow_llm.chat import Completion, ContextLengthError, Request, check_requests

__all__ = ["LlamaCppBackend"]

INSTALL = "pip install llama-cpp-python  (compiles llama.cpp: 15-30 min)"


class LlamaCppBackend:
    """Generate with llama.cpp from a GGUF file (``n_ctx`` tokens of context, ``n_threads`` CPU threads)."""

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise BackendError(f"the llamacpp backend needs llama-cpp-python ({error}); install it with: {INSTALL}, "
                               "or use the default torch backend (--sut local)") from None
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file {self.path} does not exist")
        self._llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        self.n_ctx = n_ctx
        self._template = self._llm.metadata.get("tokenizer.chat_template")

    def describe(self) -> dict[str, object]:
        return {"kind": "llamacpp", "model": str(self.path), "n_ctx": self.n_ctx, "files": [str(self.path)]}

    def _render(self, request: Request) -> str:
        if isinstance(request.messages, str):  # raw text: no template
            return request.messages + request.prefill
        messages = request.chat_messages()
        if self._template:
            import jinja2

            text = jinja2.Environment().from_string(self._template).render(messages=messages,
                                                                           add_generation_prompt=True,
                                                                           bos_token="", eos_token="")
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return text + request.prefill

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        batch = check_requests(requests)
        start = time.perf_counter()
        answers: list[dict[str, Any]] = []
        for row, request in enumerate(batch):
            try:
                answers.append(self._llm.create_completion(
                    self._render(request), max_tokens=request.max_new_tokens, temperature=request.temperature,
                    seed=request.seed, stop=list(request.stop) or None))
            except ValueError as error:
                if "context" in str(error).lower() or "exceed" in str(error).lower():
                    raise ContextLengthError(str(error), row=row) from None
                raise
        share = (time.perf_counter() - start) / max(1, len(batch))
        completions = []
        for answer in answers:
            choice, usage = answer["choices"][0], answer.get("usage") or {}
            completions.append(Completion(text=choice["text"], prompt_tokens=int(usage.get("prompt_tokens", 0)),
                                          completion_tokens=int(usage.get("completion_tokens", 0)), seconds=share,
                                          finish_reason="length" if choice.get("finish_reason") == "length" else "stop"))
        return completions
