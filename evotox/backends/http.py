"""A backend for any OpenAI-compatible server: vLLM, llama.cpp's server, TGI, Ollama or a hosted API.

Requests go to ``{base_url}/chat/completions`` (default) or ``{base_url}/completions``; a batch is sent
concurrently, at most ``concurrency`` requests in flight for the whole backend (several searches sharing
one backend share that bound). The bearer key is read from the environment variable ``api_key_env``
(never from the command line or the run file). Each request has a ``timeout``; 429 and 5xx answers,
timeouts and refused connections are retried up to ``max_retries`` times with exponential backoff
(``Retry-After`` is honoured, capped at ``max_backoff``); 401/403 and other 4xx fail at once with the
server's message. With several ``base_urls`` the requests are spread round-robin, and a retry goes to the
next server, so a run survives one server going away.

Assistant pre-fill: with ``prefill="continue"`` (default) the pre-fill is sent as a last assistant
message with vLLM's ``continue_final_message`` flag (llama.cpp's server continues a last assistant message
by itself); ``prefill="message"`` sends the message without the flags (for servers that reject unknown
fields); ``prefill="none"`` drops it. The completions endpoint gets a plain transcript
(``System: ...\\n\\nUser: ...\\n\\nAssistant: <prefill>``). Stop strings go to the server and are also cut
locally, in case a server returns them.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evotox.backends.base import BackendError, Completion, PromptTooLongError, Request, check_requests
from shared_utils.checks import check_choice, check_positive_int, check_real

__all__ = ["HTTPBackend"]

_RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class HTTPBackend:
    """An OpenAI-compatible endpoint as an evotox backend (see the module docstring)."""

    def __init__(self, base_url: str | Sequence[str], *, model: str = "default", endpoint: str = "chat",
                 api_key_env: str | None = None, timeout: float = 120.0, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, concurrency: int = 8,
                 prefill: str = "continue") -> None:
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
            names = {"system": "System", "user": "User", "assistant": "Assistant"}
            turns = [f"{names[role]}: {content}" for role, content in request.messages]
            payload["prompt"] = "\n\n".join(turns) + "\n\nAssistant:" + (" " + request.prefill if request.prefill else "")
            return payload
        messages = [{"role": role, "content": content} for role, content in request.messages]
        if request.prefill and self.prefill != "none":
            messages.append({"role": "assistant", "content": request.prefill})
            if self.prefill == "continue":
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
        payload["messages"] = messages
        return payload

    def _one(self, request: Request) -> tuple[str, int, int, str]:
        body = json.dumps(self._payload(request)).encode()
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        with self._lock:
            server = next(self._next_server) % len(self.base_urls)
        failures: list[str] = []
        for attempt in range(self.max_retries + 1):
            url = self.base_urls[(server + attempt) % len(self.base_urls)] + path
            delay: float | None = None
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"),
                                            timeout=self.timeout) as response:
                    return self._parse(json.load(response), request, url)
            except urllib.error.HTTPError as error:
                detail = _error_text(error)
                if error.code in (401, 403):
                    raise BackendError(f"{url} refused the request with {error.code} ({detail}): check the key in "
                                       f"${self.api_key_env}" if self.api_key_env else
                                       f"{url} refused the request with {error.code} ({detail}): the server wants "
                                       "a key; pass --api-key-env VAR with the key in $VAR") from None
                if error.code not in _RETRYABLE:
                    if error.code in (400, 413) and any(w in detail.lower() for w in ("context", "too long", "length")):
                        raise PromptTooLongError(f"{url}: {detail}") from None
                    raise BackendError(f"{url} answered {error.code}: {detail}") from None
                failures.append(f"{error.code} {error.reason}")
                delay = _retry_after(error)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                reason = getattr(error, "reason", error)
                failures.append(f"{type(reason).__name__}: {reason}")
            if attempt < self.max_retries:
                wait = self.backoff * 2 ** attempt * (1 + random.random() / 2) if delay is None else delay
                time.sleep(min(self.max_backoff, wait))
        tried = ", ".join(self.base_urls)
        raise BackendError(f"gave up after {self.max_retries + 1} attempts on {tried}: {'; '.join(failures[-3:])}. "
                           "Check that the server is up and not overloaded, then resume the run")

    def _parse(self, data: Any, request: Request, url: str) -> tuple[str, int, int, str]:
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
            if not isinstance(text, str):
                text = "" if text is None else str(text)
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{url} sent a reply that is not an OpenAI-style completion: {str(data)[:200]}") from None
        if request.prefill and text.startswith(request.prefill):
            text = text[len(request.prefill):]  # a server that echoes the pre-filled start
        cuts = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
        if cuts:
            text = text[:min(cuts)]
        usage = data.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), finish


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read().decode("utf-8", "replace")
    except OSError:
        return str(error.reason)
    try:
        data = json.loads(raw)
        message = data.get("error", data)
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    except ValueError:
        return raw[:300] or str(error.reason)


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
