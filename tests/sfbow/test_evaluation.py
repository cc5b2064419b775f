"""STS loaders (fixtures in the published layouts, and malformed copies) and evaluate_sts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sfbow.evaluation import (
    STSDataset,
    STSTask,
    evaluate_sts,
    load_semeval_sts,
    load_sick,
    load_stsb,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sts"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# -- STS Benchmark --------------------------------------------------------------------------------


def test_stsb_keeps_extra_fields_out_of_the_sentences(tmp_path: Path) -> None:
    path = write(tmp_path / "sts-dev.csv",
                 "main-news\tsrc\t2012\t0001\t4.5\tA \"quoted\" one.\tSecond.\tsource-a\tsource-b\n"
                 "main-forums\tsrc\t2014\t0002\t0.0\tThird\tFourth\n")
    data = load_stsb(path)
    assert data.name == "sts-dev"
    assert data.sentences1 == ['A "quoted" one.', "Third"]
    assert data.sentences2 == ["Second.", "Fourth"]
    np.testing.assert_array_equal(data.scores, [4.5, 0.0])


def test_real_stsb_dev(stsb_dir: Path) -> None:
    data = load_stsb(stsb_dir / "sts-dev.csv")
    assert len(data) == 1500 and len(data.sentences1) == len(data.sentences2) == 1500
    assert data.scores.min() >= 0 and data.scores.max() <= 5


@pytest.mark.parametrize(("text", "message"), [
    ("a\tb\tc\td\t4.0\tonly one sentence\n", r"sts-x\.csv:1: expected at least 7"),
    ("a\tb\tc\td\t4.0\tx\ty\na\tb\tc\td\tfour\tx\ty\n", r"sts-x\.csv:2: score 'four' is not a number"),
    ("a\tb\tc\td\tnan\tx\ty\n", r"sts-x\.csv:1: score 'nan' is not a finite"),
    ("", r"no sentence pairs"),
    (b"a\tb\tc\td\t1\tx\ty\na\tb\tc\td\t1\t\xff\ty\n", r"sts-x\.csv:2: not valid UTF-8"),
])
def test_stsb_malformed_lines_name_file_and_line(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_stsb(write(tmp_path / "sts-x.csv", text))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sts-nope.csv"):
        load_stsb(tmp_path / "sts-nope.csv")
    with pytest.raises(FileNotFoundError, match="SICK_nope.txt"):
        load_sick(tmp_path / "SICK_nope.txt")
    with pytest.raises(FileNotFoundError, match="STS12-en-test"):
        load_semeval_sts(tmp_path / "STS12-en-test")


# -- SICK -----------------------------------------------------------------------------------------


def test_sick_fixture() -> None:
    data = load_sick(FIXTURES / "SICK" / "SICK_test_annotated.txt")
    assert len(data) == 6
    assert data.sentences1[3] == "A man is playing a guitar"
    assert data.sentences2[3] == "A woman is slicing an onion"
    assert data.scores[3] == pytest.approx(1.1)


def test_sick_columns_are_found_by_header_name(tmp_path: Path) -> None:
    # SICK.txt, the full release, has more columns in another order, CRLF line ends and a BOM
    text = ("\ufeffpair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set\r\n"
            "1\tOne.\tTwo.\tNEUTRAL\t3.5\tTRAIN\r\n")
    data = load_sick(write(tmp_path / "SICK.txt", text))
    assert (data.sentences1, data.sentences2, data.scores.tolist()) == (["One."], ["Two."], [3.5])


@pytest.mark.parametrize(("text", "message"), [
    ("", r"SICK_x\.txt: the file is empty"),
    ("pair_ID\tsentence_A\tsentence_B\tscore\n1\ta\tb\t3\n", r"SICK_x\.txt:1: the header lacks .*relatedness_score"),
    ("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\ta\tb\t3\n",
     r"SICK_x\.txt:2: expected 5 tab-separated fields, got 4"),
    ("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\ta\tb\tNEUTRAL\t3\n",
     r"SICK_x\.txt:2: score 'NEUTRAL' is not a number"),
])
def test_sick_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_sick(write(tmp_path / "SICK_x.txt", text))


# -- SemEval STS 2012-2016 ------------------------------------------------------------------------


def test_semeval_fixture_subsets_and_quirks() -> None:
    task = load_semeval_sts(FIXTURES / "STS12-en-test")
    assert task.name == "STS12"
    assert [s.name for s in task.subsets] == ["MSRvid", "surprise.OnWN"]
    onwn = task.subsets[1]  # CRLF line ends and a third tab field
    assert onwn.sentences1[0] == "the act of playing a musical instrument"
    assert onwn.sentences2[0] == "performing music on an instrument"
    assert onwn.scores.tolist() == [4.5, 3.8, 0.4, 4.75]


def test_semeval_empty_gold_line_drops_the_pair() -> None:
    (qq,) = load_semeval_sts(FIXTURES / "STS16-en-test").subsets
    assert qq.sentences1 == ["How do I cook rice?", "What time is it?", "How old is the universe?"]
    assert qq.scores.tolist() == [4.0, 1.0, 5.0]


def semeval(tmp_path: Path, inputs: str, gold: str) -> Path:
    write(tmp_path / "STS13-en-test" / "STS.input.FNWN.txt", inputs)
    write(tmp_path / "STS13-en-test" / "STS.gs.FNWN.txt", gold)
    return tmp_path / "STS13-en-test"


@pytest.mark.parametrize(("inputs", "gold", "message"), [
    ("a\tb\nc\td\ne\tf\n", "1\n2\n", r"STS\.gs\.FNWN\.txt has 2 lines but .*STS\.input\.FNWN\.txt has 3"),
    ("a\tb\nc\td\n", "1\n2\n3\n", r"has 3 lines but .* has 2"),
    ("a\tb\nc\td\n", "1\nhigh\n", r"STS\.gs\.FNWN\.txt:2: score 'high' is not a number"),
    ("a\tb\nc d\n", "1\n2\n", r"STS\.input\.FNWN\.txt:2: expected two tab-separated sentences"),
    ("a\tb\nc\td\n", "\n\n", r"STS\.gs\.FNWN\.txt has no sentence pairs with a gold score"),
])
def test_semeval_malformed(tmp_path: Path, inputs: str, gold: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_semeval_sts(semeval(tmp_path, inputs, gold))


def test_semeval_missing_gold_file_is_named(tmp_path: Path) -> None:
    write(tmp_path / "STS14-en-test" / "STS.input.images.txt", "a\tb\n")
    with pytest.raises(FileNotFoundError, match=r"STS\.gs\.images\.txt"):
        load_semeval_sts(tmp_path / "STS14-en-test")
    empty = tmp_path / "STS15-en-test"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no STS\.input\.<subset>\.txt"):
        load_semeval_sts(empty)


# -- evaluate_sts ---------------------------------------------------------------------------------


def toy(name: str, scores: list[float]) -> STSDataset:
    n = len(scores)
    return STSDataset(name, [f"s{i}" for i in range(n)], [f"t{i}" for i in range(n)], np.asarray(scores))


def test_pair_scorer_per_subset_task_means_and_overall() -> None:
    perfect = {"s0": 0.1, "s1": 0.5, "s2": 0.9, "s3": 0.2}
    a, b = toy("a", [1, 3, 5, 2]), toy("b", [5, 3, 1, 4])  # perfectly correlated, anti-correlated

    def scorer(first: list[str], second: list[str]) -> list[float]:
        return [perfect[s] for s in first]

    result = evaluate_sts(scorer, [STSTask("year", (a, b)), toy("single", [1, 2, 3, 0])])
    year = result.tasks["year"]
    assert year.subsets["a"].spearman == pytest.approx(100)
    assert year.subsets["b"].spearman == pytest.approx(-100)
    assert year.spearman == pytest.approx(0)
    assert result.tasks["single"].spearman == pytest.approx(80)
    assert result.spearman == pytest.approx(40)
    assert result.to_dict()["tasks"]["year"]["subsets"]["a"]["n"] == 4


def test_encoder_and_similarities() -> None:
    data = toy("d", [0, 1, 2, 3])
    lookup = {"s0": [1, 0], "s1": [1, 0], "s2": [1, 0], "s3": [1, 0],
              "t0": [0, 1], "t1": [1, 1.5], "t2": [1, 1], "t3": [1, 0]}

    def encoder(sentences: list[str]) -> np.ndarray:
        return np.array([lookup[s] for s in sentences], dtype=np.float32)

    for similarity in ("cosine", "fuzzy_jaccard", lambda x, y: -np.abs(x - y).sum(axis=1)):
        assert evaluate_sts(encoder, [data], similarity=similarity).spearman == pytest.approx(100)

    class WithEncode:  # objects with .encode (SFBoW, sentence-transformers) are encoders
        encode = staticmethod(encoder)

    assert evaluate_sts(WithEncode(), [data]).spearman == pytest.approx(100)


def test_constant_predictions_give_nan_not_an_error() -> None:
    result = evaluate_sts(lambda a, b: np.ones(len(a)), [toy("d", [0, 1, 2])])
    assert math.isnan(result.tasks["d"].subsets["d"].pearson)


@pytest.mark.parametrize(("model", "datasets", "kwargs", "error", "message"), [
    (lambda a, b: [1.0], [toy("d", [0, 1, 2])], {}, ValueError, r"d: got 1 scores for 3 pairs"),
    (lambda a, b: [1.0, np.nan, 2], [toy("d", [0, 1, 2])], {}, ValueError, "NaN"),
    (lambda s: np.ones((1, 2)), [toy("d", [0, 1, 2])], {}, ValueError, r"shape \(1, 2\) for 6 sentences"),
    (lambda s: np.ones((len(s), 2)), [toy("d", [0, 1])], {"similarity": "dot"}, ValueError, "unknown similarity"),
    (lambda a, b: np.arange(len(a)), [toy("d", [0, 1]), toy("d", [1, 0])], {}, ValueError, "named 'd'"),
    (lambda a, b: a, [], {}, ValueError, "empty"),
    (lambda a, b: a, ["sts-dev.csv"], {}, TypeError, "STSDataset or STSTask"),
    (42, [toy("d", [0, 1])], {}, TypeError, "encoder or a pair scorer"),
])
def test_evaluate_sts_bad_input(model, datasets, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        evaluate_sts(model, datasets, **kwargs)


def test_default_model_on_stsb_dev(stsb_dir: Path) -> None:
    import sfbow

    result = evaluate_sts(sfbow.default_model(), [load_stsb(stsb_dir / "sts-dev.csv")], similarity="fuzzy_jaccard")
    assert result.spearman == pytest.approx(76.3, abs=0.5)  # zipf weights; weighting="none" gives 74.0


def test_subsets_of_a_task_need_distinct_names() -> None:
    with pytest.raises(ValueError, match="subsets with the same name"):
        STSTask("t", (toy("x", [1, 2]), toy("x", [3, 4, 5])))
