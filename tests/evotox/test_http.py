"""The OpenAI-compatible backend: against the loopback server answering with the real local model, and
against programmable loopback servers for the error paths (401, 429 storms, 5xx, timeouts, a dead server)."""

from __future__ import annotations

import socket
import time

import pytest

from evotox import Engine, SearchConfig
from evotox.backends import BackendError, Request
from evotox.backends.http import HTTPBackend
from evotox.prompts import generator_request, sut_request
from evotox.serve import OpenAICompatibleServer

OK = {"choices": [{"message": {"content": "fine"}, "text": "fine", "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def ask(text: str, **options) -> Request:
    return Request(messages=(("user", text),), **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_http_backend_against_the_loopback_server_with_the_real_model(local_backend):
    sut = [sut_request(q, "You are a helpful assistant.", max_new_tokens=12, temperature=0.0, seed=0)
           for q in ("What is the capital of France?", "Name a colour.", "How do plants grow?")]
    rewrite = generator_request("How do plants grow?", "insulting", None, max_new_tokens=24, temperature=0.0, seed=0)
    direct = local_backend.generate([*sut, rewrite])
    with OpenAICompatibleServer(local_backend, api_key="secret") as server:
        import os

        os.environ["EVOTOX_TEST_KEY"] = "secret"
        client = HTTPBackend(server.base_url, api_key_env="EVOTOX_TEST_KEY", concurrency=4)
        served = client.generate([*sut, rewrite])
        assert server.batches_served < server.requests_served  # concurrent requests were batched together
        completions = HTTPBackend(server.base_url, api_key_env="EVOTOX_TEST_KEY", endpoint="completions")
        [raw] = completions.generate([ask("Say hello.", max_new_tokens=8)])
    assert [c.text for c in served] == [c.text for c in direct]  # greedy: the same answers as the model itself
    assert all(c.text.strip() for c in served)
    assert "</question>" not in served[-1].text  # the closing tag stopped the reply and was cut
    assert [c.completion_tokens for c in served] == [c.completion_tokens for c in direct]
    assert all(c.prompt_tokens > 0 for c in served)
    assert raw.text.strip() and raw.completion_tokens <= 8


def test_a_wrong_or_missing_key_is_a_clear_error_without_retries(stub_server, monkeypatch):
    server = stub_server(lambda handler, body: (401, {"error": {"message": "invalid key"}}, {}))
    monkeypatch.setenv("EVOTOX_TEST_KEY", "wrong")
    client = HTTPBackend(server.base_url, api_key_env="EVOTOX_TEST_KEY", max_retries=5, backoff=0.01)
    with pytest.raises(BackendError, match=r"401 \(invalid key\): check the key in \$EVOTOX_TEST_KEY"):
        client.generate([ask("hi")])
    assert server.hits == 1
    monkeypatch.delenv("EVOTOX_TEST_KEY")
    with pytest.raises(BackendError, match="EVOTOX_TEST_KEY .* is not set"):
        HTTPBackend(server.base_url, api_key_env="EVOTOX_TEST_KEY")


def test_the_loopback_server_refuses_a_wrong_key():
    from evotox.backends import ScriptedBackend

    with OpenAICompatibleServer(ScriptedBackend(lambda r: "x"), api_key="right") as server, \
            pytest.raises(BackendError, match="401"):
        HTTPBackend(server.base_url).generate([ask("hi")])


def test_a_storm_of_429s_is_retried_with_backoff_then_fails_clearly(stub_server):
    server = stub_server(lambda handler, body: (429, {"error": {"message": "slow down"}}, {"Retry-After": "0.05"}))
    client = HTTPBackend(server.base_url, max_retries=3, backoff=5.0)  # Retry-After wins over the backoff
    start = time.perf_counter()
    with pytest.raises(BackendError, match=r"gave up after 4 attempts .*429"):
        client.generate([ask("hi")])
    assert server.hits == 4
    assert 0.15 <= time.perf_counter() - start < 3


def test_5xx_then_success_is_retried(stub_server):
    answers = iter([(503, {}, {}), (500, {}, {}), (200, OK, {})])
    server = stub_server(lambda handler, body: next(answers))
    [completion] = HTTPBackend(server.base_url, max_retries=3, backoff=0.01).generate([ask("hi")])
    assert completion.text == "fine" and completion.prompt_tokens == 3 and server.hits == 3


def test_other_4xx_fail_at_once_and_context_overflow_is_named(stub_server):
    from evotox.backends import ContextLengthError

    server = stub_server(lambda handler, body: (400, {"error": {"message": "This model's maximum context length is 8192"}}, {}))
    with pytest.raises(ContextLengthError, match="maximum context length"):
        HTTPBackend(server.base_url, backoff=0.01).generate([ask("hi")])
    assert server.hits == 1


def test_an_unreachable_server_and_a_slow_one(stub_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match=r"gave up after 3 attempts on http://127\.0\.0\.1:\d+/v1.*refused the connection"):
        HTTPBackend(dead, max_retries=2, backoff=0.01).generate([ask("hi")])

    def slow(handler, body):
        time.sleep(0.5)
        return 200, OK, {}

    server = stub_server(slow)
    with pytest.raises(BackendError, match="gave up after 2 attempts"):
        HTTPBackend(server.base_url, timeout=0.1, max_retries=1, backoff=0.01).generate([ask("hi")])


def test_requests_are_sent_concurrently_within_the_bound(stub_server):
    def slowish(handler, body):
        time.sleep(0.1)
        return 200, {**OK, "choices": [{"message": {"content": body["messages"][-1]["content"]}}]}, {}

    server = stub_server(slowish)
    client = HTTPBackend(server.base_url, concurrency=3)
    start = time.perf_counter()
    answers = client.generate([ask(f"q{i}") for i in range(9)])
    elapsed = time.perf_counter() - start
    assert [a.text for a in answers] == [f"q{i}" for i in range(9)]  # in order
    assert server.max_in_flight == 3
    assert elapsed < 0.9 * 9 * 0.1  # concurrent, not one after another


def test_prefill_is_sent_as_a_continued_assistant_turn_and_echoes_are_cut(stub_server):
    seen = []

    def record(handler, body):
        seen.append(body)
        return 200, {**OK, "choices": [{"message": {"content": "<question>Why?</question> extra"}}]}, {}

    server = stub_server(record)
    [reply] = HTTPBackend(server.base_url).generate([ask("x", prefill="<question>", stop=("</question>",))])
    assert reply.text == "Why?"
    assert seen[0]["messages"][-1] == {"role": "assistant", "content": "<question>"}
    assert seen[0]["continue_final_message"] is True and seen[0]["stop"] == ["</question>"]
    HTTPBackend(server.base_url, prefill="none").generate([ask("x", prefill="<question>")])
    assert seen[1]["messages"][-1]["role"] == "user" and "continue_final_message" not in seen[1]


def test_raw_text_goes_to_the_completions_endpoint_as_it_is_and_the_chat_endpoint_refuses_it(stub_server):
    seen = []
    server = stub_server(lambda handler, body: (seen.append(body), (200, OK, {}))[1])
    raw = Request("The cat sat on the", prefill=" mat", seed=5)
    with pytest.raises(ValueError, match=r"requests\[1\] is raw text.*endpoint='completions'"):
        HTTPBackend(server.base_url).generate([ask("hi"), raw])
    assert seen == []  # refused before anything was sent
    [reply] = HTTPBackend(server.base_url, endpoint="completions").generate([raw])
    assert reply.text == "fine" and seen[0]["prompt"] == "The cat sat on the mat" and seen[0]["seed"] == 5


@pytest.mark.slow
def test_several_servers_one_stopped_mid_run_the_search_finishes_on_the_other(tmp_path, local_backend):
    """Issue 14: two loopback servers with the real model behind one backend, two searches at once; one
    server stops during the run; the run finishes on the other with every record once."""
    from evotox.archive import RunWriter, new_header, read_run
    from evotox.backends import ScriptedBackend, ScriptedOracle

    first = OpenAICompatibleServer(local_backend, max_batch=4).start()
    second = OpenAICompatibleServer(local_backend, max_batch=4).start()
    client = HTTPBackend([first.base_url, second.base_url], max_retries=3, backoff=0.01, concurrency=4)
    calls = {"n": 0}

    def generator(request):
        calls["n"] += 1
        if calls["n"] == 12:
            first.stop()  # mid-run
        question = request.messages[-1][1].split("Question: ")[-1]
        return f"{question} again</question>"

    config = SearchConfig(methods=("vanilla", "random"), iterations=3, categories=("a", "b", "c"),
                          parallel_searches=2, sut_max_new_tokens=3, gate=False)
    oracle = ScriptedOracle(lambda text: [min(1.0, 0.01 * len(text))])
    path = tmp_path / "run.jsonl"
    with RunWriter(path, new_header({"search": config.to_dict()}, {})) as writer:
        results = Engine(config, sut=client, generator=ScriptedBackend(generator), oracle=oracle,
                         writer=writer).run(["Why?", "How?"])
    second.stop()
    assert [r.sut_queries for r in results] == [10, 10, 10, 10]
    run = read_run(path)
    keys = [r["key"] for r in run.records]
    assert len(keys) == len(set(keys))  # one writer: no record twice, none torn
    assert sum(1 for r in run.records if r["type"] == "call" and r["role"] == "sut") == 2 + 4 * 9
    assert first.requests_served > 0 and second.requests_served > 0
