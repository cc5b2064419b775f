"""Scripted stand-ins for unit tests of the search logic: a backend whose answers come from a Python
function, and an oracle whose scores do.

The backend honours the request's stop strings and token limit (whitespace tokens) the way a real model would,
counts its batches and requests, can be told to raise after a number of requests (to simulate a
killed run), and reports ``seconds_per_token`` x completion tokens as each call's cost (0 by default: the
engine then records measured time), so cost accounting can be tested exactly. It never stands in for a model in a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sfbow_llm.chat import Completion, FinishReason, Request, check_requests

__all__ = ["ScriptedBackend", "ScriptedOracle", "SimulatedCrash"]


class SimulatedCrash(KeyboardInterrupt):
    """Raised by :class:`ScriptedBackend` when its ``crash_after`` budget of requests is used up."""


class ScriptedBackend:
    """Answer each request with ``respond(request)``; record every batch in ``batches``."""

    def __init__(self, respond: Callable[[Request], str], *, name: str = "scripted",
                 crash_after: int | None = None, seconds_per_token: float = 0.0) -> None:
        self.respond = respond
        self.seconds_per_token = seconds_per_token
        self.name = name
        self.crash_after = crash_after
        self.batches: list[list[Request]] = []
        self.requests_answered = 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        batch = check_requests(requests)
        self.batches.append(batch)
        completions = []
        for request in batch:
            if self.crash_after is not None and self.requests_answered >= self.crash_after:
                raise SimulatedCrash(f"{self.name}: simulated crash after {self.requests_answered} requests")
            completions.append(self._answer(request))
            self.requests_answered += 1
        return completions

    def _answer(self, request: Request) -> Completion:
        text = self.respond(request)
        hits = [(text.find(s), s) for s in request.stop if s in text]
        stop = min(hits)[1] if hits else None
        if stop is not None:
            text = text[:text.find(stop)]
        finish: FinishReason = "stop"
        words = text.split(" ")
        if len(words) > request.max_new_tokens:
            text, finish, stop = " ".join(words[:request.max_new_tokens]), "length", None
        prompt_tokens = (len(request.messages.split()) if isinstance(request.messages, str) else
                         sum(len(content.split()) for _, content in request.messages))
        tokens = len(text.split())
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=tokens,
                          seconds=self.seconds_per_token * (tokens + 1), finish_reason=finish, stop=stop)

    def describe(self) -> dict[str, object]:
        return {"kind": "scripted", "name": self.name}


class ScriptedOracle:
    """Scores from ``score_text(text) -> one score per attribute``; records every batch it scored."""

    def __init__(self, score_text: Callable[[str], Sequence[float]], attributes: Sequence[str] = ("toxic",)) -> None:
        self.score_text = score_text
        self.attributes = tuple(attributes)
        self.batches: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return np.array([list(self.score_text(t)) for t in texts], dtype=float).reshape(len(texts), len(self.attributes))

    def describe(self) -> dict[str, object]:
        return {"kind": "scripted", "attributes": list(self.attributes)}
