"""The one language-model interface evotox uses for both the system under test and the prompt generator.

A backend takes a batch of :class:`Request` objects and returns one :class:`Completion` per request, in
order. Batching is the backend's business: the local backend pads the batch into one forward pass, the
HTTP backend sends its requests concurrently, the scripted backend answers from a function. The rows of
one batch share its wall time evenly, so the ``seconds`` of a batch's completions sum to the batch's wall
time (what the run's cost accounting needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared_utils.checks import check_nonnegative, check_positive_int

__all__ = ["BackendError", "Completion", "LanguageModel", "PromptTooLongError", "Request", "check_requests"]


class BackendError(RuntimeError):
    """A backend could not answer (server unreachable, refused key, retries exhausted); the message says
    which backend, what happened and what to do."""


class PromptTooLongError(ValueError):
    """A request does not fit the model's context window together with the tokens it asks for."""


@dataclass(frozen=True)
class Request:
    """One chat request.

    ``messages`` are ``(role, content)`` pairs (roles ``system``, ``user``, ``assistant``); ``prefill``
    starts the assistant's reply (the reply text returned excludes it); generation stops at the first of
    ``stop`` (the stop string is not part of the text) or after ``max_new_tokens``. ``temperature`` 0 is
    greedy; otherwise sampling is seeded by ``seed``, so that a request always gets the same answer from
    the same backend (what makes a resumed run equal an uninterrupted one).
    """

    messages: tuple[tuple[str, str], ...]
    prefill: str = ""
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0

    def to_json(self) -> dict[str, object]:
        """The request as plain JSON data (what the run file records)."""
        return {"messages": [list(m) for m in self.messages], "prefill": self.prefill, "stop": list(self.stop),
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed}


@dataclass(frozen=True)
class Completion:
    """One answer: its text (without pre-fill and stop string), token counts, and its share of the wall
    time of the batch it came in. ``finish_reason`` is ``"stop"`` (stop string or end of turn) or
    ``"length"`` (``max_new_tokens`` reached)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str = "stop"
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class LanguageModel(Protocol):
    """What the search needs from a model: a batch of requests in, one completion per request out."""

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer every request, in order."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-able identity of the model for the run file's head (kind, model name, model file paths)."""
        ...


def check_requests(requests: Sequence[Request]) -> list[Request]:
    """Validate a batch before any work is done; errors name the request index."""
    batch = list(requests)
    for i, request in enumerate(batch):
        if not isinstance(request, Request):
            raise TypeError(f"requests[{i}] must be an evotox Request, got {type(request).__name__}")
        if not request.messages:
            raise ValueError(f"requests[{i}] has no messages")
        for role, content in request.messages:
            if role not in ("system", "user", "assistant") or not isinstance(content, str):
                raise ValueError(f"requests[{i}] has a bad message ({role!r}, {type(content).__name__}); roles are "
                                 "system, user, assistant and contents strings")
        check_positive_int(request.max_new_tokens, f"requests[{i}].max_new_tokens")
        check_nonnegative(request.temperature, f"requests[{i}].temperature")
    return batch
