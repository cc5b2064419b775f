"""Chat requests shared by the generation tests of both engines."""

from __future__ import annotations

import dataclasses

from sfbow_llm.chat import Request

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def chat(question: str, **kwargs) -> Request:
    """A user question after the usual system message."""
    return Request([SYSTEM, {"role": "user", "content": question}], **kwargs)


def limited(rows: list[Request], max_new_tokens: int, **fields) -> list[Request]:
    """The rows with another token limit (and other fields)."""
    return [dataclasses.replace(r, max_new_tokens=max_new_tokens, **fields) for r in rows]
