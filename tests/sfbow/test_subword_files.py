"""Damaged model2vec folders (tokenizer.json + model.safetensors) and subword model files: a matrix of byte
flips, truncations and JSON field mutations. Each case must either be refused at load with a
ModelFileError naming the damaged file, or load a model that then encodes (native and reference paths,
ASCII and non-ASCII text, added tokens): no other exception, nothing that fails later at encode."""

from __future__ import annotations

import copy
import json
import string

import numpy as np
import pytest

from sfbow import ModelFileError, SFBoW
from sfbow import _persistence as persistence
from sfbow.subword import SubwordVectors, load_model2vec, subword_members
from sfbow.wordpiece import WordPieceTokenizer

safetensors_numpy = pytest.importorskip("safetensors.numpy")

PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits,
          *(f"##{c}" for c in string.ascii_lowercase), *".,!?'-", "the", "play", "##ing", "é", "##é"]
SENTENCES = ["The cat is playing.", "[MASK] plays, again!", "", "Ünïcödé café", "x" * 150, "日本 the end",
             "the\u2028play\ttheplaying"]
HOSTILE = [None, -1, 0, 2**70, 1.5, "", "x", "[UNK]", [], {}, True, [[[[[[[[1]]]]]]]], {"a": {"b": []}}]
DIM, K = 8, 4


def _tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(PIECES, added_tokens=["[MASK]", "[CLS]"])


def _write_folder(folder, tokenizer_document, tensors):
    folder.mkdir(exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_document), encoding="utf-8")
    safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    return folder


