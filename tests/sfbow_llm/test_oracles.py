"""The oracle interface's checks, the factory, the profanity-check oracle on its real files, and the
Perspective adapter against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from sfbow_llm.oracles import ORACLE_NAMES, OracleError, ToxicityOracle, default_oracle, make_oracle
from sfbow_llm.oracles.perspective import PerspectiveOracle


class FixedOracle(ToxicityOracle):
    name = "fixed"
    attributes = ("a", "b")

    def __init__(self, raw):
        self.raw = raw

    def _score(self, texts):
        return self.raw


@pytest.mark.parametrize(("raw", "match"), [
    ([[0.1, float("nan")]], r"returned nan for texts\[0\] \(attribute b\)"),
    ([[0.1, 0.2], [1.5, 0.0]], r"returned 1.5 for texts\[1\] \(attribute a\)"),
    ([[0.1, 0.2, 0.3]], r"shape \(1, 3\), expected \(1, 2\)"),
])
def test_bad_scores_are_errors(raw, match):
    texts = ["x"] * len(raw)
    with pytest.raises(OracleError, match=match):
        FixedOracle(raw).score(texts)


def test_input_checks():
    oracle = FixedOracle([[0.0, 1.0]])
    assert oracle.score(["x"]).tolist() == [[0.0, 1.0]] and oracle.score([]).shape == (0, 2)
    with pytest.raises(TypeError, match="sequence of strings"):
        oracle.score("one text")
    with pytest.raises(TypeError, match=r"texts\[0\] must be a string"):
        oracle.score([None])


def test_factory():
    assert ORACLE_NAMES == ("jigsaw", "profanity", "perspective")
    with pytest.raises(ValueError, match="unknown oracle"):
        make_oracle("detoxify")
    pytest.importorskip("h5py")
    oracle = default_oracle()
    assert oracle.name == "jigsaw" and len(oracle.attributes) == 6


def test_profanity_oracle_on_its_real_files():
    pytest.importorskip("sklearn")
    from sfbow_llm.packaged import MissingPackageError

    try:
        oracle = make_oracle("profanity")
    except MissingPackageError as error:
        pytest.skip(str(error))
    scores = oracle.score(["Thank you for your help with the report.", "Shut up, you worthless piece of shit.",
                           "The meeting is moved to Thursday at ten.", "You are a stupid idiot."])
    assert oracle.attributes == ("profanity",) and scores.shape == (4, 1)
    assert scores[[0, 2], 0].max() < 0.1 and scores[[1, 3], 0].min() > 0.9
    np.testing.assert_allclose(scores[0, 0], 0.0019, atol=1e-4)
    assert set(oracle.describe()["sha256"]) == {"vectorizer.joblib", "model.joblib"}


# -- Perspective against a loopback server --------------------------------------------------------------

class FakePerspective(BaseHTTPRequestHandler):
    """Answers like Perspective: TOXICITY = share of the letter 'x' in the text; scripted failures first."""

    failures: list[int] = []  # statuses to answer before succeeding
    requests: list[dict] = []
    reply_value: object = None  # override the score (e.g. a string)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "body": body})
        if "key=secret" not in self.path:
            return self._send(401, {"error": {"message": "API key not valid"}})
        if self.failures:
            return self._send(self.failures.pop(0), {"error": {"message": "slow down"}})
        text = body["comment"]["text"]
        value = self.reply_value if self.reply_value is not None else text.count("x") / max(len(text), 1)
        scores = {a: {"summaryScore": {"value": value, "type": "PROBABILITY"}} for a in body["requestedAttributes"]}
        return self._send(200, {"attributeScores": scores, "languages": ["en"]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakePerspective.failures, FakePerspective.requests, FakePerspective.reply_value = [], [], None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakePerspective)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1alpha1/comments:analyze"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_perspective_scores_in_order(server, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "secret")
    oracle = PerspectiveOracle(url=server, attributes=("TOXICITY", "INSULT"))
    scores = oracle.score(["xx", "ab", "xa"])
    assert scores.tolist() == [[1.0, 1.0], [0.0, 0.0], [0.5, 0.5]]
    body = FakePerspective.requests[0]["body"]
    assert body["doNotStore"] is True and set(body["requestedAttributes"]) == {"TOXICITY", "INSULT"}
    assert "secret" not in json.dumps(oracle.describe())


def test_perspective_retries_429_and_5xx_then_succeeds(server):
    FakePerspective.failures = [429, 503]
    oracle = PerspectiveOracle("secret", url=server, max_retries=2, backoff=0.01)
    assert oracle.score(["x"]).shape == (1, 6)
    assert len(FakePerspective.requests) == 3


def test_perspective_gives_up_after_bounded_retries(server):
    FakePerspective.failures = [429] * 10
    oracle = PerspectiveOracle("secret", url=server, max_retries=2, backoff=0.01)
    with pytest.raises(OracleError, match=r"texts\[0\]: HTTP 429 .*after 3 attempts"):
        oracle.score(["x"])
    assert len(FakePerspective.requests) == 3


def test_perspective_bad_key_fails_at_once(server):
    with pytest.raises(OracleError, match="HTTP 401.*API key not valid"):
        PerspectiveOracle("wrong", url=server, max_retries=3).score(["x"])
    assert len(FakePerspective.requests) == 1


def test_perspective_bad_replies(server):
    FakePerspective.reply_value = "high"
    with pytest.raises(OracleError, match="non-numeric"):
        PerspectiveOracle("secret", url=server).score(["x"])
    FakePerspective.reply_value = float("nan")  # json.dumps writes NaN, which is not standard JSON
    with pytest.raises(OracleError, match=r"reply for texts\[0\] is unusable: .*NaN is not a JSON number"):
        PerspectiveOracle("secret", url=server, backoff=0.01).score(["x"])
    assert len(FakePerspective.requests) == 1 + 2  # the NaN reply was retried once


def test_perspective_unreachable_and_missing_key(monkeypatch):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(OracleError, match="PERSPECTIVE_API_KEY"):
        PerspectiveOracle()
    oracle = PerspectiveOracle("secret", url=closed_port_url(), max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(OracleError, match="could not be reached.*after 2 attempts"):
        oracle.score(["x"])


def test_perspective_timeout():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections but never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/analyze"
        oracle = PerspectiveOracle("secret", url=url, max_retries=0, timeout=0.3)
        with pytest.raises(OracleError, match="could not be reached.*after 1 attempts"):
            oracle.score(["x"])
    finally:
        listener.close()


def closed_port_url() -> str:
    """A 127.0.0.1 URL on a port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/analyze"


