"""Bounded HTTP: one JSON ``POST`` whose total time, reply size and redirects are bounded, and one strict JSON
reader. The one HTTP client of the distribution (evotox's HTTP backend, sfbow_llm's Perspective oracle) and the
JSON reader of evotox's loopback server, so that every HTTP path has the same limits.

- **Total deadline.** :func:`post` finishes (connect, TLS handshake, send, status line, headers, body) within
  ``timeout`` seconds in all, not per socket read: a watchdog shuts the socket down at the deadline, so a server
  that drips a byte a second is cut off after ``timeout`` seconds.
- **Size cap.** A reply announcing a ``Content-Length`` over ``max_bytes`` is refused before its body is read;
  any other body (chunked, or read to the close) is read in 64 KiB pieces and refused as soon as it passes
  ``max_bytes``. Nothing larger than the cap plus one piece is ever allocated. An error reply's body is read up
  to 64 KiB only (enough for the server's message). Headers are bounded by ``http.client`` (100 lines of 64 KiB).
- **No redirects.** A 3xx answer is an error naming its ``Location``: a ``POST`` never silently becomes a
  ``GET``, and credentials (an ``Authorization`` header, a key in the query) never travel to another origin.
- Faults raise :class:`HTTPFault` with a ``kind`` for the caller's retry policy: ``"connection"`` (refused,
  reset, closed before answering, a bad status line, a body cut short), ``"timeout"``, ``"too_large"``,
  ``"redirect"``, ``"tls"`` (a certificate that does not verify). Messages name the URL without its query
  string (which may hold a key).
- :func:`parse_json` reads UTF-8 standard JSON only: invalid UTF-8, ``NaN``/``Infinity``, a number that
  overflows a float (``1e400``), too many digits, or nesting deeper than the parser's recursion limit raise
  :class:`JSONError` (a ``ValueError``) saying what was wrong.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

__all__ = ["HTTPFault", "JSONError", "Reply", "display_url", "parse_json", "post"]

_PIECE = 1 << 16
_ERROR_BODY = 1 << 16


class HTTPFault(Exception):
    """A request that got no usable HTTP answer; ``kind`` is one of ``connection``, ``timeout``,
    ``too_large``, ``redirect``, ``tls`` (see the module docstring)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class JSONError(ValueError):
    """Bytes that are not standard JSON in UTF-8 (the message says where and why)."""


@dataclass(frozen=True)
class Reply:
    """A complete HTTP answer: status, headers and the (bounded) body."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds when it is a finite non-negative number (an HTTP date is ignored)."""
        try:
            value = float(self.headers.get("Retry-After", ""))
        except ValueError:
            return None
        return value if math.isfinite(value) and value >= 0 else None

    def message(self) -> str:
        """The server's error message (``error.message`` of a JSON body, else the body's text), at most 300
        characters; the reason phrase when the body is empty."""
        text = self.body.decode("utf-8", "replace").strip()[:300] or self.reason
        try:
            data = parse_json(self.body, "the error body")
        except JSONError:
            return text
        message = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(message, dict):
            message = message.get("message", message)
        return message[:300] if isinstance(message, str) else text

    def sample(self) -> str:
        """The start of the body and its Content-Type, for error messages about a malformed reply."""
        kind = self.headers.get("Content-Type", "no Content-Type")
        return f"Content-Type {kind}, body begins {self.body[:80].decode('utf-8', 'replace')!r}"


