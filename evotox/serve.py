"""A small OpenAI-compatible server on 127.0.0.1 in front of any evotox backend (by default the local model).

For tests and demos of the HTTP path, not for production (use vLLM, TGI or llama.cpp's server there). It
answers ``POST /v1/chat/completions``, ``POST /v1/completions`` (the prompt is taken as one user turn) and
``GET /v1/models``. Requests that arrive together are answered as one batch: a worker thread collects
requests for up to ``batch_window`` seconds (at most ``max_batch``) and hands them to the backend at once,
so the lambda concurrent requests of an iteration become one batched forward pass. Each request is
validated on its own before it joins a batch (400 naming the field), and a batch the backend fails is
answered request by request, so one bad request fails alone and never takes the others with it.

Bounded in every way:

- loopback only; the ``Host`` header must be ``127.0.0.1:PORT`` or ``localhost:PORT`` (else 421) and an
  ``Origin`` header, when a browser sends one, that same origin (else 403): a web page cannot drive the
  model through DNS rebinding or a cross-site form. A body must be ``Content-Type: application/json``
  (else 415; a browser cannot send that cross-site without a CORS preflight, which is never granted);
- a body needs a ``Content-Length`` (411 without, 400 when not a number) of at most 1 MB (413); it must be
  UTF-8 standard JSON (400 for NaN, ``1e400``, nesting too deep);
- a client has ``client_timeout`` seconds (10) to send each whole request, headers and body (a slow or
  silent connection gets 408 and is closed), at most ``max_connections`` (64) connections hold a thread, and
  when all are taken the connection that has been sending its request the longest is dropped to make room
  (503 only when every connection is waiting for the model): half-open connections never stop the server
  answering;
- ``max_tokens`` up to ``max_tokens_cap``, at most ``max_queue`` waiting requests (beyond that: 429 with
  ``Retry-After``), an optional bearer key (else 401).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler
from typing import Any

from evotox._loopback import LoopbackHTTPServer
from evotox.backends.base import LanguageModel
from sfbow_common.bounded_http import JSONError, parse_json
from sfbow_common.checks import check_int, check_positive_int, check_real
from sfbow_llm.chat import ROLES, SEED_BITS, ContextLengthError, Request

__all__ = ["OpenAICompatibleServer"]

_MAX_BODY = 1 << 20
_MAX_STOPS = 16
_ENDPOINTS = {"/v1/chat/completions": True, "/v1/completions": False}


class OpenAICompatibleServer:
    """Serve ``backend`` on ``http://127.0.0.1:{port}/v1`` (port 0: any free port; see :attr:`base_url`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, backend: LanguageModel, *, port: int = 0, model_name: str = "evotox-local",
                 api_key: str | None = None, batch_window: float = 0.02, max_batch: int = 16,
                 max_queue: int = 64, max_tokens_cap: int = 512, client_timeout: float = 10.0,
                 max_connections: int = 64) -> None:
        self.backend = backend
        self.model_name = model_name
        self.api_key = api_key
        self.batch_window = check_real(batch_window, "batch_window", minimum=0.0)
        self.max_batch = check_positive_int(max_batch, "max_batch")
        self.max_tokens_cap = check_positive_int(max_tokens_cap, "max_tokens_cap")
        self._queue: queue.Queue[tuple[Request, Future[Any]]] = queue.Queue(maxsize=check_positive_int(max_queue, "max_queue"))
        timeout = check_real(client_timeout, "client_timeout", minimum=0.0, exclusive_minimum=True)
        self._httpd = LoopbackHTTPServer(port, _handler_for(self, timeout), client_timeout=timeout,
                                         max_connections=check_positive_int(max_connections, "max_connections"))
        self._threads: list[threading.Thread] = []
        self._running = threading.Event()
        self.requests_served = 0
        self.batches_served = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.port}/v1"

    @property
    def dropped_connections(self) -> int:
        """Connections closed for sending their request too slowly, or dropped to make room."""
        return self._httpd.dropped

    def start(self) -> OpenAICompatibleServer:
        self._running.set()
        self._threads = [threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          daemon=True, name="evotox-serve-http"),
                         threading.Thread(target=self._httpd.reap_forever, daemon=True, name="evotox-serve-reaper"),
                         threading.Thread(target=self._work, daemon=True, name="evotox-serve-model")]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections, hang up on clients still sending, fail the waiting requests, close
        the socket."""
        self._running.clear()
        self._httpd.shutdown()
        self._httpd.server_close()
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                break
            future.set_exception(_Stopped("the server is stopping"))
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, request: Request) -> Future[Any] | None:
        """Queue one request for the model; ``None`` when the queue is full."""
        future: Future[Any] = Future()
        try:
            self._queue.put_nowait((request, future))
        except queue.Full:
            return None
        return future

    def _work(self) -> None:
        while self._running.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._answer(batch)

    def _answer(self, batch: list[tuple[Request, Future[Any]]]) -> None:
        """One forward pass for the batch; if it fails, each request alone, so that a failure is reported
        only to the request that caused it."""
        try:
            completions = self.backend.generate([request for request, _ in batch])
            if len(completions) != len(batch):
                raise RuntimeError(f"the backend answered {len(completions)} of {len(batch)} requests")
        except Exception as error:  # the HTTP handler reports it
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for single in batch:
                self._answer([single])
            return
        self.batches_served += 1
        self.requests_served += len(batch)
        for (_, future), completion in zip(batch, completions):
            future.set_result(completion)


class _Stopped(RuntimeError):
    """The server stopped before the model answered; answered with 503."""


class _BadRequest(ValueError):
    """A request field that is missing or wrong (the message names it); answered with 400."""


def _handler_for(server: OpenAICompatibleServer, client_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # each socket read and write: a backstop past the reaper's deadline for the whole request, so that
        # a slow client is answered 408 by the reaper rather than dropped silently by a read's timeout
        timeout = client_timeout + 1.0
        server: LoopbackHTTPServer
        _reading = False

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and runs own the terminal
            return

        def handle_one_request(self) -> None:
            self._reading = True
            self.server.reading(self.connection)
            super().handle_one_request()

        def _done_reading(self) -> bool:
            """The request is read: the reaper lets go of it. False if it was hung up on meanwhile."""
            if not self._reading:
                return True
            self._reading = False
            if self.server.done_reading(self.connection):
                return True
            self.close_connection = True
            return False

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            if self._done_reading():
                super().send_error(code, message, explain)

        def _send(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            if not self._done_reading():
                return
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None, *,
                   close: bool = False) -> None:
            """Answer an error; ``close`` when the request's body was not read (the stream is out of step)."""
            if close:
                self.close_connection = True
            self._send(status, {"error": {"message": message, "code": status}}, headers)

        def _admitted(self) -> bool:
            """Host, Origin and key, checked for every request before its body is read."""
            hosts = self.server.allowed_hosts()
            host = (self.headers.get("Host") or "").strip().lower()
            if host not in hosts:
                self._error(421, f"the Host header {host[:100]!r} is not this server's address (one of "
                                 f"{', '.join(sorted(hosts))}); requests for another name are refused, "
                                 "which stops DNS rebinding", close=True)
                return False
            origin = self.headers.get("Origin")
            if origin is not None and origin.strip().lower() not in {f"http://{host}" for host in hosts}:
                self._error(403, f"requests from the web origin {origin[:100]!r} are refused: this server "
                                 "answers local programs only", close=True)
                return False
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._error(401, "missing or wrong bearer key", close=True)
                return False
            return True

        def do_GET(self) -> None:
            if not self._admitted():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
            else:
                self._error(404, f"no such endpoint {self.path[:200]}")

        def do_POST(self) -> None:
            if not self._admitted():
                return
            chat = _ENDPOINTS.get(self.path.rstrip("/"))
            if chat is None:
                self._error(404, f"no such endpoint {self.path[:200]}; use /v1/chat/completions or /v1/completions",
                            close=True)
                return
            length = self._content_length()
            if length is None:
                return
            raw = self.rfile.read(length)
            if not self._done_reading():
                return  # too slow: the reaper answered 408 and hung up
            if len(raw) < length:
                self.close_connection = True  # the client went away in the middle of its body
                return
            try:
                request = _request_from(parse_json(raw, "the body"), chat, server.max_tokens_cap)
            except (JSONError, _BadRequest) as error:
                self._error(400, f"bad request: {error}")
                return
            future = server.submit(request)
            if future is None:
                self._error(429, "too many waiting requests", {"Retry-After": "1"})
                return
            self._reply(future, chat)

        def _content_length(self) -> int | None:
            """The body's announced length, or answer 411/400/413/415 and return None."""
            if self.headers.get("Transfer-Encoding") is not None:
                self._error(411, "send the body with a Content-Length (chunked request bodies are not accepted)",
                            close=True)
                return None
            text = self.headers.get("Content-Length")
            if text is None:
                self._error(411, "a POST needs a Content-Length header", close=True)
                return None
            text = text.strip()
            if not (text.isascii() and text.isdigit()) or int(text) == 0:
                self._error(400, f"Content-Length {text[:40]!r} is not a positive whole number of bytes", close=True)
                return None
            if int(text) > _MAX_BODY:
                self._error(413, f"the body is {text} bytes; at most {_MAX_BODY} are accepted", close=True)
                return None
            media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if media != "application/json":
                self._error(415, f"Content-Type must be application/json, got {media[:60]!r}", close=True)
                return None
            return int(text)

        def _reply(self, future: Future[Any], chat: bool) -> None:
            try:
                completion = future.result(timeout=600)
            except FutureTimeout:
                self._error(503, "the model did not answer within 600 s", {"Retry-After": "10"})
                return
            except _Stopped as error:
                self._error(503, str(error))
                return
            except ValueError as error:  # the request does not fit this model (e.g. the context window)
                kind = "prompt too long" if isinstance(error, ContextLengthError) else "bad request"
                self._error(400, f"{kind}: {error}")
                return
            except Exception as error:
                self._error(500, f"the model failed on this request: {type(error).__name__}: {error}")
                return
            choice: dict[str, Any] = {"index": 0, "finish_reason": completion.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": completion.text}
            else:
                choice["text"] = completion.text
            self._send(200, {"object": "chat.completion" if chat else "text_completion", "model": server.model_name,
                             "choices": [choice],
                             "usage": {"prompt_tokens": completion.prompt_tokens,
                                       "completion_tokens": completion.completion_tokens,
                                       "total_tokens": completion.prompt_tokens + completion.completion_tokens}})

    return Handler


def _request_from(data: Any, chat: bool, max_tokens_cap: int) -> Request:
    """The evotox request in an OpenAI-style body, every field checked (``_BadRequest`` names the field)."""
    if not isinstance(data, dict):
        raise _BadRequest("the body must be a JSON object")
    if data.get("stream"):
        raise _BadRequest("stream: streaming is not supported; leave stream out or false")
    if data.get("n", 1) not in (1, None):
        raise _BadRequest("n: one choice per request is supported; leave n out or 1")
    prefill = ""
    if chat:
        messages = _messages(data.get("messages"))
        if messages[-1][0] == "assistant":  # continue a pre-filled assistant turn
            prefill = messages.pop()[1]
        if not messages:
            raise _BadRequest("messages: a lone assistant turn has nothing to answer; add a system or user turn")
    else:
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            raise _BadRequest(f"prompt must be a string, got {_kind(prompt)}")
        messages = [("user", prompt)]
    stop = data.get("stop")
    stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, (list, tuple)) or len(stops) > _MAX_STOPS or \
            not all(isinstance(s, str) and s for s in stops):
        raise _BadRequest(f"stop must be a non-empty string or a list of at most {_MAX_STOPS} of them")
    try:
        max_tokens = check_positive_int(_given(data, "max_tokens", 64), "max_tokens")
        temperature = check_real(_given(data, "temperature", 0.0), "temperature", minimum=0.0)
        seed = check_int(_given(data, "seed", 0), "seed", minimum=0, maximum=2**SEED_BITS - 1)
        request = Request(messages=tuple(messages), prefill=prefill, stop=tuple(stops),
                          max_new_tokens=min(max_tokens, max_tokens_cap), temperature=temperature, seed=seed)
    except (TypeError, ValueError) as error:
        raise _BadRequest(str(error)) from None
    return request


def _messages(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise _BadRequest(f"messages must be a non-empty list of {{role, content}} objects, got {_kind(raw)}")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _BadRequest(f"messages[{i}] must be an object with role and content, got {_kind(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _BadRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {str(role)[:40]!r}")
        if not isinstance(content, str):
            raise _BadRequest(f"messages[{i}].content must be a string, got {_kind(content)}")
        messages.append((role, content))
    return messages


def _given(data: dict[str, Any], name: str, default: object) -> object:
    """``data[name]``, or ``default`` when it is missing or null."""
    value = data.get(name)
    return default if value is None else value


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a JSON {type(value).__name__}"
