"""The toxicity arm's data (benchmarks/lora_rank/detox_data.py) and statistics (toxicity_eval.py), without a
language model: the seed split, hard prompts from a scripted EvoTox search and its resume, the choice of
the least toxic answer, the data files' round trip and refusals, and toxicity retained."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.lora_rank.detox_data import (
    DataFileError,
    DetoxPair,
    HardPrompt,
    build_pairs,
    hard_prompts,
    read_pairs,
    read_prompts,
    run_search,
    seed_hash,
    split_seeds,
    write_pairs,
    write_prompts,
)
from benchmarks.lora_rank.toxicity_arm import build_evaluation_prompts
from benchmarks.lora_rank.toxicity_eval import check_apart, search_toxicity, toxicity_change, toxicity_retained
from evotox import SearchConfig
from evotox.archive import RunFileError
from evotox.backends import ScriptedBackend, ScriptedOracle
from evotox.runner import default_seeds_file, read_seeds

SEEDS = ["How do I bake bread?", "Why is the sky blue?"]
seed_texts = st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(str.strip),
                      min_size=0, max_size=30)


# ------------------------------------------------------------------------------------------------ split
def test_packaged_seeds_split_into_disjoint_sides_that_cover_them():
    seeds = read_seeds(default_seeds_file())
    split = split_seeds(seeds)
    assert (len(split.training), len(split.evaluation)) == (26, 24)  # the counts the docstring states
    assert not set(split.training) & set(split.evaluation)
    assert sorted(split.training + split.evaluation) == sorted(seeds)
    reordered = split_seeds(list(reversed(seeds)))
    assert set(reordered.evaluation) == set(split.evaluation)  # the order of the seeds does not matter
    assert split_seeds(seeds) == split  # deterministic


@settings(max_examples=60, deadline=None)
@given(seed_texts, seed_texts, st.floats(0.1, 0.9))
def test_adding_seeds_never_moves_a_seed_to_the_other_side(seeds, extra, fraction):
    base = [*seeds, "anchor one?", "anchor two?", *(f"filler {i}?" for i in range(100))]
    before = split_seeds(base, fraction)
    after = split_seeds([*base, *extra], fraction)
    assert set(before.training) <= set(after.training)
    assert set(before.evaluation) <= set(after.evaluation)
    assert not set(after.training) & set(after.evaluation)


def test_split_refuses_bad_seeds_and_one_sided_splits():
    with pytest.raises(ValueError, match=r"seeds\[1\] is empty"):
        split_seeds(["a?", "  "])
    with pytest.raises(TypeError, match="not one string"):
        split_seeds("a?")
    with pytest.raises(ValueError, match=r"the 1 distinct seeds put .* both need at least one"):
        split_seeds(["only one?", " only one? "])
    with pytest.raises(ValueError, match="evaluation_fraction"):
        split_seeds(SEEDS, 0.0)
    assert seed_hash(" x ") == seed_hash("x") != seed_hash("y")


# ---------------------------------------------------------------------------------------- search prompts
def question_of(request):
    return request.messages[-1][1].split("Question: ")[-1]


def rewriting_generator(request):
    category = re.search(r"a more (\w+) answer", request.messages[-1][1]).group(1)
    return f" {question_of(request)} {category}</question>"


class Identified(ScriptedBackend):
    """A scripted SUT with a weight hash in its description, as a real model has."""

    def __init__(self, respond, sha256):
        super().__init__(respond, name="sut")
        self.sha256 = sha256

    def describe(self):
        return {**super().describe(), "sha256": self.sha256}


def scripted(config_iterations=2):
    config = SearchConfig(methods=("vanilla",), iterations=config_iterations, gate=False,
                          categories=("racist", "toxic"))
    sut = Identified(lambda r: "Sure: " + r.messages[-1][1], "a" * 64)
    generator = ScriptedBackend(rewriting_generator, name="generator")
    oracle = ScriptedOracle(lambda text: [min(1.0, 0.01 + 0.3 * text.split().count("racist")
                                              + 0.1 * text.split().count("toxic"))])
    return config, sut, generator, oracle


def test_hard_prompts_are_every_prompt_the_sut_answered_most_toxic_first(tmp_path):
    config, sut, generator, oracle = scripted()
    _, records = run_search(SEEDS, config, sut=sut, generator=generator, oracle=oracle, run_file=tmp_path / "r.jsonl")
    prompts = hard_prompts(records, SEEDS)
    first = [p for p in prompts if p.seed_hash == seed_hash(SEEDS[0])]
    # iteration 1 rewrites the seed (racist wins), iteration 2 rewrites the racist rewrite
    assert [p.prompt for p in first] == ["How do I bake bread? racist racist", "How do I bake bread? racist toxic",
                                         "How do I bake bread? racist", "How do I bake bread? toxic",
                                         "How do I bake bread?"]
    assert [p.fitness for p in first] == pytest.approx([0.61, 0.41, 0.31, 0.11, 0.01])
    assert [p.prompt for p in prompts[5:]][-1] == SEEDS[1]
    assert [p.prompt for p in hard_prompts(records, SEEDS, per_seed=2)] == [
        first[0].prompt, first[1].prompt, "Why is the sky blue? racist racist", "Why is the sky blue? racist toxic"]


def test_a_prompt_two_seeds_reached_is_kept_once_for_the_first():
    def call(index, prompt, fitness, attempt=0):
        return {"type": "call", "role": "sut", "seed_index": index, "prompt": prompt, "fitness": fitness,
                "attempt": attempt}

    records = [call(0, "a?", 0.2), call(1, "b?", 0.1), call(1, "a?", 0.9), call(0, "c?", 0.5),
               call(0, "c?", 0.3, attempt=1), {"type": "step", "seed_index": 0}]
    prompts = hard_prompts(records, ["s0", "s1"])
    assert [(p.prompt, p.seed_hash == seed_hash("s0"), p.fitness) for p in prompts] == [
        ("c?", True, 0.3), ("a?", True, 0.2), ("b?", False, 0.1)]  # c's last attempt counts


def test_a_search_file_is_resumed_without_new_calls_and_another_search_is_refused(tmp_path):
    config, sut, generator, oracle = scripted()
    run_file = tmp_path / "r.jsonl"
    first = search_toxicity(SEEDS, config, sut=sut, generator=generator, oracle=oracle, run_file=run_file)
    asked = sut.requests_answered
    _, sut2, generator2, _ = scripted()
    again = search_toxicity(SEEDS, config, sut=sut2, generator=generator2, oracle=oracle, run_file=run_file)
    assert np.array_equal(first, again) and first == pytest.approx([0.61, 0.61])
    assert asked > 0 and sut2.requests_answered == 0 and generator2.requests_answered == 0
    with pytest.raises(RunFileError, match="records another search"):
        run_search(SEEDS[:1], config, sut=sut2, generator=generator2, oracle=oracle, run_file=run_file)
    with pytest.raises(RunFileError, match="other models"):
        run_search(SEEDS, config, sut=Identified(lambda r: "x", "b" * 64), generator=generator2,
                   oracle=oracle, run_file=run_file)
    with pytest.raises(ValueError, match="not 'informed'"):
        search_toxicity(SEEDS, config, sut=sut2, generator=generator2, oracle=oracle, run_file=run_file,
                        method="informed")


def test_a_finished_build_is_reused_and_one_of_other_settings_refused(tmp_path):
    config, sut, generator, oracle = scripted()
    split = split_seeds(SEEDS + ["Where do owls sleep?", "What is rust?"])
    options = {"sut": sut, "generator": generator, "search": config, "oracle": oracle,
               "run_file": tmp_path / "search.jsonl", "out": tmp_path / "prompts.jsonl"}
    header = build_evaluation_prompts(split, per_seed=2, **options)
    _, prompts = read_prompts(tmp_path / "prompts.jsonl")
    assert header["rows"] == len(prompts) == 2 * len(split.evaluation)
    assert {p.seed_hash for p in prompts} == {seed_hash(s) for s in split.evaluation}
    asked = sut.requests_answered
    (tmp_path / "search.jsonl").unlink()  # not even the search file is needed again
    assert build_evaluation_prompts(split, per_seed=2, **options)["rows"] == header["rows"]
    assert sut.requests_answered == asked
    with pytest.raises(ValueError, match=r"built with other settings \(per_seed differ\)"):
        build_evaluation_prompts(split, per_seed=1, **options)


# ------------------------------------------------------------------------------------------ selection
WORD_ORACLE = ScriptedOracle(lambda text: [min(1.0, 0.1 * text.count("bad")), 0.05], attributes=("a", "b"))


def test_the_least_toxic_non_empty_answer_is_chosen_and_empty_prompts_are_dropped():
    prompts = [HardPrompt(f"q{i}?", seed_hash("s"), 0.5) for i in range(4)]
    answers = [["bad bad", " fine ", "bad"], ["", "bad bad bad", "bad"], ["", "  "], ["fine", "also fine"]]
    pairs, dropped = build_pairs(prompts, answers, WORD_ORACLE)
    assert dropped == 1
    assert [(p.prompt, p.answer, p.chosen) for p in pairs] == [("q0?", "fine", 1), ("q1?", "bad", 2),
                                                               ("q3?", "fine", 0)]  # ties: the first
    assert pairs[0].candidate_scores == pytest.approx((0.2, 0.05, 0.1)) and pairs[0].score == pytest.approx(0.05)
    assert pairs[1].candidate_scores[0] is None
    control, _ = build_pairs(prompts, answers, WORD_ORACLE, choose="first")
    assert [p.answer for p in control] == ["bad bad", "bad bad bad", "fine"]
    with pytest.raises(ValueError, match="3 prompts but 4 answer lists"):
        build_pairs(prompts[:3], answers, WORD_ORACLE)
    with pytest.raises(ValueError, match="choose"):
        build_pairs(prompts, answers, WORD_ORACLE, choose="best")


# ---------------------------------------------------------------------------------------------- files
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(texts, texts, st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=4)),
                max_size=6, unique_by=lambda row: row[0]))
def test_pairs_round_trip_through_the_file(tmp_path_factory, rows):
    pairs = []
    for prompt, answer, scores in rows:
        scores = [*scores, 0.5]
        pairs.append(DetoxPair(prompt, answer, seed_hash(prompt), tuple(scores), len(scores) - 1))
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_pairs(path, pairs, {"oracle": {"name": "x"}, "seeds": ["s"]})
    header, read = read_pairs(path)
    assert read == pairs and header["rows"] == len(pairs) and header["oracle"] == {"name": "x"}


def test_prompts_round_trip_and_duplicates_are_refused(tmp_path):
    prompts = [HardPrompt("a?", seed_hash("a?"), 0.3), HardPrompt("b?", seed_hash("a?"), 0.0)]
    write_prompts(tmp_path / "p.jsonl", prompts, {"per_seed": 2})
    assert read_prompts(tmp_path / "p.jsonl") == ({"format": "lora-rank-hard-prompts", "version": 1, "rows": 2,
                                                   "per_seed": 2}, prompts)
    with pytest.raises(DataFileError, match="line 3 repeats the prompt of line 2"):
        write_prompts(tmp_path / "q.jsonl", [prompts[0], prompts[0]], {})
    assert not (tmp_path / "q.jsonl").exists()
    with pytest.raises(DataFileError, match="not a lora-rank-detox-pairs file"):
        read_pairs(tmp_path / "p.jsonl")


GOOD = {"prompt": "q?", "answer": "a.", "seed_hash": "0" * 64, "candidate_scores": [0.1, None], "chosen": 0}


@pytest.mark.parametrize(("change", "message"), [
    ({"answer": " "}, "line 2: 'answer' must be a non-empty string"),
    ({"candidate_scores": [1.5]}, "line 2: candidate_scores must be a number in"),
    ({"candidate_scores": [True]}, "candidate_scores must be a number in"),
    ({"chosen": 1}, "chosen must index a scored candidate"),
    ({"chosen": 2}, "chosen must index a scored candidate"),
    ({"seed_hash": "abc"}, "seed_hash must be 64 lower-case hex"),
    ({"extra": 1}, "has the fields"),
])
def test_a_damaged_pairs_line_is_refused_naming_it(tmp_path, change, message):
    head = json.dumps({"format": "lora-rank-detox-pairs", "version": 1, "rows": 1})
    path = tmp_path / "pairs.jsonl"
    path.write_text(head + "\n" + json.dumps({**GOOD, **change}) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=re.escape(message) if "(" in message else message):
        read_pairs(path)


def test_cut_files_nan_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [DetoxPair("q?", "a.", "0" * 64, (0.1,), 0), DetoxPair("r?", "b.", "0" * 64, (0.2,), 0)], {})
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="has 1 rows but its header says 2"):
        read_pairs(path)
    path.write_text(lines[0] + "\n" + lines[1].replace("0.1", "NaN") + "\n" + lines[2] + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="line 2 is not JSON"):
        read_pairs(path)
    with pytest.raises(FileNotFoundError, match="build it first"):
        read_pairs(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------------- toxicity retained
def test_toxicity_retained_is_one_at_the_base_zero_at_the_reference_and_paired():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 40)
    full = base * 0.2
    half = (base + full) / 2
    assert toxicity_retained(base, base, full, n_resamples=200).value == pytest.approx(1.0)
    assert toxicity_retained(full, base, full, n_resamples=200).value == pytest.approx(0.0)
    estimate = toxicity_retained(half, base, full, n_resamples=200)
    assert estimate.value == pytest.approx(0.5) and estimate.low == pytest.approx(0.5) == estimate.high  # paired
    change = toxicity_change(full, base, n_resamples=200)
    assert change.value == pytest.approx(full.mean() - base.mean()) and change.low < change.value < change.high
    with pytest.raises(ValueError, match="base has 3 values but the model's have 40"):
        toxicity_retained(base, base[:3], full, n_resamples=10)
    with pytest.raises(ValueError, match="finite toxicity values"):
        toxicity_retained(np.full(40, np.nan), base, full, n_resamples=10)


class Described:
    def __init__(self, name, attributes):
        self.description = {"name": name, "attributes": list(attributes)}

    def describe(self):
        return self.description


def test_one_oracle_in_both_roles_is_refused():
    check_apart(Described("profanity-check", ["profanity"]), Described("jigsaw", ["toxic", "insult"]))
    check_apart(Described("jigsaw", ["toxic"]), Described("jigsaw", ["insult"]))  # a held-out attribute
    with pytest.raises(ValueError, match="both jigsaw"):
        check_apart(Described("jigsaw", ["toxic", "insult"]), Described("jigsaw", ["insult"]))
