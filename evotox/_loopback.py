"""The connection-bounded HTTP server under ``evotox serve`` (:mod:`evotox.serve` has the OpenAI part).

A thread per connection, as ``http.server`` does, but a connection may hold its thread only while it sends
its request promptly or waits for the model:

- at most ``max_connections`` connections have a thread; when all are taken, the connection that has
  been sending its request the longest is dropped (503) to make room, so a flood of half-open
  connections cannot lock out a real client; only when every connection is waiting for the model is a
  new one refused (503 with ``Retry-After``);
- each request (from its first byte, or from the end of the previous one on a kept-alive connection, to
  the end of its body) must arrive within ``client_timeout`` seconds in all, whatever its pace: a reaper
  thread answers 408 and hangs up on the ones that do not.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackHTTPServer"]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` on 127.0.0.1 with the connection bounds of the module docstring. The
    handler calls :meth:`reading` when it starts reading a request and :meth:`done_reading` when it has
    read it (False: the reaper hung up on it meanwhile; do not answer)."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of connections is accepted, not SYN-dropped

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], *, client_timeout: float,
                 max_connections: int) -> None:
        self.client_timeout = client_timeout
        self.max_connections = max_connections
        self.dropped = 0
        self._lock = threading.Lock()
        self._open = 0
        self._reading: dict[socket.socket, float] = {}  # connections sending a request -> since when
        self._stopped = threading.Event()
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def allowed_hosts(self) -> set[str]:
        """The ``Host`` header values that address this server (lower case)."""
        names = ("127.0.0.1", "localhost")
        return {f"{name}:{self.port}" for name in names} | (set(names) if self.port == 80 else set())

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admitted = self._open < self.max_connections or self._drop_oldest()
            if admitted:
                self._open += 1
                self._reading[request] = time.monotonic()
        if not admitted:
            _hang_up(request, 503, "every connection is waiting for the model; retry shortly")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open -= 1
                self._reading.pop(request, None)

    def reading(self, sock: socket.socket) -> None:
        with self._lock:
            self._reading.setdefault(sock, time.monotonic())

    def done_reading(self, sock: socket.socket) -> bool:
        with self._lock:
            return self._reading.pop(sock, None) is not None

    def reap_forever(self) -> None:
        """Until :meth:`shutdown`: hang up on connections that took over ``client_timeout`` for a request."""
        while not self._stopped.wait(min(0.25, self.client_timeout / 4)):
            cutoff = time.monotonic() - self.client_timeout
            with self._lock:
                for sock in [s for s, since in self._reading.items() if since <= cutoff]:
                    del self._reading[sock]
                    self.dropped += 1
                    _hang_up(sock, 408, f"the request did not arrive within client_timeout={self.client_timeout:g} s")

    def shutdown(self) -> None:
        self._stopped.set()
        super().shutdown()
        with self._lock:
            for sock in self._reading:
                _hang_up(sock, 503, "the server is stopping")
            self._reading.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is not worth a traceback
            super().handle_error(request, client_address)

    def _drop_oldest(self) -> bool:
        """Hang up on the connection sending its request the longest (lock held); False if none is."""
        if not self._reading:
            return False
        oldest = next(iter(self._reading))
        del self._reading[oldest]
        self.dropped += 1
        _hang_up(oldest, 503, "dropped to make room: too many connections were open, this one the slowest")
        return True


def _hang_up(sock: socket.socket, status: int, message: str) -> None:
    """Send a short JSON error without blocking, then shut the connection down (its thread sees EOF)."""
    body = json.dumps({"error": {"message": message, "code": status}}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n")
    with contextlib.suppress(OSError):  # a full buffer or a client already gone: hang up all the same
        sock.send(head.encode() + body, socket.MSG_DONTWAIT)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
