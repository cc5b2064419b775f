"""A backend for any OpenAI-compatible server: vLLM, llama.cpp's server, TGI, Ollama or a hosted API.

Requests go to ``{base_url}/chat/completions`` (default) or ``{base_url}/completions``; a batch is sent
concurrently, at most ``concurrency`` requests in flight for the whole backend (several searches sharing
one backend share that bound). The bearer key is read from the environment variable ``api_key_env``
(never from the command line or the run file). With several ``base_urls`` the requests are spread
round-robin, and a retry goes to the next server, so a run survives one server going away.

Limits (through :mod:`sfbow_common.bounded_http`, the one bounded HTTP client): each attempt finishes
within ``timeout`` seconds *in total* (connect, send, headers, body; a server dripping a byte a second is
cut off), and a reply body may be at most ``max_response_bytes`` (16 MiB; a larger ``Content-Length`` is
refused unread, a longer or endless body as soon as it passes the cap). Redirects are never followed: a 3xx
is a ``BackendError`` naming its ``Location``, so the bearer key never goes to another origin and a POST
never becomes a GET. What is retried, up to ``max_retries`` times with exponential backoff (``Retry-After``
honoured, capped at ``max_backoff``): 408, 425, 429 and 5xx answers, timeouts and connection faults (refused,
reset, closed without answering, a bad status line, a body cut short). A 200 that is not an OpenAI-style
completion (not JSON, not UTF-8, an HTML page, NaN, nesting too deep, ``usage`` not an object of
non-negative integers, a non-string content) is retried once, since it may be a proxy's glitch or one bad
server among several; a second one fails. What fails at once: 401/403 (naming the key's variable), other
4xx (a context-length message becomes sfbow_llm's ``ContextLengthError``), a redirect, a reply over the cap. Every
error is one ``BackendError`` naming the URL and what was wrong.

Assistant pre-fill: with ``prefill="continue"`` (default) the pre-fill is sent as a last assistant
message with vLLM's ``continue_final_message`` flag (llama.cpp's server continues a last assistant message
by itself); ``prefill="message"`` sends the message without the flags (for servers that reject unknown
fields); ``prefill="none"`` drops it. The completions endpoint gets a plain transcript
(``System: ...\\n\\nUser: ...\\n\\nAssistant: <prefill>``), or a raw-text request as it is (the chat endpoint
refuses raw text). Stop strings go to the server and are also cut
locally, in case a server returns them.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evotox.backends.base import BackendError
from sfbow_common.bounded_http import HTTPFault, JSONError, Reply, parse_json, post
from sfbow_common.checks import check_choice, check_positive_int, check_real
from sfbow_llm.chat import Completion, ContextLengthError, FinishReason, Request, check_requests

__all__ = ["HTTPBackend"]

_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
#: A 200 that is not a completion is retried this many times (on the next server, if there are several).
_MALFORMED_RETRIES = 1


class HTTPBackend:
    """An OpenAI-compatible endpoint as an evotox backend (see the module docstring)."""

    def __init__(self, base_url: str | Sequence[str], *, model: str = "default", endpoint: str = "chat",
                 api_key_env: str | None = None, timeout: float = 120.0, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, concurrency: int = 8,
                 prefill: str = "continue", max_response_bytes: int = 16 << 20) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("base_url is empty: give the server's URL, e.g. http://127.0.0.1:8000/v1")
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"base_url {url!r} must start with http:// or https://, e.g. http://127.0.0.1:8000/v1")
        self.base_urls = [url.rstrip("/") for url in urls]
        self.model = model
        self.endpoint = check_choice(endpoint, "endpoint", ("chat", "completions"))
        self.prefill = check_choice(prefill, "prefill", ("continue", "message", "none"))
        self.timeout = check_real(timeout, "timeout", minimum=0.0, exclusive_minimum=True)
        self.max_retries = int(check_real(max_retries, "max_retries", minimum=0))
        self.backoff = check_real(backoff, "backoff", minimum=0.0)
        self.max_backoff = check_real(max_backoff, "max_backoff", minimum=0.0)
        self.concurrency = check_positive_int(concurrency, "concurrency")
        self.max_response_bytes = check_positive_int(max_response_bytes, "max_response_bytes")
        self.api_key_env = api_key_env
        self._key: str | None = None
        if api_key_env is not None:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise BackendError(f"the environment variable {api_key_env} (the API key) is not set or empty; "
                                   f"export {api_key_env}=... or run without --api-key-env for a server without keys")
        self._next_server = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="evotox-http")
        self._lock = threading.Lock()

    def describe(self) -> dict[str, object]:
        return {"kind": "http", "base_urls": self.base_urls, "model": self.model, "endpoint": self.endpoint,
                "api_key_env": self.api_key_env, "prefill": self.prefill, "files": []}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        batch = check_requests(requests)
        if self.endpoint == "chat":
            for i, request in enumerate(batch):
                if isinstance(request.messages, str):
                    raise ValueError(f"requests[{i}] is raw text, which the chat endpoint cannot take; give chat "
                                     "messages, or use endpoint='completions'")
        start = time.perf_counter()
        futures = [self._pool.submit(self._one, request) for request in batch]
        answers = [future.result() for future in futures]
        share = (time.perf_counter() - start) / max(1, len(batch))
        return [Completion(text, prompt_tokens, completion_tokens, share, finish)
                for text, prompt_tokens, completion_tokens, finish in answers]

    # -- one request --------------------------------------------------------------------------------------
    def _payload(self, request: Request) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "max_tokens": request.max_new_tokens,
                                   "temperature": request.temperature, "seed": request.seed}
        if request.stop:
            payload["stop"] = list(request.stop)
        if self.endpoint == "completions":
            if isinstance(request.messages, str):  # raw text: sent as it is
                payload["prompt"] = request.messages + request.prefill
                return payload
            names = {"system": "System", "user": "User", "assistant": "Assistant"}
            turns = [f"{names[role]}: {content}" for role, content in request.messages]
            payload["prompt"] = "\n\n".join(turns) + "\n\nAssistant:" + (" " + request.prefill if request.prefill else "")
            return payload
        messages = request.chat_messages()
        if request.prefill and self.prefill != "none":
            messages.append({"role": "assistant", "content": request.prefill})
            if self.prefill == "continue":
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
        payload["messages"] = messages
        return payload

    def _one(self, request: Request) -> tuple[str, int, int, FinishReason]:
        body = json.dumps(self._payload(request)).encode()
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        with self._lock:
            server = next(self._next_server) % len(self.base_urls)
        failures: list[str] = []
        malformed = 0
        for attempt in range(self.max_retries + 1):
            url = self.base_urls[(server + attempt) % len(self.base_urls)] + path
            delay: float | None = None
            try:
                reply = post(url, body, headers, timeout=self.timeout, max_bytes=self.max_response_bytes)
            except HTTPFault as fault:
                if fault.kind not in ("connection", "timeout"):  # a redirect, a reply too large, TLS: final
                    raise BackendError(str(fault)) from None
                failures.append(str(fault))
            else:
                if 200 <= reply.status < 300:
                    try:
                        return self._parse(reply, request, url)
                    except (JSONError, _BadReply) as error:
                        malformed += 1
                        message = f"{url} sent a 200 that is not an OpenAI-style completion: {error} ({reply.sample()})"
                        if malformed > _MALFORMED_RETRIES:
                            raise BackendError(message) from None
                        failures.append(message)
                else:
                    self._refuse(reply, url)
                    failures.append(f"{url} answered {reply.status} {reply.reason}")
                    delay = reply.retry_after()
            if attempt < self.max_retries:
                wait = self.backoff * 2 ** attempt * (1 + random.random() / 2) if delay is None else delay
                time.sleep(min(self.max_backoff, wait))
        tried = ", ".join(self.base_urls)
        raise BackendError(f"gave up after {self.max_retries + 1} attempts on {tried}: {'; '.join(failures[-3:])}. "
                           "Check that the server is up and not overloaded, then resume the run")

    def _refuse(self, reply: Reply, url: str) -> None:
        """Raise for an error status that a retry cannot help; return for 408, 425, 429 and 5xx."""
        if reply.status in _RETRYABLE:
            return
        detail = reply.message()
        if reply.status in (401, 403):
            raise BackendError(f"{url} refused the request with {reply.status} ({detail}): check the key in "
                               f"${self.api_key_env}" if self.api_key_env else
                               f"{url} refused the request with {reply.status} ({detail}): the server wants "
                               "a key; pass --api-key-env VAR with the key in $VAR")
        if reply.status in (400, 413) and any(w in detail.lower() for w in ("context", "too long", "length")):
            raise ContextLengthError(f"{url}: {detail}")
        raise BackendError(f"{url} answered {reply.status}: {detail}")

    def _parse(self, reply: Reply, request: Request, url: str) -> tuple[str, int, int, FinishReason]:
        """The text, token counts and finish reason of a 200, checked field by field (``_BadReply`` or
        ``JSONError`` say which field is wrong; nothing of a malformed reply is ever printed whole)."""
        data = parse_json(reply.body, "the reply")
        if not isinstance(data, dict):
            raise _BadReply(f"the reply is a JSON {type(data).__name__}, not an object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _BadReply("'choices' is not a non-empty list of objects")
        choice = choices[0]
        if self.endpoint == "chat":
            message = choice.get("message")
            if not isinstance(message, dict):
                raise _BadReply("choices[0].message is not an object")
            text, field = message.get("content"), "choices[0].message.content"
        else:
            text, field = choice.get("text"), "choices[0].text"
        if text is None:
            text = ""  # a reply with no content (e.g. only a refusal or tool call): an empty answer
        elif not isinstance(text, str):
            raise _BadReply(f"{field} is a JSON {type(text).__name__}, not a string")
        usage = data.get("usage")
        if usage is None:
            usage = {}
        elif not isinstance(usage, dict):
            raise _BadReply(f"'usage' is a JSON {type(usage).__name__}, not an object")
        counts = []
        for name in ("prompt_tokens", "completion_tokens"):
            value = usage.get(name)
            if value is None:
                value = 0
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _BadReply(f"usage.{name} is {str(value)[:40]!r}, not a non-negative integer")
            counts.append(value)
        if request.prefill and text.startswith(request.prefill):
            text = text[len(request.prefill):]  # a server that echoes the pre-filled start
        cuts = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
        if cuts:
            text = text[:min(cuts)]
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
        return text, counts[0], counts[1], finish


class _BadReply(ValueError):
    """A 200 whose JSON is not an OpenAI-style completion (the message names the field)."""
