"""Shared test fixtures: where the real STS data lives (see :mod:`sfbow_common.data`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfbow_common.data import data_path, missing_data

#: ``sts/stsbenchmark`` under the data root (``$SFBOW_DATA_DIR``, else ``../shared`` beside the repository).
STSB_DIR = data_path("sts", "stsbenchmark")


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-dev.csv").is_file():
        pytest.skip(missing_data(STSB_DIR / "sts-dev.csv"))
    return STSB_DIR


class HostileServer:
    """A raw-socket HTTP server on 127.0.0.1 for the HTTP clients' error paths: it reads each request
    (headers, then a ``Content-Length`` body) and answers with ``script(server, conn, request)``, which may
    write any bytes at any pace (``server.send``, ``server.pause``). It records the requests and counts the
    bytes it sent; its loops stop when the client hangs up or the server is closed."""

    def __init__(self, script) -> None:
        import socket
        import threading

        self.script = script
        self.requests: list[dict] = []
        self.sent = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def hits(self) -> int:
        return len(self.requests)

    def send(self, conn, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def pause(self, seconds: float) -> bool:
        """Wait; False once the server is closing (end the script)."""
        return not self.stopping.wait(seconds)

    def _accept(self) -> None:
        import threading

        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn) -> None:
        conn.settimeout(5)
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 1 << 16:
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    data += piece
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = min(int(headers.get("content-length", "0")), 1 << 20)
                while len(body) < length:
                    piece = conn.recv(4096)
                    if not piece:
                        break
                    body += piece
                method, path = lines[0].split(" ")[:2]
                self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
                self.script(self, conn, self.requests[-1])
            except OSError:
                pass  # the client hung up: the script's loop ends here

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def hostile_server():
    """Start :class:`HostileServer` objects: ``hostile_server(script)``; all are closed after the test."""
    servers: list[HostileServer] = []

    def start(script) -> HostileServer:
        servers.append(HostileServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
