"""The one request and completion type of every language model in this project, and the one seed helper.

:class:`Request` is a chat request (messages, assistant pre-fill, stop strings, token limit, temperature,
seed); :class:`Completion` is one answer. sfbow_llm's :func:`~sfbow_llm.generation.generate` takes and returns
them, and so does every evotox backend (local, HTTP, llama.cpp, scripted), so a request means the same
thing whichever model answers it. :func:`derive_seed` turns names into seeds of :data:`SEED_BITS` bits, a
width every engine and server accepts. This module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sfbow_common.checks import check_int, check_positive_int, check_real
from sfbow_common.records import Record, set_checked

__all__ = ["ROLES", "SEED_BITS", "Completion", "ContextLengthError", "FinishReason", "Request", "check_requests",
           "derive_seed"]

#: Seeds are ints in ``[0, 2**SEED_BITS)``: they fit a signed 32-bit int, so CTranslate2, llama.cpp (32-bit
#: seeds), numpy, torch and OpenAI-compatible servers all take them unchanged.
SEED_BITS = 31
ROLES = ("system", "user", "assistant")
FinishReason = Literal["stop", "length"]


class ContextLengthError(ValueError):
    """A request does not leave room to generate within the model's context window. ``row`` is the
    request's index in the batch when known (the message then starts ``requests[row]``); ``detail`` is the
    rest of the message (what did not fit, or the server's refusal)."""

    def __init__(self, detail: str, *, row: int | None = None) -> None:
        super().__init__(detail if row is None else f"requests[{row}] {detail}")
        self.detail = detail
        self.row = row


@dataclass(frozen=True)
class Request(Record):
    """One chat request, checked when made (a bad field is a ``TypeError``/``ValueError`` naming it); a
    record (``to_dict``/``from_dict``, ``sfbow_common.records``): ``to_dict`` is what evotox's run files record
    and compare on resume.

    ``messages`` is stored as a tuple of ``(role, content)`` pairs, roles ``system``, ``user`` or
    ``assistant`` (the form the run files record); ``{"role": ..., "content": ...}`` mappings are accepted
    and converted. A plain string instead is raw text given to the model as it is, without a chat template
    (sfbow_llm and the llama.cpp backend take it; chat-only backends refuse it). ``prefill`` starts the
    assistant's reply (the completion's text excludes it). Generation stops at the first of ``stop``
    (non-empty strings; the text is cut before it), at the end of the turn, or after ``max_new_tokens``.
    ``temperature`` 0 is greedy; above it, sampling is seeded by ``seed`` (``[0, 2**SEED_BITS)``), so a
    request gets the same answer again (what makes a resumed run equal an uninterrupted one).
    """

    messages: tuple[tuple[str, str], ...] | str
    prefill: str = ""
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        messages = self.messages if isinstance(self.messages, str) else _messages(self.messages)
        if not isinstance(self.prefill, str):
            raise TypeError(f"prefill must be a string, got {type(self.prefill).__name__}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"stop must be a sequence of non-empty strings, got {self.stop!r}")
        set_checked(self, messages=messages, stop=tuple(self.stop),
                    max_new_tokens=check_positive_int(self.max_new_tokens, "max_new_tokens"),
                    temperature=check_real(self.temperature, "temperature", minimum=0.0),
                    seed=check_int(self.seed, "seed", minimum=0, maximum=2**SEED_BITS - 1))

    def chat_messages(self) -> list[dict[str, str]]:
        """The messages as ``{"role", "content"}`` dicts (what chat templates and OpenAI servers take)."""
        if isinstance(self.messages, str):
            raise ValueError("this request is raw text, not chat messages; give it as (role, content) pairs")
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class Completion:
    """One answer. ``text`` excludes the pre-fill and the stop string; ``finish_reason`` is ``"stop"`` (a
    stop string, then named in ``stop``, or the end of the turn, ``stop`` None) or ``"length"`` (the token
    limit or the context's end); ``completion_tokens`` counts the generated tokens up to the one that
    finished the row.

    ``seconds`` is this row's share of the wall time of the call that produced it: the rows of one call
    share its duration evenly (a backend that simulates costs, like evotox's scripted one, reports its
    simulated share instead). So the ``seconds`` of one call's completions sum to that call's duration, and
    summing them over calls gives the model time spent; their maximum means nothing.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: FinishReason = "stop"
    stop: str | None = None


def check_requests(requests: Sequence[Request]) -> list[Request]:
    """The batch as a list, after checking that every item is a :class:`Request` (errors name the index)."""
    batch = list(requests)
    for i, request in enumerate(batch):
        if not isinstance(request, Request):
            raise TypeError(f"requests[{i}] must be an sfbow_llm.chat.Request, got {type(request).__name__}")
    return batch


def derive_seed(*parts: int | str) -> int:
    """A seed in ``[0, 2**SEED_BITS)`` named by ``parts``: the SHA-256 of the parts joined with ``/``.

    The same parts give the same seed in every process and version (unlike ``hash()``); the parts are a
    path, so ``("a", "b")`` and ``("a/b",)`` name the same seed, and ints count as their decimal text. This
    is how evotox seeds each request (``derive_seed(random_seed, call_key)``, recorded in its run files).
    """
    if not parts:
        raise ValueError("derive_seed needs at least one part to name the seed")
    for i, part in enumerate(parts):
        if isinstance(part, bool) or not isinstance(part, (int, str)):
            raise TypeError(f"derive_seed's parts must be ints or strings; part {i} is {type(part).__name__}")
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & (2**SEED_BITS - 1)


def _messages(raw: object) -> tuple[tuple[str, str], ...]:
    """``raw`` as ``(role, content)`` pairs, each checked (errors name the message's index)."""
    if isinstance(raw, (bytes, Mapping)) or not isinstance(raw, Sequence) or not raw:
        raise ValueError("messages must be a non-empty sequence of (role, content) pairs or {'role', 'content'} "
                         f"dicts, or a string of raw text; got {type(raw).__name__} {str(raw)[:40]!r}")
    pairs = []
    for i, message in enumerate(raw):
        if isinstance(message, Mapping):
            if set(message) != {"role", "content"}:
                raise ValueError(f"messages[{i}] must have exactly the keys role and content, got {sorted(message)}")
            role, content = message["role"], message["content"]
        elif isinstance(message, Sequence) and not isinstance(message, str) and len(message) == 2:
            role, content = message
        else:
            raise ValueError(f"messages[{i}] must be a (role, content) pair or a {{'role', 'content'}} dict, got "
                             f"{type(message).__name__}")
        if role not in ROLES or not isinstance(content, str):
            raise ValueError(f"messages[{i}] is ({role!r}, {type(content).__name__}); roles are system, user, "
                             "assistant and contents strings")
        pairs.append((role, content))
    return tuple(pairs)