def _tensors(quantised: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if not quantised:
        return {"embeddings": rng.standard_normal((len(PIECES), DIM)).astype(np.float32)}
    return {"embeddings": rng.standard_normal((10, DIM)).astype(np.float16),
            "token_mapping": rng.integers(0, 10, len(PIECES)).astype(np.int64),
            "weights": rng.uniform(0.5, 1.5, len(PIECES)).astype(np.float32)}


def _outcome(load, damaged_name: str) -> str:
    """'refused' (a ModelFileError naming ``damaged_name``) or 'loaded' (after encoding every sentence)."""
    try:
        vectors = load()
    except ModelFileError as error:
        assert damaged_name in str(error), f"the error does not name {damaged_name}: {error}"
        return "refused"
    model = SFBoW.from_parts(vectors, np.random.default_rng(1).standard_normal((K, vectors.dim)).astype(np.float32))
    encoded = model.encode(SENTENCES, n_threads=1, show_progress=False)
    assert encoded.shape == (len(SENTENCES), K) and np.isfinite(encoded).all()
    pretokenized = model.encode([s.split() for s in SENTENCES], pretokenized=True, show_progress=False)
    assert np.isfinite(pretokenized).all()
    return "loaded"


def _set(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
TOKENIZER_FIELDS = [("model",), ("model", "type"), ("model", "unk_token"), ("model", "continuing_subword_prefix"),
                    ("model", "max_input_chars_per_word"), ("model", "vocab"), ("model", "vocab", "the"),
                    ("normalizer",), ("normalizer", "lowercase"), ("normalizer", "strip_accents"),
                    ("normalizer", "clean_text"), ("normalizer", "handle_chinese_chars"), ("pre_tokenizer",),
                    ("added_tokens",), ("added_tokens", 0), ("added_tokens", 0, "content"), ("added_tokens", 0, "id")]


@pytest.mark.parametrize("quantised", [False, True])
def test_tokenizer_json_field_mutations_are_refused_or_encode(tmp_path, quantised):
    base = _tokenizer().to_json()
    tensors = _tensors(quantised)
    outcomes = []
    for field in TOKENIZER_FIELDS:
        for value in [*HOSTILE, _DELETE]:
            document = copy.deepcopy(base)
            _set(document, field, value)
            folder = _write_folder(tmp_path / "m2v", document, tensors)
            outcomes.append(_outcome(lambda folder=folder: load_model2vec(folder), "tokenizer.json"))
    assert outcomes.count("refused") > len(outcomes) // 2 and "loaded" in outcomes  # both kinds occur


def _header_and_data(path):
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def _write_header(path, header, data):
    encoded = json.dumps(header).encode("utf-8")
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)


@pytest.mark.parametrize("quantised", [False, True])
def test_safetensors_header_mutations_are_refused_or_encode(tmp_path, quantised):
    folder = _write_folder(tmp_path / "m2v", _tokenizer().to_json(), _tensors(quantised))
    weights = folder / "model.safetensors"
    header, data = _header_and_data(weights)
    outcomes = []
    for name in [n for n in header if n != "__metadata__"]:
        for field in ("dtype", "shape", "data_offsets"):
            for value in [*HOSTILE, "F64", "BF16", "I8", [2_000_000], [2_000_000, DIM], [0, 2**40], [-8, 0],
                          [0, len(data)], _DELETE]:
                edited = copy.deepcopy(header)
                _set(edited, (name, field), value)
                _write_header(weights, edited, data)
                outcomes.append(_outcome(lambda: load_model2vec(folder), "model.safetensors"))
    for value in HOSTILE:
        _write_header(weights, {**header, "__metadata__": value}, data)
        outcomes.append(_outcome(lambda: load_model2vec(folder), "model.safetensors"))
    assert outcomes.count("refused") > len(outcomes) // 2


def test_a_token_mapping_larger_than_the_tokenizer_is_refused_before_expanding(tmp_path):
    """2M ids in a small file would expand to 2M rows: refused by comparing with the tokenizer first."""
    tensors = _tensors(True)
    tensors["token_mapping"] = np.zeros(2_000_000, np.int8)
    tensors["weights"] = np.ones(2_000_000, np.float16)
    folder = _write_folder(tmp_path / "m2v", _tokenizer().to_json(), tensors)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: 'token_mapping' must be \d+ integer ids"):
        load_model2vec(folder)


@pytest.mark.parametrize("name", ["tokenizer.json", "model.safetensors"])
def test_byte_flips_and_truncations_are_refused_or_encode(tmp_path, name):
    folder = _write_folder(tmp_path / "m2v", _tokenizer().to_json(), _tensors(name == "model.safetensors"))
    target = folder / name
    original = bytearray(target.read_bytes())
    outcomes = []
    stride = max(1, len(original) // 150)
    for offset in range(0, len(original), stride):
        for mask in (0xFF, 0x01, 0x20):
            damaged = bytearray(original)
            damaged[offset] ^= mask
            target.write_bytes(damaged)
            outcomes.append(_outcome(lambda: load_model2vec(folder), name))
        target.write_bytes(original[:offset])
        outcomes.append(_outcome(lambda: load_model2vec(folder), name))
    assert "refused" in outcomes


OPTION_FIELDS = ["unk_token", "prefix", "max_input_chars_per_word", "lowercase", "strip_accents", "clean_text",
                 "handle_chinese_chars", "added_tokens", "kind"]


def _subword_file(path, options=None, table_words=None):
    """A subword model file with valid checksums around whatever options and table words it is given."""
    vectors = SubwordVectors(_tokenizer(), _tensors(False)["embeddings"], ["thee", "playing"])
    model = SFBoW.from_parts(vectors, np.random.default_rng(1).standard_normal((K, DIM)).astype(np.float32))
    words, word_ends = persistence.encode_words(vectors.words)
    arrays = {"words": words, "word_ends": word_ends, "vectors": vectors.matrix, "universe": model.universe,
              **subword_members(vectors)}
    if options is not None:
        arrays["tokenizer"] = np.frombuffer(json.dumps(options).encode("utf-8"), np.uint8)
    if table_words is not None:
        arrays["table_words"], arrays["table_word_ends"] = persistence.encode_words(table_words)
    persistence.save_model_file(path, {"strategy": "custom", "normalize": True, "clip": True,
                                       "custom_tokenizer": False}, arrays)
    return path


def test_subword_model_file_options_and_table_words_are_checked_at_load(tmp_path):
    base = _tokenizer().options()
    path = tmp_path / "model.npz"
    outcomes = []
    for field in OPTION_FIELDS:
        for value in [*HOSTILE, ["[NOPE]"], "[MASK]", _DELETE]:
            options = copy.deepcopy(base)
            _set(options, (field,), value)
            _subword_file(path, options=options)
            outcomes.append(_outcome(lambda: SFBoW.load(path).vectors, "model.npz"))
    for table_words in (["the"], ["zzzzé"], ["playing", "playing"], ["the play"], ["x" * 200], ["日本"]):
        _subword_file(path, table_words=table_words)
        outcomes.append(_outcome(lambda: SFBoW.load(path).vectors, "model.npz"))
    assert outcomes[-6:] == ["refused"] * 6 and "loaded" in outcomes
    _subword_file(path)
    assert _outcome(lambda: SFBoW.load(path).vectors, "model.npz") == "loaded"
