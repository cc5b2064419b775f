"""Fixtures for the sfbow_llm tests: the real SmolLM2-135M-Instruct, converted once per session.

``smollm2`` is the fp32 reference engine (torch); ``smollm2_fast`` the default CTranslate2 int8 engine,
converted from the same session cache (about 15 s once), which tests not about the reference model use.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A session-private cache folder: the first load converts the GGUF (about 20 s), later ones reuse it."""
    return tmp_path_factory.mktemp("sfbow-llm-cache")


def _load(model_cache, engine, **options):
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from sfbow_llm.models import load_causal_lm
    from sfbow_llm.packaged import MissingPackageError

    try:
        return load_causal_lm(cache_dir=model_cache, engine=engine, **options)
    except MissingPackageError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2(model_cache):
    """The reference engine: the fp32 torch model."""
    return _load(model_cache, "reference")


@pytest.fixture(scope="session")
def smollm2_fast(model_cache, smollm2):
    """The default fast engine (CTranslate2, int8, one thread), converted from the session's fp32 folder."""
    pytest.importorskip("ctranslate2")
    return _load(model_cache, "ctranslate2", threads=1)
