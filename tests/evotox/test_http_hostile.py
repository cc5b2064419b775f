"""The HTTP backend against hostile servers on 127.0.0.1 (issue 22, items 1-3 and 7): a server that drips,
one that sends without end or announces 100 GB, one that redirects, and one that answers garbage. Each
must give one ``BackendError`` naming the URL and what was wrong, within the deadline, without following
anything or allocating what the server claims; connection faults are retried, a 200 of garbage once."""

from __future__ import annotations

import json

import pytest

from evotox.backends import BackendError, Request
from evotox.backends.http import HTTPBackend

OK = {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def ask(text: str = "hi") -> Request:
    return Request(messages=(("user", text),))


def reply(body: bytes | dict, *, status: str = "200 OK", headers: dict[str, str] | None = None,
          length: bool = True) -> bytes:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    head = {"Content-Type": "application/json", **(headers or {})}
    if length:
        head["Content-Length"] = str(len(raw))
    else:
        head["Connection"] = "close"
    return f"HTTP/1.1 {status}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() \
        + b"\r\n" + raw


def answers(*raws: bytes):
    """A script answering the n-th request with ``raws[n]`` (the last one from then on)."""
    def script(server, conn, request):
        server.send(conn, raws[min(server.hits, len(raws)) - 1])
    return script


# -- 1. the total deadline --------------------------------------------------------------------------------

DRIPS = 100  # bytes a dripping server would send, one each 50 ms: 5 s if nobody hung up


def drip(prefix: bytes):
    def script(server, conn, request):
        server.send(conn, prefix)
        for _ in range(DRIPS):
            if not server.pause(0.05):
                return
            server.send(conn, b"a")
    return script


@pytest.mark.parametrize("prefix", [b"HTTP/1.1 200 OK\r\nX-Slow: ",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"], ids=["headers", "body"])
def test_a_server_dripping_bytes_is_cut_off_at_the_total_deadline(hostile_server, prefix):
    """Every read gets a byte well within the timeout; only a deadline for the whole request stops it."""
    server = hostile_server(drip(prefix))
    client = HTTPBackend(server.base_url, timeout=0.3, max_retries=1, backoff=0.01)
    with pytest.raises(BackendError, match=r"gave up after 2 attempts .*/v1/chat/completions did not answer "
                                           r"within timeout=0\.3 s \(the whole request\)"):
        client.generate([ask()])
    assert server.hits == 2  # a timeout is retried
    assert server.sent - 2 * len(prefix) < DRIPS  # both attempts together hung up long before one drip ended


# -- 2. the size cap ----------------------------------------------------------------------------------------

def endless_chunks(server, conn, request):
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(20_000):  # 20 MB at most
        server.send(conn, b"400\r\n" + b" " * 1024 + b"\r\n")


def claims_100_gb(server, conn, request):
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n{\"choices\": ")
    server.pause(5)  # holds the connection open until the client gives up


def big_to_the_close(server, conn, request):
    server.send(conn, reply(b" " * 300_000 + json.dumps(OK).encode(), length=False))


@pytest.mark.parametrize(("script", "message"), [
    (endless_chunks, r"sent a reply of more than max_response_bytes=65536 bytes"),
    (claims_100_gb, r"announced a reply of 100000000000 bytes, more than max_response_bytes=65536"),
    (big_to_the_close, r"sent a reply of more than max_response_bytes=65536 bytes"),
    (answers(reply(b" " * 300_000 + json.dumps(OK).encode())), r"announced a reply of 300\d+ bytes"),
], ids=["endless-chunked", "content-length-100GB", "300KB-to-the-close", "300KB-with-length"])
def test_a_reply_over_the_size_cap_is_refused_without_reading_it_all(hostile_server, script, message):
    server = hostile_server(script)
    client = HTTPBackend(server.base_url, max_response_bytes=65536, max_retries=3, backoff=0.01)
    with pytest.raises(BackendError, match=rf"http://127\.0\.0\.1:{server.port}/v1/chat/completions {message}"):
        client.generate([ask()])
    assert server.hits == 1  # the same server would send the same: not retried
    assert server.sent < 8 << 20  # the endless reply was abandoned (what is sent fills the sockets' buffers)


def test_the_size_cap_is_exact(hostile_server):
    body = json.dumps(OK).encode()
    padded = body[:-1] + b" " * (4096 - len(body)) + b"}"
    server = hostile_server(answers(reply(padded), reply(padded + b" ")))
    client = HTTPBackend(server.base_url, max_response_bytes=4096, max_retries=0)
    assert client.generate([ask()])[0].text == "fine"  # exactly the cap: accepted
    with pytest.raises(BackendError, match="4097 bytes, more than max_response_bytes=4096"):
        client.generate([ask()])


# -- 3. redirects -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "303 See Other",
                                    "307 Temporary Redirect", "308 Permanent Redirect"])
def test_a_redirect_is_an_error_and_the_key_never_leaves_its_origin(hostile_server, monkeypatch, status):
    elsewhere = hostile_server(answers(reply(OK)))
    target = f"{elsewhere.base_url}/chat/completions"
    origin = hostile_server(answers(reply(b"", status=status, headers={"Location": target})))
    monkeypatch.setenv("EVOTOX_TEST_KEY", "secret")
    client = HTTPBackend(origin.base_url, api_key_env="EVOTOX_TEST_KEY", max_retries=3, backoff=0.01)
    with pytest.raises(BackendError, match=rf"/v1/chat/completions answered {status[:3]} redirecting to "
                                           rf"'{target}'; redirects are not followed"):
        client.generate([ask()])
    assert origin.hits == 1 and origin.requests[0]["headers"]["authorization"] == "Bearer secret"
    assert elsewhere.hits == 0  # neither the key nor a GET went there


# -- 7. bad replies -----------------------------------------------------------------------------------------

CONNECTION_FAULTS = {
    "bad-status-line": (b"HELLO THERE\r\n\r\n", r"sent something that is not an HTTP status line: 'HELLO THERE"),
    "closed-silently": (b"", r"closed the connection without answering"),
    "incomplete-read": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choi", r"cut its reply short"),
    "header-too-long": (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", r"sent a status or header line longer than 64 KiB"),
}


@pytest.mark.parametrize("case", CONNECTION_FAULTS, ids=list(CONNECTION_FAULTS))
def test_connection_faults_are_retried_then_named(hostile_server, case):
    raw, message = CONNECTION_FAULTS[case]
    server = hostile_server(answers(raw))
    with pytest.raises(BackendError, match=rf"gave up after 3 attempts .*127\.0\.0\.1:{server.port}/v1/chat/"
                                           rf"completions {message}"):
        HTTPBackend(server.base_url, max_retries=2, backoff=0.01).generate([ask()])
    assert server.hits == 3
    healed = hostile_server(answers(raw, reply(OK)))  # a retry helps once the fault passes
    assert HTTPBackend(healed.base_url, max_retries=2, backoff=0.01).generate([ask()])[0].text == "fine"


def with_usage(usage: object) -> bytes:
    return json.dumps({**OK, "usage": usage}).encode()


GARBAGE = {
    "invalid-json": (b'{"choices": [', r"the reply is not JSON \(Expecting value at line 1 column 14\)"),
    "html-200": (b"<html><body>Please log in</body></html>", r"is not JSON .*Content-Type text/html"),
    "invalid-utf8": (b'{"choices": [{"message": {"content": "\xff\xfe"}}]}', r"the reply is not UTF-8 \(byte 38\)"),
    "deep-nesting": (b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", r"nests arrays or objects too deeply"),
    "nan": (b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": NaN}}',
            r"NaN is not a JSON number"),
    "usage-list": (with_usage([3, 1]), r"'usage' is a JSON list, not an object"),
    "usage-string": (with_usage({"prompt_tokens": "3"}), r"usage.prompt_tokens is '3', not a non-negative integer"),
    "usage-fraction": (with_usage({"completion_tokens": 2.5}), r"usage.completion_tokens is '2.5', not a non-negative"),
    "usage-negative": (with_usage({"completion_tokens": -1}), r"usage.completion_tokens is '-1', not a non-negative"),
    "content-list": (json.dumps({"choices": [{"message": {"content": [[["x"]]]}}]}).encode(),
                     r"choices\[0\].message.content is a JSON list, not a string"),
    "no-choices": (b'{"error": null}', r"'choices' is not a non-empty list of objects"),
    "array": (b"[1, 2]", r"the reply is a JSON list, not an object"),
}


@pytest.mark.parametrize("case", GARBAGE, ids=list(GARBAGE))
def test_a_200_of_garbage_is_retried_once_then_named(hostile_server, case):
    body, message = GARBAGE[case]
    headers = {"Content-Type": "text/html"} if case == "html-200" else {}
    server = hostile_server(answers(reply(body, headers=headers)))
    with pytest.raises(BackendError, match=rf"^http://127\.0\.0\.1:{server.port}/v1/chat/completions sent a 200 "
                                           rf"that is not an OpenAI-style completion: .*{message}"):
        HTTPBackend(server.base_url, max_retries=5, backoff=0.01).generate([ask()])
    assert server.hits == 2  # once more (a proxy's glitch, or the next server), not max_retries times
    healed = hostile_server(answers(reply(body, headers=headers), reply(OK)))
    assert HTTPBackend(healed.base_url, max_retries=5, backoff=0.01).generate([ask()])[0].text == "fine"
