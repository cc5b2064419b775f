"""``alt-profanity-check`` 1.9.1 as a second offline oracle: one attribute, ``profanity``.

The package is a TF-IDF vectorizer and a calibrated linear SVM saved with joblib (pickles). Importing
``profanity_check`` would ``joblib.load`` them unrestricted, so we never import it: the two files are found
through the wheel's RECORD and read with :func:`sfbow_llm.restricted_pickle.restricted_joblib_load`, whose
allow-list names the scikit-learn and NumPy classes those files hold and nothing else. The files were
written by scikit-learn 1.9.1, which the package pins (``pip install alt-profanity-check==1.9.1``, extra
``profanity``; Python >= 3.11); another scikit-learn version may refuse or warn.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from sfbow_llm.oracles.base import ToxicityOracle
from sfbow_llm.packaged import packaged_file, verify_packaged_file
from sfbow_llm.restricted_pickle import restricted_joblib_load

__all__ = ["PROFANITY_INSTALL", "ProfanityOracle"]

PROFANITY_INSTALL = "pip install alt-profanity-check==1.9.1"
_DISTRIBUTION = "alt-profanity-check"


def _allow_list() -> dict[tuple[str, str], Any]:
    import numpy
    from numpy._core.multiarray import scalar
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
    from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
    from sklearn.svm import LinearSVC

    return {("numpy", "dtype"): numpy.dtype, ("numpy", "float64"): numpy.float64, ("numpy", "ndarray"): numpy.ndarray,
            ("numpy._core.multiarray", "scalar"): scalar,
            ("sklearn.calibration", "CalibratedClassifierCV"): CalibratedClassifierCV,
            ("sklearn.calibration", "_CalibratedClassifier"): _CalibratedClassifier,
            ("sklearn.calibration", "_SigmoidCalibration"): _SigmoidCalibration,
            ("sklearn.feature_extraction.text", "TfidfTransformer"): TfidfTransformer,
            ("sklearn.feature_extraction.text", "TfidfVectorizer"): TfidfVectorizer,
            ("sklearn.svm._classes", "LinearSVC"): LinearSVC}


class ProfanityOracle(ToxicityOracle):
    """The probability that a text is profane or offensive (``predict_proba``'s positive column)."""

    name = "profanity-check"
    attributes = ("profanity",)

    def __init__(self) -> None:
        found = {name: packaged_file(_DISTRIBUTION, f"profanity_check/data/{name}.joblib", PROFANITY_INSTALL)
                 for name in ("vectorizer", "model")}
        self._hashes = {f.path.name: verify_packaged_file(f, PROFANITY_INSTALL) for f in found.values()}
        self.version = found["model"].version
        allowed = _allow_list()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._vectorizer = restricted_joblib_load(found["vectorizer"].path, allowed)
            self._model = restricted_joblib_load(found["model"].path, allowed)
        self.warnings = [str(w.message) for w in caught]  # e.g. a scikit-learn version mismatch
        if not hasattr(self._vectorizer, "transform") or not hasattr(self._model, "predict_proba"):
            raise ValueError(f"the files of {_DISTRIBUTION} {self.version} do not hold a vectorizer and a classifier")

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "package": f"{_DISTRIBUTION} {self.version}", "sha256": self._hashes}

    def _score(self, texts: list[str]) -> np.ndarray:
        return self._model.predict_proba(self._vectorizer.transform(texts))[:, 1:2]
