"""The strict JSON reader of :mod:`sfbow_common.bounded_http` (the HTTP paths are tested against hostile
servers in tests/evotox/test_http_hostile.py, test_serve.py and tests/sfbow_llm/test_oracles.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfbow_common.bounded_http import JSONError, display_url, parse_json

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_give_a_json_error(raw):
    try:
        parse_json(raw, "the body")
    except JSONError as error:
        assert str(error).startswith("the body ")


@given(JSON)
def test_standard_json_round_trips(value):
    assert parse_json(json.dumps(value).encode(), "x") == value


@pytest.mark.parametrize(("raw", "message"), [
    (b"NaN", "NaN is not a JSON number"), (b"[-Infinity]", "-Infinity is not a JSON number"),
    (b'{"t": 1e400}', "the number 1e400 is out of range"), (b"9" * 5000, "is not standard JSON"),
    (b"[" * 100_000, "nests arrays or objects too deeply"), (b'"\xc3"', r"is not UTF-8 \(byte 1\)"),
])
def test_what_standard_json_excludes_is_refused(raw, message):
    with pytest.raises(JSONError, match=message):
        parse_json(raw, "the body")


def test_display_url_drops_the_query_that_may_hold_a_key():
    assert display_url("https://h.example:8443/v1/analyze?key=secret#x") == "https://h.example:8443/v1/analyze"
