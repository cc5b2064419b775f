"""The Jigsaw six-label toxicity classifier of PyPI's ``toxic-comment-classifier`` 0.3.0, without TensorFlow.

The wheel ships Keras 3 weights (``model.weights.h5``) and a pickled Keras tokenizer; its own code needs
TensorFlow, so install it with ``pip install --no-deps toxic-comment-classifier==0.3.0`` and this module
reads the two files directly (never importing ``toxic_classifier``). The network, as the package builds it:

    ids (100, pre-padded) -> Embedding(20000, 50) -> Bidirectional(LSTM(50, return_sequences=True),
    merge "concat") -> GlobalMaxPooling1D over all 100 steps -> Dense(50, relu) -> Dropout (inactive at
    inference) -> Dense(6, sigmoid)

LSTM with Keras' defaults: gates in the order input, forget, cell, output along the 200 columns of its
kernel, recurrent kernel and bias; tanh activation, sigmoid recurrent activation; no masking (padding id 0
runs through the LSTM like any word, as in the package). The backward layer reads the sequence reversed;
max pooling over time makes the re-reversal Keras applies irrelevant. Text preprocessing is the package's
``classify``: the Keras tokenizer on the raw text (its ``clean_text`` helper is not used there), then
``pad_sequences(maxlen=100)``. Everything runs in float32, as Keras does, in NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

from sfbow_common.extras import install_extra
from sfbow_llm.oracles.base import ToxicityOracle
from sfbow_llm.oracles.keras_tokenizer import KerasWordTokenizer, pad_pre
from sfbow_llm.packaged import MissingPackageError, packaged_file, verify_packaged_file

__all__ = ["JIGSAW_INSTALL", "JigsawOracle"]

#: The exact command that installs the classifier's weights (its declared dependencies pull TensorFlow).
JIGSAW_INSTALL = "pip install --no-deps toxic-comment-classifier==0.3.0"
_DISTRIBUTION = "toxic-comment-classifier"
_WEIGHTS = "toxic_classifier/model/model.weights.h5"
_TOKENIZER = "toxic_classifier/model/tokenizer.pickle"
MAXLEN = 100
_SHAPES = {
    "embedding/vars/0": (20000, 50),
    "bidirectional/forward_layer/cell/vars/0": (50, 200),
    "bidirectional/forward_layer/cell/vars/1": (50, 200),
    "bidirectional/forward_layer/cell/vars/2": (200,),
    "bidirectional/backward_layer/cell/vars/0": (50, 200),
    "bidirectional/backward_layer/cell/vars/1": (50, 200),
    "bidirectional/backward_layer/cell/vars/2": (200,),
    "dense/vars/0": (100, 50),
    "dense/vars/1": (50,),
    "dense_1/vars/0": (50, 6),
    "dense_1/vars/1": (6,),
}


class JigsawOracle(ToxicityOracle):
    """Scores for toxic, severe_toxic, obscene, threat, insult and identity_hate, each in [0, 1].

    Measured on clear cases (tests/sfbow_llm/test_jigsaw.py): benign sentences score at most about 0.1 on
    every attribute, plainly toxic ones 0.77-0.999 on ``toxic``. Texts longer than 100 known words are
    judged on their last 100 (the package's truncation); a text with no known word gets the scores of an
    all-padding input (about 0.07 on ``toxic``). ``batch_size`` bounds memory, not results.
    """

    name = "jigsaw"
    attributes = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

    def __init__(self, weights: str | Path | None = None, tokenizer: str | Path | None = None, *,
                 batch_size: int = 256) -> None:
        if weights is None or tokenizer is None:
            found = [packaged_file(_DISTRIBUTION, p, JIGSAW_INSTALL) for p in (_WEIGHTS, _TOKENIZER)]
            self._hashes = {f.path.name: verify_packaged_file(f, JIGSAW_INSTALL) for f in found}
            self.version = found[0].version
            weights = weights or found[0].path
            tokenizer = tokenizer or found[1].path
        else:
            self._hashes, self.version = {}, "files"
        self.batch_size = batch_size
        self.tokenizer = KerasWordTokenizer.from_pickle(tokenizer)
        self._params = _read_weights(Path(weights))
        rows = self._params["embedding/vars/0"].shape[0]
        if self.tokenizer.max_id() >= rows:
            raise ValueError(f"{tokenizer}: the tokenizer gives ids up to {self.tokenizer.max_id()}, beyond the "
                             f"{rows} rows of the embedding in {weights}; the two files do not belong together")

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "package": f"{_DISTRIBUTION} {self.version}", "sha256": self._hashes}

    def encode(self, texts: list[str]) -> np.ndarray:
        """The (n, 100) id matrix the network sees."""
        return pad_pre([self.tokenizer.ids(t) for t in texts], MAXLEN)

    def _score(self, texts: list[str]) -> np.ndarray:
        ids = self.encode(texts)
        # One BLAS thread: the matrices are tiny (batch x 50 x 200 per step), and on a busy 2-core machine
        # two threads made scoring 70x slower (measured: 200 texts in 10.6 s instead of 0.16 s).
        with threadpool_limits(limits=1, user_api="blas"):
            return np.concatenate([self._forward(ids[i:i + self.batch_size])
                                   for i in range(0, len(ids), self.batch_size)])

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        p = self._params
        embedded = p["embedding/vars/0"][ids]  # (n, T, 50)
        forward = _lstm_max_over_time(embedded, "forward_layer", p)
        backward = _lstm_max_over_time(embedded[:, ::-1], "backward_layer", p)
        pooled = np.concatenate([forward, backward], axis=1)  # concat merge, then max over time
        hidden = np.maximum(pooled @ p["dense/vars/0"] + p["dense/vars/1"], np.float32(0))
        return expit(hidden @ p["dense_1/vars/0"] + p["dense_1/vars/1"]).astype(np.float64)


def _lstm_max_over_time(x: np.ndarray, layer: str, p: dict[str, np.ndarray]) -> np.ndarray:
    """Run one Keras LSTM over (n, T, d) inputs and return the maximum of its hidden states over time."""
    kernel = p[f"bidirectional/{layer}/cell/vars/0"]
    recurrent = p[f"bidirectional/{layer}/cell/vars/1"]
    bias = p[f"bidirectional/{layer}/cell/vars/2"]
    units = recurrent.shape[0]
    inputs = x @ kernel + bias  # (n, T, 4u): the input part of every step at once
    h = np.zeros((x.shape[0], units), dtype=np.float32)
    c = np.zeros_like(h)
    best = np.full_like(h, -np.inf)
    for t in range(x.shape[1]):
        z = inputs[:, t] + h @ recurrent
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = expit(f) * c + expit(i) * np.tanh(g)
        h = expit(o) * np.tanh(c)
        np.maximum(best, h, out=best)
    return best


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise MissingPackageError("the Jigsaw oracle reads HDF5 weights with h5py; install the extra: "
                                  f"{install_extra('llm')} (or pip install h5py)") from None
    try:
        with h5py.File(path, "r") as file:
            params = {}
            for name, shape in _SHAPES.items():
                key = f"layers/{name}"
                if key not in file:
                    raise ValueError(f"{path} has no dataset {key}: not the toxic-comment-classifier weights")
                array = np.asarray(file[key], dtype=np.float32)
                if array.shape != shape:
                    raise ValueError(f"{path}: {key} has shape {array.shape}, expected {shape}")
                if not np.isfinite(array).all():
                    raise ValueError(f"{path}: {key} holds NaN or inf")
                params[name] = array
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file ({error}); reinstall it with: "
                         f"{JIGSAW_INSTALL} --force-reinstall") from error
    return params
