"""Fixtures of the sfbow tests: small random vectors and the real default model."""

from __future__ import annotations

import numpy as np
import pytest

import sfbow
from sfbow import SFBoW, WordVectors

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", ".", ",", "a"]


@pytest.fixture
def small_vectors() -> WordVectors:
    rng = np.random.default_rng(0)
    return WordVectors(WORDS, rng.standard_normal((len(WORDS), 8)))


@pytest.fixture
def small_model(small_vectors: WordVectors) -> SFBoW:
    return SFBoW(small_vectors, "gaussian", k=16)


@pytest.fixture(scope="session")
def default_model() -> SFBoW:
    return sfbow.default_model()