def test_restricted_joblib_loader_refuses_globals_off_its_list(tmp_path):
    joblib = pytest.importorskip("joblib")
    from collections import Counter

    from sfbow_llm.restricted_pickle import UnsafePickleError, restricted_joblib_load

    path = tmp_path / "model.joblib"
    joblib.dump({"weights": np.arange(3.0), "counts": Counter("abc")}, path)
    with pytest.raises(UnsafePickleError, match="collections.Counter, which is not on the allow-list"):
        restricted_joblib_load(path, {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})
    joblib.dump({"weights": np.arange(3.0)}, path)
    loaded = restricted_joblib_load(path, {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})
    assert loaded["weights"].tolist() == [0.0, 1.0, 2.0]


# -- Perspective against hostile servers (the same bounded client as evotox's HTTP backend) ----------------

def _raw(status: str, body: bytes, **headers: str) -> bytes:
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    return f"HTTP/1.1 {status}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n" + body


def _answer(raw: bytes):
    def script(server, conn, request):
        server.send(conn, raw)
    return script


def _drip(server, conn, request):
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    for _ in range(100):  # 5 s if nobody hung up
        if not server.pause(0.05):
            return
        server.send(conn, b" ")


def test_perspective_bounds_time_size_and_redirects_and_never_shows_the_key(hostile_server):
    elsewhere = hostile_server(_answer(_raw("200 OK", b"{}")))
    cases = [
        (_drip, r"could not be reached for texts\[0\] after 2 attempts: .* did not answer within timeout=0\.3 s"),
        (_answer(_raw("200 OK", b" " * 2_000_000)), r"announced a reply of 2000000 bytes, more than max_response_bytes"),
        (_answer(_raw("302 Found", b"", Location=f"http://127.0.0.1:{elsewhere.port}/analyze?key=secret")),
         r"answered 302 redirecting to .*redirects are not followed"),
        (_answer(_raw("200 OK", b"<html>quota page</html>", **{"Content-Type": "text/html"})),
         r"reply for texts\[0\] is unusable: the reply is not JSON .*Content-Type text/html"),
    ]
    for script, message in cases:
        server = hostile_server(script)
        oracle = PerspectiveOracle("secret", url=f"http://127.0.0.1:{server.port}/analyze", timeout=0.3,
                                   max_retries=1, backoff=0.01)
        with pytest.raises(OracleError, match=message) as caught:
            oracle.score(["x"])
        assert "secret" not in str(caught.value)
        assert server.requests[0]["path"] == "/analyze?key=secret"  # the key went to its own origin only
    assert elsewhere.hits == 0


@pytest.mark.parametrize(("opcode", "message"), [
    (b"\x8d", "claims 4611686018427387904 bytes of data with only 5 left"),  # BINUNICODE8
    (b"\x95", "claims 4611686018427387904 bytes of data with only 5 left"),  # FRAME
    (b"\x8e", "claims an object larger than memory can hold"),  # BINBYTES8: CPython sizes it before reading
    (b"\x96", "claims an object larger than memory can hold"),  # BYTEARRAY8: likewise
])
def test_restricted_loader_refuses_sizes_beyond_the_file(tmp_path, opcode, message):
    from sfbow_llm.restricted_pickle import restricted_load

    path = tmp_path / "claim.pickle"
    path.write_bytes(b"\x80\x05" + opcode + (2**62).to_bytes(8, "little") + b"abcd.")  # 20 bytes
    with pytest.raises(ValueError, match=rf"claim\.pickle is not a readable pickle \(it {message}"):
        restricted_load(path, {})


def test_restricted_joblib_loader_refuses_an_array_larger_than_the_file(tmp_path):
    joblib = pytest.importorskip("joblib")
    from sfbow_llm.restricted_pickle import restricted_joblib_load

    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    path = tmp_path / "model.joblib"
    joblib.dump({"weights": np.arange(3.0)}, path, protocol=2)  # no frames: the shape can be edited in place
    raw = path.read_bytes()
    assert raw.count(b"K\x03\x85") == 1  # the shape (3,): BININT1 3, TUPLE1
    path.write_bytes(raw.replace(b"K\x03\x85", b"\x8a\x05\x00\x00\x00\x00\x02\x85"))  # (2**33,)
    with pytest.raises(ValueError, match=r"model\.joblib is not a readable joblib file \(it claims 68719476736 bytes of a float64 array \(8589934592,\)"):
        restricted_joblib_load(path, allowed)
    path.write_bytes(raw.replace(b"K\x03\x85", b"J\xff\xff\xff\xff\x85"))  # (-1,)
    with pytest.raises(ValueError, match=r"model\.joblib is not a readable joblib file \(an array has the shape \(-1,\)"):
        restricted_joblib_load(path, allowed)
    path.write_bytes(raw)
    assert restricted_joblib_load(path, allowed)["weights"].tolist() == [0.0, 1.0, 2.0]
