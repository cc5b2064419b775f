"""The one language-model interface evotox uses for both the system under test and the prompt generator.

A backend takes a batch of :class:`~sfbow_llm.chat.Request` objects and returns one
:class:`~sfbow_llm.chat.Completion` per request, in order: the request and completion types are sfbow_llm's (one
pair for the whole project, re-exported here). Batching is the backend's business: the local backend pads
the batch into one forward pass, the HTTP backend sends its requests concurrently, the scripted backend
answers from a function. A completion's ``seconds`` is its share of the batch's wall time, so the seconds of
a batch's completions sum to the batch's wall time (what the run's cost accounting records and sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sfbow_llm.chat import Completion, ContextLengthError, Request, check_requests

__all__ = ["BackendError", "Completion", "ContextLengthError", "LanguageModel", "Request", "check_requests"]


class BackendError(RuntimeError):
    """A backend could not answer (server unreachable, refused key, retries exhausted); the message says
    which backend, what happened and what to do."""


@runtime_checkable
class LanguageModel(Protocol):
    """What the search needs from a model: a batch of requests in, one completion per request out."""

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer every request, in order."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-able identity of the model for the run file's head (kind, model name, model file paths)."""
        ...
