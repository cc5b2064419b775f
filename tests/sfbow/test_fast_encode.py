"""The fast encode path (native tokeniser + parallel kernel) must equal the reference bit for bit."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbow import SFBoW
from sfbow._reference import reference_encode
from sfbow.tokenization import tokenize


def reference(model: SFBoW, sentences: list[str]) -> np.ndarray:
    """The reference's float32 vectors (a float16 table's pooled rows widen to float32 exactly)."""
    return reference_encode(map(tokenize, sentences), model.vectors.index, model.table).astype(np.float32)


def sts_sentences(stsb_dir: Path) -> list[str]:
    lines = (stsb_dir / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
    return [s for line in lines for s in line.split("\t")[5:7]]


@pytest.mark.parametrize("n_threads", [1, 2, None])
def test_real_sentences_match_reference(default_model: SFBoW, stsb_dir: Path, n_threads: int | None) -> None:
    sentences = sts_sentences(stsb_dir)
    want = reference(default_model, sentences)
    got = default_model.encode(sentences, n_threads=n_threads, batch_size=1000)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit


def test_custom_tokenizer_and_pretokenized_keep_the_python_path(default_model: SFBoW) -> None:
    sentences = ["A man plays the guitar.", "", "Zzqx!"]
    model = copy.copy(default_model)
    model.tokenizer = str.split  # no lower-casing, no punctuation split
    np.testing.assert_array_equal(
        model.encode(sentences), reference_encode(map(str.split, sentences), model.vectors.index, model.table))
    tokens = [tokenize(s) for s in sentences]
    np.testing.assert_array_equal(default_model.encode(tokens, pretokenized=True), default_model.encode(sentences))


def test_thread_count_is_restored(default_model: SFBoW) -> None:
    import numba

    before = numba.get_num_threads()
    default_model.encode(["a b c"], n_threads=1)
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        default_model.encode(["a"], n_threads=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=50) | st.sampled_from(["The cat sat.", "", "!!!", "Ünïcödé and ASCII"]),
                max_size=30),
       st.integers(1, 7), st.sampled_from([1, 2]))
def test_generated_sentences_match_reference(default_model: SFBoW, sentences: list[str], batch_size: int,
                                            n_threads: int) -> None:
    got = default_model.encode(sentences, batch_size=batch_size, n_threads=n_threads)
    assert np.array_equal(got, reference(default_model, sentences))


@pytest.fixture(scope="module")
def variants(default_model: SFBoW) -> dict[str, SFBoW]:
    """The default model's vectors and universe, with each way of keeping memberships."""
    return {kind: SFBoW(default_model.vectors, default_model.universe, memberships=kind)
            for kind in ("float32", "float16", "on-the-fly")}


def test_float16_table_is_the_reference_on_rounded_memberships(variants: dict[str, SFBoW], stsb_dir: Path) -> None:
    model = variants["float16"]
    sentences = sts_sentences(stsb_dir)[:3000] + ["", "zzqx"]
    assert model.table.dtype == np.float16 and model.table.nbytes * 2 == variants["float32"].table.nbytes
    want = reference_encode(map(tokenize, sentences), model.vectors.index, model.table.astype(np.float32))
    got = model.encode(sentences, batch_size=500)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_on_the_fly_memberships_match_the_table(variants: dict[str, SFBoW], stsb_dir: Path) -> None:
    model = variants["on-the-fly"]
    sentences = sts_sentences(stsb_dir)[:3000] + ["", "zzqx"]
    assert model.table is None
    got = model.encode(sentences, batch_size=500)
    np.testing.assert_allclose(got, variants["float32"].encode(sentences), rtol=1e-5, atol=1e-6)


def test_memberships_option_is_checked(default_model: SFBoW) -> None:
    with pytest.raises(ValueError, match="memberships"):
        SFBoW(default_model.vectors, default_model.universe, memberships="int8")
    with pytest.raises(ValueError, match="clip=True"):
        SFBoW(default_model.vectors, default_model.universe, clip=False, memberships="float16")
    with pytest.raises(ValueError, match="float16 range"):
        SFBoW(default_model.vectors, default_model.universe * 1e6, memberships="float16")


def test_auto_memberships_are_float16_where_they_fit_and_float32_otherwise(default_model: SFBoW) -> None:
    assert default_model.memberships == "float16" and default_model.table.dtype == np.float16  # the default
    vectors, universe = default_model.vectors, default_model.universe
    assert SFBoW(vectors, universe, clip=False).memberships == "float32"  # float16 pools bit patterns >= 0
    huge = SFBoW(vectors, universe * 1e6)  # memberships beyond 65504: float32, not an error
    assert huge.memberships == "float32" and huge.table.dtype == np.float32
    np.testing.assert_array_equal(huge.encode(["a cat"]), SFBoW(vectors, universe * 1e6, memberships="float32").encode(["a cat"]))