def display_url(url: str) -> str:
    """``url`` without its query string and fragment (which may hold a key): what error messages show."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, max_bytes: int) -> Reply:
    """``POST body`` to ``url`` and return the whole answer, within ``timeout`` seconds in total and
    ``max_bytes`` of body; raise :class:`HTTPFault` otherwise, and for any 3xx (never followed)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    name = display_url(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    watchdog = _Watchdog(timeout)
    context = ssl.create_default_context() if parts.scheme == "https" else None
    connection = _Connection(parts.hostname, parts.port, timeout, watchdog, context)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        if 300 <= status < 400:
            location = display_url(response.getheader("Location", "(no Location)"))  # its query may hold a key
            raise HTTPFault(f"{name} answered {status} redirecting to {location[:200]!r}; redirects are not "
                            "followed (a POST must not turn into a GET, credentials stay with their origin): "
                            "configure the final URL", "redirect")
        limit = max_bytes if 200 <= status < 300 else min(max_bytes, _ERROR_BODY)
        if 200 <= status < 300 and response.length is not None and response.length > max_bytes:
            raise HTTPFault(f"{name} announced a reply of {response.length} bytes, more than max_response_bytes="
                            f"{max_bytes}; raise the limit if the server is right", "too_large")
        data = _read_body(response, limit, truncate=not 200 <= status < 300, name=name)
        if watchdog.fired:  # the hang-up can look like a clean end of the headers or of a close-delimited body
            raise TimeoutError
        return Reply(status, response.reason, response.headers, data)
    except HTTPFault:
        raise
    except ssl.SSLCertVerificationError as error:
        raise HTTPFault(f"{name}: the TLS certificate does not verify ({error.verify_message})", "tls") from None
    except (OSError, http.client.HTTPException) as error:
        if watchdog.fired or isinstance(error, TimeoutError):
            raise HTTPFault(f"{name} did not answer within timeout={timeout:g} s (the whole request)",
                            "timeout") from None
        raise HTTPFault(f"{name} {_describe(error)}", "connection") from None
    finally:
        watchdog.cancel()
        connection.close()


def parse_json(raw: bytes, what: str) -> Any:
    """``raw`` as standard JSON in UTF-8, or :class:`JSONError` naming ``what`` and the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JSONError(f"{what} is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise JSONError(f"{what} is not JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise JSONError(f"{what} nests arrays or objects too deeply") from None
    except ValueError as error:  # NaN, 1e400, an integer of more than 4300 digits
        raise JSONError(f"{what} is not standard JSON: {error}") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _read_body(response: http.client.HTTPResponse, limit: int, *, truncate: bool, name: str) -> bytes:
    pieces: list[bytes] = []
    total = 0
    while True:
        piece = response.read(min(_PIECE, limit + 1 - total))
        if not piece:
            if response.length:  # the connection closed before the announced length (read(n) does not say)
                raise http.client.IncompleteRead(b"".join(pieces), response.length)
            return b"".join(pieces)
        pieces.append(piece)
        total += len(piece)
        if total > limit:
            if truncate:
                return b"".join(pieces)[:limit]
            raise HTTPFault(f"{name} sent a reply of more than max_response_bytes={limit} bytes; raise the limit "
                            "if the server is right", "too_large")


def _describe(error: BaseException) -> str:
    """What a connection-level failure means, in words (``http.client``'s exceptions say little)."""
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed the connection without answering"
    if isinstance(error, http.client.IncompleteRead):
        return f"cut its reply short ({len(error.partial)} bytes read, more expected)"
    if isinstance(error, http.client.LineTooLong):
        return "sent a status or header line longer than 64 KiB"
    if isinstance(error, http.client.BadStatusLine):
        return f"sent something that is not an HTTP status line: {str(error)[:80]!r}"
    if isinstance(error, ConnectionRefusedError):
        return "refused the connection (is the server running?)"
    if isinstance(error, socket.gaierror):
        return f"could not be resolved ({error.strerror})"
    return f"failed: {type(error).__name__}: {str(error)[:200]}"


class _Watchdog:
    """Shuts the watched socket down when ``timeout`` seconds have passed, which ends any blocked read."""

    def __init__(self, timeout: float) -> None:
        self.fired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socket = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._socket is not None:
                _shutdown(self._socket)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._socket = None  # before the socket is closed, so its number is never shut down once reused


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: also under a TLS wrapper


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket the watchdog watches from the moment it exists, TLS handshake
    included; no proxies, no tunnels."""

    def __init__(self, host: str, port: int | None, timeout: float, watchdog: _Watchdog,
                 context: ssl.SSLContext | None) -> None:
        if context is not None:
            self.default_port = 443
        super().__init__(host, port, timeout=timeout)
        self._watchdog, self._context = watchdog, context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        if self._context is not None:
            sock = self._context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self.sock = sock
        self._watchdog.watch(sock)
        if self._watchdog.fired:
            raise TimeoutError("deadline passed while connecting")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(sock, ssl.SSLSocket):
            sock.do_handshake()
