"""Fixtures for the llmkit tests: the real SmolLM2-135M-Instruct, converted once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A session-private cache folder: the first load converts the GGUF (about 20 s), later ones reuse it."""
    return tmp_path_factory.mktemp("llmkit-cache")


@pytest.fixture(scope="session")
def smollm2(model_cache):
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from llmkit.models import load_causal_lm
    from llmkit.packaged import MissingPackageError

    try:
        return load_causal_lm(cache_dir=model_cache)
    except MissingPackageError as error:
        pytest.skip(str(error))
