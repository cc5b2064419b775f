"""The default model on the real STS Benchmark: the quality bar the README promises."""

import pytest
from scipy.stats import spearmanr

import sfbow
from sfbow.evaluation import load_stsb


def _spearman(path):
    data = load_stsb(path)
    a, b = sfbow.encode(data.sentences1), sfbow.encode(data.sentences2)
    return 100 * spearmanr(sfbow.paired_fuzzy_jaccard(a, b), data.scores).statistic, len(data)


def test_default_model_reaches_73_on_stsb_dev(stsb_dir):
    spearman, pairs = _spearman(stsb_dir / "sts-dev.csv")
    assert pairs == 1500
    assert spearman >= 73.0
    assert spearman == pytest.approx(76.3, abs=0.1)  # the figure documented in the README (zipf weights)


def test_default_model_stsb_test_figure(stsb_dir):
    spearman, pairs = _spearman(stsb_dir / "sts-test.csv")
    assert pairs == 1379
    assert spearman == pytest.approx(64.5, abs=0.1)  # zipf weights (weighting="none": 61.8)
