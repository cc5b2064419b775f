"""The loopback server (`evotox serve`) against hostile clients (issue 22, items 4-6): slow and half-open
connections, bad requests batched with good ones, malformed HTTP, foreign Host and Origin headers. Every
case gets an HTTP answer (or a hang-up after the deadline), and the server goes on answering others."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from evotox.backends import BackendError, ContextLengthError, Request, ScriptedBackend
from evotox.backends.http import HTTPBackend
from evotox.serve import OpenAICompatibleServer

GOOD = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def echo(request: Request) -> str:
    if "too long" in request.messages[-1][1]:
        raise ContextLengthError("the prompt does not fit the context window")
    return f"echo {request.messages[-1][1]}"


@pytest.fixture
def served():
    started: list[OpenAICompatibleServer] = []

    def start(backend=None, **options) -> OpenAICompatibleServer:
        started.append(OpenAICompatibleServer(backend or ScriptedBackend(echo), **options).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def exchange(server: OpenAICompatibleServer, raw: bytes) -> tuple[int, dict]:
    """Send raw bytes, read the one answer (status, JSON body) up to the server's hang-up."""
    port = int(server.base_url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body) if body.startswith(b"{") else {}


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def post(server: OpenAICompatibleServer, body: bytes | dict, *, path: str = "/v1/chat/completions",
         headers: dict[str, str | None] | None = None) -> tuple[int, dict]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    port = server.base_url.split(":")[2].split("/")[0]
    fields: dict[str, str | None] = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
                                     "Content-Length": str(len(raw)), **(headers or {})}
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return exchange(server, f"POST {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode() + raw)


# -- 4. slow clients, half-open connections, a connection cap ------------------------------------------

def open_half(server: OpenAICompatibleServer) -> socket.socket:
    """A connection that announces a 1,000-byte body and sends one byte of it."""
    port = int(server.base_url.split(":")[2].split("/")[0])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
                 "\r\nContent-Length: 1000\r\n\r\n{".encode())
    return sock


def test_a_half_open_connection_gets_408_and_is_closed(served):
    server = served(client_timeout=0.3)
    with open_half(server) as sock:
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"client_timeout=0.3 s" in answer
        assert sock.recv(65536) == b""  # then closed by the server
    assert server.dropped_connections == 1


def test_a_client_dripping_its_headers_is_cut_off_at_the_deadline_for_the_whole_request(served):
    """Each byte comes well within the per-read timeout; only the per-request deadline ends it."""
    server = served(client_timeout=0.5)
    port = int(server.base_url.split(":")[2].split("/")[0])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
        try:
            for _ in range(200):  # 10 s if the server never hung up
                time.sleep(0.05)
                sock.sendall(b"a")
                sent += 1
        except OSError:  # the server hung up
            pass
        assert sent < 200
    assert server.dropped_connections == 1


def server_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def test_many_half_open_connections_neither_take_every_thread_nor_stop_the_answers(served):
    server = served(max_connections=8, client_timeout=60)  # no help from the deadline here
    before = server_threads()
    flood = [open_half(server) for _ in range(200)]
    try:
        for _ in range(100):  # the dropped ones' threads end at once; wait (bounded) for them to go
            if server_threads() - before <= 8:
                break
            time.sleep(0.05)
        assert server_threads() - before <= 8
        client = HTTPBackend(server.base_url, max_retries=0)  # no retry: answered the first time
        assert client.generate([Request(messages=(("user", "still there?"),))])[0].text == "echo still there?"
        assert server.dropped_connections >= 200 - 8
    finally:
        for sock in flood:
            sock.close()


def test_when_every_connection_waits_for_the_model_a_new_one_gets_503(served):
    entered, release = threading.Event(), threading.Event()

    def slow(request: Request) -> str:
        entered.set()
        release.wait(10)
        return "done"

    server = served(ScriptedBackend(slow), max_connections=1)
    waiting = threading.Thread(target=post, args=(server, GOOD))
    waiting.start()
    try:
        assert entered.wait(10)  # the only connection is with the model now
        status, body = post(server, GOOD)
        assert status == 503 and "every connection is waiting for the model" in body["error"]["message"]
    finally:
        release.set()
        waiting.join(timeout=10)


# -- 5. per-request validation and isolation in a batch ----------------------------------------------------

