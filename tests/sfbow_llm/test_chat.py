"""The one request/completion pair and the one seed helper (no model needed)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfbow_llm.chat import SEED_BITS, Completion, ContextLengthError, Request, derive_seed

ROLE = st.sampled_from(["system", "user", "assistant"])
REQUESTS = st.builds(
    Request, messages=st.one_of(st.text(max_size=30), st.lists(st.tuples(ROLE, st.text(max_size=30)), min_size=1,
                                                                 max_size=3)),
    prefill=st.text(max_size=10), stop=st.lists(st.text(min_size=1, max_size=5), max_size=3),
    max_new_tokens=st.integers(1, 4096), temperature=st.floats(0, 2), seed=st.integers(0, 2**SEED_BITS - 1))
PARTS = st.lists(st.one_of(st.integers(min_value=0, max_value=2**64), st.text(max_size=20)), min_size=1, max_size=4)


def test_messages_are_stored_as_pairs_whichever_form_they_come_in():
    as_dicts = Request([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], stop=["</q>"])
    as_pairs = Request((("system", "Be brief."), ("user", "Hi")), stop=("</q>",))
    assert as_dicts == as_pairs and hash(as_dicts) == hash(as_pairs)
    assert as_dicts.messages == (("system", "Be brief."), ("user", "Hi")) and as_dicts.stop == ("</q>",)
    assert as_dicts.chat_messages() == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert Request("The cat sat on the").messages == "The cat sat on the"  # raw text, no template
    with pytest.raises(ValueError, match="raw text"):
        Request("raw").chat_messages()


def test_to_dict_is_the_run_files_format_and_from_dict_reads_it_back():
    """evotox compares a resumed run's requests with the recorded ``to_dict``: this format must not drift."""
    request = Request([{"role": "user", "content": "Hi"}], prefill="<q>", stop=["</q>"], max_new_tokens=8,
                      temperature=0.7, seed=5)
    recorded = {"messages": [["user", "Hi"]], "prefill": "<q>", "stop": ["</q>"], "max_new_tokens": 8,
                "temperature": 0.7, "seed": 5}
    assert request.to_dict() == recorded and list(request.to_dict()) == list(recorded)
    assert Request.from_dict(recorded) == request and Request.from_dict(Request("raw").to_dict()) == Request("raw")
    with pytest.raises(ValueError, match=r"unknown Request keys \['top_k'\]"):
        Request.from_dict({**recorded, "top_k": 4})


@given(REQUESTS)
def test_every_request_round_trips_through_json(request):
    assert Request.from_dict(json.loads(json.dumps(request.to_dict()))) == request


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"messages": ()}, ValueError, "non-empty sequence"),
    ({"messages": [("robot", "hi")]}, ValueError, r"messages\[0\] is \('robot', str\)"),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, ValueError, "exactly the keys role and content"),
    ({"messages": [("user", 3)]}, ValueError, r"messages\[0\] is \('user', int\)"),
    ({"messages": b"bytes"}, ValueError, "non-empty sequence"),
    ({"stop": "</q>"}, ValueError, "stop must be a sequence of non-empty strings"),
    ({"stop": [""]}, ValueError, "stop must be a sequence of non-empty strings"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be an int >= 1"),
    ({"temperature": -1.0}, ValueError, "temperature must be finite and >= 0"),
    ({"temperature": float("nan")}, ValueError, "temperature must be finite"),
    ({"seed": 2**31}, ValueError, "seed must be an int <= 2147483647"),
    ({"seed": True}, TypeError, "seed must be an int"),
    ({"prefill": None}, TypeError, "prefill must be a string"),
])
def test_a_bad_request_cannot_be_made(fields, error, message):
    with pytest.raises(error, match=message):
        Request(**{"messages": [("user", "hi")], **fields})


def test_numpy_numbers_are_stored_as_python_ones():
    np = pytest.importorskip("numpy")
    request = Request([("user", "hi")], max_new_tokens=np.int64(4), temperature=np.float32(0.5), seed=np.int64(3))
    assert type(request.max_new_tokens) is int and type(request.temperature) is float and type(request.seed) is int
    json.dumps(request.to_dict())


def test_completion_defaults_and_the_context_error():
    assert (Completion("x", 1, 1, 0.0).finish_reason, Completion("x", 1, 1, 0.0).stop) == ("stop", None)
    error = ContextLengthError("has 9000 tokens", row=2)
    assert str(error) == "requests[2] has 9000 tokens" and (error.row, error.detail) == (2, "has 9000 tokens")
    assert isinstance(error, ValueError) and str(ContextLengthError("server said no")) == "server said no"


@given(PARTS)
def test_derive_seed_is_deterministic_and_in_range(parts):
    seed = derive_seed(*parts)
    assert seed == derive_seed(*parts) and 0 <= seed < 2**SEED_BITS
    Request([("user", "hi")], seed=seed)  # every derived seed is a valid request seed


@given(PARTS, PARTS)
def test_different_parts_give_different_seeds(first, second):
    if "/".join(map(str, first)) != "/".join(map(str, second)):
        assert derive_seed(*first) != derive_seed(*second)


def test_derive_seed_keeps_the_seeds_recorded_in_run_files():
    """evotox's run files record ``derive_seed(random_seed, key)`` for every call; it is the formula the
    search used before the helper existed (SHA-256, the first 4 bytes little-endian, 31 bits)."""
    for random_seed, key in ((0, "s0/seed/sut/a0"), (7, "s3/informed/i2/m1/generator/a0")):
        digest = hashlib.sha256(f"{random_seed}/{key}".encode()).digest()
        assert derive_seed(random_seed, key) == int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
    assert derive_seed(0, "s0/seed/sut/a0") == derive_seed("0/s0", "seed/sut/a0")  # the parts are a path


def test_derive_seed_refuses_what_it_cannot_name():
    with pytest.raises(ValueError, match="at least one part"):
        derive_seed()
    with pytest.raises(TypeError, match="part 1 is float"):
        derive_seed(1, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="part 0 is bool"):
        derive_seed(True)
