"""SFBoWVectorizer: the scikit-learn API contract, pickling, and a real pipeline that learns."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks as checks

from sfbow import SFBoW, WordVectors
from sfbow.sklearn import SFBoWVectorizer

SENTENCES = ["the cat sat on the mat .", "a dog ran", "the dog sat", "zebra", "", "cat , dog , mat"]

# scikit-learn's estimator checks that apply to a text transformer: they exercise the API
# (construction, parameters, tags, repr, clone, unfitted errors) without fitting on a numeric array.
APPLICABLE_CHECKS = [
    checks.check_estimator_cloneable,
    checks.check_estimator_tags_renamed,
    checks.check_valid_tag_types,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_estimators_unfitted,
    checks.check_transformers_unfitted,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_mixin_order,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_transformer_n_iter,
]

# The others feed numeric 2-D arrays (random floats, NaN/inf, complex, sparse matrices, 1 feature)
# as X, which a text transformer rejects: X is sentences. The estimator declares this with the tags
# input_tags.string=True, two_d_array=False (as CountVectorizer does), and sklearn then skips them.
# The properties the ones below test are re-tested with sentences in this file instead:
#   fit_returns_self, fit_idempotent, methods_sample_order_invariance, methods_subset_invariance,
#   estimators_pickle, dict_unchanged, dont_overwrite_parameters, estimators_overwrite_params,
#   pipeline_consistency, transformer_preserve_dtypes, transformer_general (fit_transform ==
#   fit().transform()), estimators_empty_data_messages (0 sentences).
# Not applicable at all: n_features_in / n_features_in_after_fitting / fit2d_1feature (text has no
# input features), estimators_dtypes / dtype_object / complex_data / f_contiguous_array /
# readonly_memmap_input / estimators_nan_inf / fit1d / fit2d_predict1d / fit2d_1sample (numeric
# array properties), estimator_sparse_* (sparse input), positive_only_tag_during_fit (no numeric
# values), transformer_data_not_an_array (a numeric array wrapper), fit_score_takes_y (y is
# accepted and ignored; tested below), fit_check_is_fitted (tested below).


@pytest.mark.parametrize("check", APPLICABLE_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(check) -> None:
    check("SFBoWVectorizer", SFBoWVectorizer())


def test_tags_declare_text_input() -> None:
    from sklearn.utils import get_tags

    tags = get_tags(SFBoWVectorizer())
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.requires_fit and not tags.target_tags.required


@pytest.fixture
def vectorizer(small_vectors: WordVectors) -> SFBoWVectorizer:
    return SFBoWVectorizer(small_vectors, "gaussian", k=6)


def test_fit_transform_matches_sfbow(vectorizer: SFBoWVectorizer, small_vectors: WordVectors) -> None:
    assert vectorizer.fit(SENTENCES, y=[0] * len(SENTENCES)) is vectorizer
    out = vectorizer.transform(SENTENCES)
    assert out.dtype == np.float32 and out.shape == (len(SENTENCES), 6)
    expected = SFBoW(small_vectors, "gaussian", k=6).encode(SENTENCES)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(clone(vectorizer).fit_transform(SENTENCES), out)
    assert list(vectorizer.get_feature_names_out()) == [f"sfbowvectorizer{i}" for i in range(6)]


def test_text_versions_of_the_numeric_checks(vectorizer: SFBoWVectorizer) -> None:
    params = vectorizer.get_params()
    out = vectorizer.fit(SENTENCES).transform(SENTENCES)
    assert vectorizer.get_params() == params  # fit does not change parameters
    public = {k for k in vars(vectorizer) if not k.startswith("_")}
    assert public - set(params) == {"universe_", "vectors_"}  # fitted attributes end in "_"
    state = dict(vars(vectorizer))
    vectorizer.transform(SENTENCES)
    assert set(vars(vectorizer)) == set(state)  # transform changes nothing
    np.testing.assert_array_equal(vectorizer.fit(SENTENCES).transform(SENTENCES), out)  # idempotent
    order = np.random.default_rng(0).permutation(len(SENTENCES))
    np.testing.assert_array_equal(vectorizer.transform([SENTENCES[i] for i in order]), out[order])
    np.testing.assert_array_equal(vectorizer.transform(SENTENCES[2:4]), out[2:4])  # subset invariance


def test_pipeline_with_a_regressor(vectorizer: SFBoWVectorizer) -> None:
    target = np.arange(len(SENTENCES), dtype=float)
    pipeline = make_pipeline(vectorizer, Ridge(alpha=1e-3)).fit(SENTENCES, target)
    assert pipeline.predict(SENTENCES).shape == (len(SENTENCES),)
    assert pipeline.score(SENTENCES, target) > 0.5  # 6 features can fit 6 sentences
    refit = clone(pipeline).fit(SENTENCES, target)
    np.testing.assert_allclose(refit.predict(SENTENCES), pipeline.predict(SENTENCES), rtol=1e-6)


def test_unfitted_and_bad_input(vectorizer: SFBoWVectorizer) -> None:
    with pytest.raises(NotFittedError):
        vectorizer.transform(SENTENCES)
    with pytest.raises(NotFittedError):
        vectorizer.get_feature_names_out()
    for bad, error, message in [
        ("the cat", TypeError, "single string"),
        (np.array([["a", "b"]]), ValueError, r"must be 1-D.*shape \(1, 2\)"),
        (["a", 3], TypeError, r"X\[1\] must be a string"),
        ([], ValueError, "0 sentences"),
        (42, TypeError, "X must be a list of strings, got int"),
    ]:
        with pytest.raises(error, match=message):
            vectorizer.fit(bad)
    with pytest.raises(ValueError, match="fit_universe_on must be one of"):
        clone(vectorizer).set_params(fit_universe_on="corpus").fit(SENTENCES)


def test_fit_universe_on_data_uses_the_words_of_x(small_vectors: WordVectors) -> None:
    x = ["dog mat", "mat zebra dog dog"]  # known words: dog (row 5), mat (row 4)
    fitted = SFBoWVectorizer(small_vectors, "frequent", k=2, fit_universe_on="data").fit(x)
    expected = small_vectors.matrix[[4, 5]]  # frequency (row) order
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(fitted.universe_, expected, rtol=1e-6)
    on_vocabulary = SFBoWVectorizer(small_vectors, "frequent", k=2).fit(x)
    np.testing.assert_allclose(on_vocabulary.universe_[0], small_vectors["the"] / np.linalg.norm(small_vectors["the"]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="no word of X is in the vocabulary"):
        SFBoWVectorizer(small_vectors, "pca", k=2, fit_universe_on="data").fit(["zebra"])


def test_pandas_output_keeps_the_index(vectorizer: SFBoWVectorizer) -> None:
    pd = pytest.importorskip("pandas")
    series = pd.Series(SENTENCES, index=[10 * i for i in range(len(SENTENCES))])
    frame = vectorizer.set_output(transform="pandas").fit(series).transform(series)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == list(series.index)
    assert list(frame.columns) == list(vectorizer.get_feature_names_out())


def test_pickle_round_trip_with_own_vectors(vectorizer: SFBoWVectorizer) -> None:
    out = vectorizer.fit(SENTENCES).transform(SENTENCES)
    restored = pickle.loads(pickle.dumps(vectorizer))
    np.testing.assert_array_equal(restored.transform(SENTENCES), out)
    assert restored.vectors_ is restored.vectors  # one copy of the vectors in the pickle


def test_default_vectors_are_not_pickled() -> None:
    fitted = SFBoWVectorizer(n_words=20_000).fit(SENTENCES)
    blob = pickle.dumps(fitted)
    # the universe (100 x 50 float32 = 20 kB) and parameters; the 80 MB vectors and table stay out
    assert len(blob) < 40_000
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.transform(SENTENCES), fitted.transform(SENTENCES))


# -- real data ------------------------------------------------------------------------------------


def genre_data(path: Path) -> tuple[list[str], list[str]]:
    """Single STS-B sentences labelled with their genre (field 0: main-captions/forums/news)."""
    from sfbow.evaluation import load_stsb

    data = load_stsb(path)
    with open(path, encoding="utf-8") as handle:
        genres = [line.split("\t", 1)[0] for line in handle]
    return data.sentences1 + data.sentences2, genres + genres


@pytest.mark.slow
def test_pipeline_learns_stsb_genres_under_grid_search(stsb_dir: Path) -> None:
    x_train, y_train = genre_data(stsb_dir / "sts-train.csv")
    x_dev, y_dev = genre_data(stsb_dir / "sts-dev.csv")
    pipeline = make_pipeline(SFBoWVectorizer(n_words=20_000), LogisticRegression(max_iter=2000))
    grid = GridSearchCV(pipeline, [
        {"sfbowvectorizer__universe": ["pca"], "sfbowvectorizer__k": [50, 100]},
        {"sfbowvectorizer__universe": ["gaussian"], "sfbowvectorizer__k": [200]},
    ], cv=2, n_jobs=2)
    grid.fit(x_train[::3], y_train[::3])
    accuracy = grid.score(x_dev, y_dev)
    majority = max(y_dev.count(g) for g in set(y_dev)) / len(y_dev)
    assert majority < 0.45
    assert accuracy > majority + 0.2, f"dev accuracy {accuracy:.3f} (majority class {majority:.3f})"
    restored = pickle.loads(pickle.dumps(grid.best_estimator_))
    assert restored.score(x_dev, y_dev) == accuracy