BAD_REQUESTS = {
    "temperature-negative": ({**GOOD, "temperature": -1}, r"temperature must be finite and >= 0, got -1"),
    "temperature-nan": (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
                        r"NaN is not a JSON number"),
    "unknown-role": ({"messages": [{"role": "robot", "content": "x"}]},
                     r"messages\[0\]\.role must be one of system, user, assistant; got 'robot'"),
    "empty-messages": ({"messages": []}, r"messages must be a non-empty list"),
    "content-not-text": ({"messages": [{"role": "user", "content": ["x"]}]},
                         r"messages\[0\]\.content must be a string, got a JSON list"),
    "lone-assistant": ({"messages": [{"role": "assistant", "content": "x"}]}, r"a lone assistant turn"),
    "max-tokens-zero": ({**GOOD, "max_tokens": 0}, r"max_tokens must be an int >= 1, got 0"),
    "max-tokens-text": ({**GOOD, "max_tokens": "8"}, r"max_tokens must be an int, got str"),
    "seed-negative": ({**GOOD, "seed": -1}, r"seed must be an int >= 0"),
    "seed-over-31-bits": ({**GOOD, "seed": 2**31}, r"seed must be an int <= 2147483647"),
    "stop-not-text": ({**GOOD, "stop": [1]}, r"stop must be a non-empty string or a list"),
    "streaming": ({**GOOD, "stream": True}, r"streaming is not supported"),
    "not-an-object": (b"[1, 2]", r"the body must be a JSON object"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_a_bad_request_fails_alone_with_400_naming_the_field(served, case):
    bad, message = BAD_REQUESTS[case]
    backend = ScriptedBackend(echo)
    server = served(backend, batch_window=0.3)  # requests arriving together share a batch
    answers: dict[str, tuple[int, dict]] = {}
    threads = [threading.Thread(target=lambda: answers.__setitem__("good", post(server, GOOD))),
               threading.Thread(target=lambda: answers.__setitem__("bad", post(server, bad)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    status, body = answers["bad"]
    assert status == 400
    assert body["error"]["message"].startswith("bad request: ")
    assert re.search(message, body["error"]["message"])
    assert answers["good"][0] == 200 and answers["good"][1]["choices"][0]["message"]["content"] == "echo hello"


def test_a_request_the_model_refuses_fails_alone_and_its_batch_mates_are_answered(served):
    backend = ScriptedBackend(echo)
    server = served(backend, batch_window=10, max_batch=2)  # the batch closes when both are in
    answers: dict[str, tuple[int, dict]] = {}
    too_long = {"messages": [{"role": "user", "content": "too long"}]}
    threads = [threading.Thread(target=lambda: answers.__setitem__("good", post(server, GOOD))),
               threading.Thread(target=lambda: answers.__setitem__("bad", post(server, too_long)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(backend.batches[0]) == 2  # they were batched, and the batch failed as a whole
    assert answers["bad"][0] == 400 and "prompt too long: the prompt does not fit" in answers["bad"][1]["error"]["message"]
    assert answers["good"][0] == 200 and answers["good"][1]["choices"][0]["message"]["content"] == "echo hello"
    alone = served()  # what the HTTP client makes of the answer
    with pytest.raises(ContextLengthError, match="does not fit the context window"):
        HTTPBackend(alone.base_url, max_retries=0).generate([Request(messages=(("user", "too long"),))])


# -- 6. malformed HTTP, Host and Origin ------------------------------------------------------------------

MALFORMED = {
    "length-not-a-number": ({"Content-Length": "abc"}, GOOD, 400, r"Content-Length 'abc' is not a positive whole"),
    "length-negative": ({"Content-Length": "-5"}, GOOD, 400, r"Content-Length '-5' is not a positive whole"),
    "length-missing": ({"Content-Length": None}, GOOD, 411, r"a POST needs a Content-Length"),
    "chunked": ({"Content-Length": None, "Transfer-Encoding": "chunked"}, GOOD, 411, r"chunked request bodies"),
    "too-big": ({"Content-Length": str(2 << 20)}, GOOD, 413, r"at most 1048576 are accepted"),
    "text-plain": ({"Content-Type": "text/plain"}, GOOD, 415, r"Content-Type must be application/json, got 'text/plain'"),
    "no-content-type": ({"Content-Type": None}, GOOD, 415, r"Content-Type must be application/json, got ''"),
    "huge-number": ({}, b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e400}', 400,
                    r"the number 1e400 is out of range"),
    "deep-nesting": ({}, b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, r"nests arrays or objects too deeply"),
    "not-utf8": ({}, b'{"messages": [{"role": "user", "content": "\xff"}]}', 400, r"the body is not UTF-8"),
    "not-json": ({}, b"messages=hello", 400, r"the body is not JSON"),
    "foreign-host": ({"Host": "evil.example:8000"}, GOOD, 421, r"Host header 'evil.example:8000' is not this server"),
    "rebound-host": ({"Host": "attacker.example"}, GOOD, 421, r"which stops DNS rebinding"),
    "no-host": ({"Host": None}, GOOD, 421, r"Host header '' is not this server"),
    "foreign-origin": ({"Origin": "http://evil.example"}, GOOD, 403, r"web origin 'http://evil.example' are refused"),
    "no-such-endpoint": ({}, GOOD, 404, r"no such endpoint /v1/nothing"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_requests_get_a_clear_http_answer_and_the_server_goes_on(served, case):
    headers, body, status, message = MALFORMED[case]
    server = served()
    path = "/v1/nothing" if case == "no-such-endpoint" else "/v1/chat/completions"
    got, answer = post(server, body, path=path, headers=headers)
    assert got == status
    assert re.search(message, answer["error"]["message"])
    assert post(server, GOOD)[0] == 200


def test_the_loopback_names_and_same_origin_are_accepted(served):
    server = served()
    port = server.base_url.split(":")[2].split("/")[0]
    for headers in ({"Host": f"localhost:{port}"}, {"Host": f"LOCALHOST:{port}", "Origin": f"http://127.0.0.1:{port}"}):
        assert post(server, GOOD, headers=headers)[0] == 200


def test_a_kept_alive_connection_serves_requests_one_after_another(served):
    """Requests on one connection: the deadline is per request, and the stream stays in step."""
    server = served(client_timeout=2)
    port = int(server.base_url.split(":")[2].split("/")[0])
    raw = json.dumps(GOOD).encode()
    one = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(one)
            assert stream.readline().startswith(b"HTTP/1.1 200")
            length = 0
            while (line := stream.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(stream.read(length))["choices"][0]["message"]["content"] == "echo hello"
    assert server.dropped_connections == 0


def test_a_wrong_key_is_refused_before_the_body_is_read(served):
    server = served(api_key="right")
    status, body = post(server, GOOD, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    with pytest.raises(BackendError, match="401"):
        HTTPBackend(server.base_url).generate([Request(messages=(("user", "hi"),))])
