"""A small OpenAI-compatible server on 127.0.0.1 in front of any evotox backend (by default the local model).

For tests and demos of the HTTP path, not for production (use vLLM, TGI or llama.cpp's server there). It
answers ``POST /v1/chat/completions``, ``POST /v1/completions`` (the prompt is taken as one user turn) and
``GET /v1/models``. Requests that arrive together are answered as one batch: a worker thread collects
requests for up to ``batch_window`` seconds (at most ``max_batch``) and hands them to the backend at once,
so the lambda concurrent requests of an iteration become one batched forward pass. Bounded in every way:
loopback only, request bodies up to 1 MB, ``max_tokens`` up to ``max_tokens_cap``, at most ``max_queue``
waiting requests (beyond that: 429 with ``Retry-After``), an optional bearer key (else 401).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evotox.backends.base import LanguageModel, Request
from shared_utils.checks import check_positive_int, check_real

__all__ = ["OpenAICompatibleServer"]

_MAX_BODY = 1 << 20


class OpenAICompatibleServer:
    """Serve ``backend`` on ``http://127.0.0.1:{port}/v1`` (port 0: any free port; see :attr:`base_url`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, backend: LanguageModel, *, port: int = 0, model_name: str = "evotox-local",
                 api_key: str | None = None, batch_window: float = 0.02, max_batch: int = 16,
                 max_queue: int = 64, max_tokens_cap: int = 512) -> None:
        self.backend = backend
        self.model_name = model_name
        self.api_key = api_key
        self.batch_window = check_real(batch_window, "batch_window", minimum=0.0)
        self.max_batch = check_positive_int(max_batch, "max_batch")
        self.max_tokens_cap = check_positive_int(max_tokens_cap, "max_tokens_cap")
        self._queue: queue.Queue[tuple[Request, Future[Any]]] = queue.Queue(maxsize=check_positive_int(max_queue, "max_queue"))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self._running = threading.Event()
        self.requests_served = 0
        self.batches_served = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAICompatibleServer:
        self._running.set()
        self._threads = [threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          daemon=True, name="evotox-serve-http"),
                         threading.Thread(target=self._work, daemon=True, name="evotox-serve-model")]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections, fail the waiting requests, close the socket."""
        self._running.clear()
        self._httpd.shutdown()
        self._httpd.server_close()
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                break
            future.set_exception(RuntimeError("server stopped"))
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
            try:
                completions = self.backend.generate([request for request, _ in batch])
            except Exception as error:  # the HTTP handler reports it as a 500
                for _, future in batch:
                    future.set_exception(error)
                continue
            self.batches_served += 1
            self.requests_served += len(batch)
            for (_, future), completion in zip(batch, completions):
                future.set_result(completion)


def _handler_for(server: OpenAICompatibleServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and runs own the terminal
            return

        def _send(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            self._send(status, {"error": {"message": message, "code": status}}, headers)

        def _authorised(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._error(401, "missing or wrong bearer key")
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
            else:
                self._error(404, f"no such endpoint {self.path}")

        def do_POST(self) -> None:
            if not self._authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > _MAX_BODY:
                self._error(413 if length > _MAX_BODY else 400, "the body must be JSON of at most 1 MB")
                return
            try:
                data = json.loads(self.rfile.read(length))
                request, chat = _request_from(data, self.path.rstrip("/"), server.max_tokens_cap)
            except (ValueError, KeyError, TypeError) as error:
                self._error(400, f"bad request: {error}")
                return
            future = server.submit(request)
            if future is None:
                self._error(429, "too many waiting requests", {"Retry-After": "1"})
                return
            try:
                completion = future.result(timeout=600)
            except Exception as error:
                self._error(500, f"{type(error).__name__}: {error}")
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


def _request_from(data: Any, path: str, max_tokens_cap: int) -> tuple[Request, bool]:
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    if path == "/v1/chat/completions":
        chat = True
        messages = [(str(m["role"]), str(m["content"])) for m in data["messages"]]
        prefill = ""
        if messages and messages[-1][0] == "assistant":  # continue a pre-filled assistant turn
            prefill = messages.pop()[1]
    elif path == "/v1/completions":
        chat = False
        messages, prefill = [("user", str(data["prompt"]))], ""
    else:
        raise ValueError(f"no such endpoint {path}; use /v1/chat/completions or /v1/completions")
    stop = data.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
    max_tokens = min(int(data.get("max_tokens") or 64), max_tokens_cap)
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    request = Request(messages=tuple(messages), prefill=prefill, stop=stop, max_new_tokens=max_tokens,
                      temperature=float(data.get("temperature") or 0.0), seed=int(data.get("seed") or 0))
    return request, chat
