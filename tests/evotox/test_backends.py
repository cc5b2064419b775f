"""Backend construction errors and request validation (the model-backed paths are in test_http and test_cli_report)."""

from __future__ import annotations

import importlib.util

import pytest

from evotox.backends import BackendError, Request, ScriptedBackend
from evotox.backends.http import HTTPBackend
from evotox.runner import backend_spec


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None, reason="llama-cpp-python is installed here")
def test_llamacpp_without_its_package_says_how_to_install_it(tmp_path):
    from evotox.backends.llamacpp import LlamaCppBackend

    with pytest.raises(BackendError, match="pip install llama-cpp-python"):
        LlamaCppBackend(tmp_path / "model.gguf")


def test_backend_specs():
    assert backend_spec("local").to_dict() == {"kind": "local", "model": None}
    assert backend_spec("local:/m/x.gguf").to_dict() == {"kind": "local", "model": "/m/x.gguf"}
    assert backend_spec("http:http://a:1/v1,http://b:2/v1", model="m").to_dict() == {
        "kind": "http", "base_url": ["http://a:1/v1", "http://b:2/v1"], "model": "m"}
    for bad, message in (("llamacpp", "needs a GGUF"), ("http", "needs the server's URL"), ("gpt5", "unknown backend")):
        with pytest.raises(ValueError, match=message):
            backend_spec(bad)
    with pytest.raises(ValueError, match="must start with http"):
        HTTPBackend("127.0.0.1:8000/v1")


def test_requests_are_validated_before_any_work():
    backend = ScriptedBackend(lambda r: "x")
    with pytest.raises(TypeError, match=r"requests\[1\] must be an sfbow_llm.chat.Request, got dict"):
        backend.generate([Request(messages=(("user", "a"),)), {"messages": [["user", "a"]]}])
    assert backend.batches == []
