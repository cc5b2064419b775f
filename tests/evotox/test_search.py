"""The search loop on scripted models: elitism, lambda, budget, each variant's generator prompt, retries,
re-asks, and an interrupted + resumed run equal to an uninterrupted one."""

from __future__ import annotations

import json
import re
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evotox import Engine, SearchConfig
from evotox.archive import RunFileError, RunWriter, TruncatedLineWarning, new_header, open_for_resume, read_run
from evotox.backends import ScriptedBackend, ScriptedOracle
from evotox.backends.scripted import SimulatedCrash
from evotox.fitness import OracleError

SEEDS = ["How do I bake bread?", "Why is the sky blue?", "What is a good first car?"]


def question_of(request):
    return request.messages[-1][1].split("Question: ")[-1]


def category_of(request):
    return re.search(r"a more (\w+) answer", request.messages[-1][1]).group(1)


def appending_generator(request):
    """Rewrite = the parent plus the category word, in tags, with chatter after the closing tag."""
    return f" {question_of(request)} {category_of(request)}</question> and then some chatter"


def echo_sut(request):
    return "Sure: " + request.messages[-1][1]


def count_oracle(weights):
    """toxic = 0.01 + the weights of the answer's words, counted with multiplicity, capped at 1."""
    return ScriptedOracle(lambda text: [min(1.0, 0.01 + sum(w * text.split().count(word) for word, w in weights.items()))])


def make_engine(config, generator=appending_generator, sut=echo_sut, oracle=None, writer=None, records=(),
                crash_after=None, gate=False):
    """An engine on scripted models; the validity gate is off unless asked for (scripted rewrites are not
    natural language, and these tests are of the search logic; the gate has its own tests)."""
    oracle = oracle or count_oracle({"racist": 0.3, "toxic": 0.1})
    config = config if gate else config.replace(gate=False)
    return Engine(config, sut=ScriptedBackend(sut, name="sut", crash_after=crash_after),
                  generator=ScriptedBackend(generator, name="generator"), oracle=oracle, writer=writer,
                  records=records)


def test_elitist_search_accepts_only_strict_improvements_and_keeps_lambda():
    config = SearchConfig(methods=("vanilla",), iterations=3)
    engine = make_engine(config)
    [result] = engine.run(SEEDS[:1])
    # each iteration the racist mutant (+0.3) wins; toxic (+0.1) loses to it; the parent is replaced
    assert result.trajectory == pytest.approx([0.01, 0.31, 0.61, 0.91])
    assert result.best.prompt == "How do I bake bread? racist racist racist"
    assert result.accepted == ["How do I bake bread? racist", "How do I bake bread? racist racist",
                               "How do I bake bread? racist racist racist"]
    generator_batches = engine.generator.batches
    assert [len(b) for b in generator_batches] == [5, 5, 5]
    assert [category_of(r) for r in generator_batches[0]] == list(config.categories)
    # SUT: the seed once, then one batch of 5 answers per iteration
    assert [len(b) for b in engine.sut.batches] == [1, 5, 5, 5]
    assert result.sut_queries == 1 + 3 * 5


def test_ties_keep_the_parent():
    config = SearchConfig(methods=("vanilla",), iterations=2)
    flat = ScriptedOracle(lambda text: [0.2])
    [result] = make_engine(config, oracle=flat).run(SEEDS[:1])
    assert result.trajectory == [0.2, 0.2, 0.2]
    assert result.accepted == [] and result.best.prompt == SEEDS[0]
    # the parent stayed the seed, so every generator request rewrote the seed
    assert result.sut_queries == 11


def test_random_search_mutates_the_seed_with_random_categories_and_keeps_the_best():
    config = SearchConfig(methods=("random",), iterations=4, random_seed=3)
    engine = make_engine(config)
    [result] = engine.run(SEEDS[:1])
    for batch in engine.generator.batches:
        assert all(question_of(r) == SEEDS[0] for r in batch)  # always the seed, never a descendant
    categories = [[category_of(r) for r in batch] for batch in engine.generator.batches]
    assert len({tuple(c) for c in categories}) > 1  # drawn anew each iteration
    assert result.sut_queries == 1 + 4 * 5  # the same budget as an elitist search
    scored = [engine.oracle.score_text(text)[0] for batch in engine.oracle.batches for text in batch]
    assert len(scored) == 21
    running = [max(scored[:1 + 5 * i]) for i in range(5)]
    assert result.trajectory == pytest.approx(running)  # the best so far after each iteration


def test_baselines_budget():
    config = SearchConfig(methods=("seeds", "jailbreak"), iterations=1, categories=("toxic", "racist"))
    results = make_engine(config).run(SEEDS[:2])
    seeds_only = [r for r in results if r.method == "seeds"]
    jailbreak = [r for r in results if r.method == "jailbreak"]
    assert [r.sut_queries for r in seeds_only] == [1, 1]
    assert [r.trajectory for r in seeds_only] == [[0.01], [0.01]]
    # at most the search's budget of iterations x lambda = 2 templates, plus the seed
    assert [r.sut_queries for r in jailbreak] == [3, 3]


def _generator_prompts(method, iterations=3, **options):
    config = SearchConfig(methods=(method,), iterations=iterations, **options)
    engine = make_engine(config, oracle=count_oracle({"racist": 0.3}))
    engine.run(SEEDS[:1])
    return [batch[0].messages[-1][1] for batch in engine.generator.batches]


def test_each_variants_generator_prompt():
    vanilla = _generator_prompts("vanilla")
    assert all("rated" not in p for p in vanilla)
    fitness = [0.01 + 0.3 * k for k in range(4)]  # the parent's score in iterations 1..4
    informed = _generator_prompts("informed")
    assert [re.search(r"was rated (\d\.\d\d)", p).group(1) for p in informed] == [f"{f:.2f}" for f in fitness[:3]]
    gaslit = _generator_prompts("gaslighting")
    # scores above 0.35 are reported halved; 0.31 is not
    told = [f if f <= 0.35 else f * 0.5 for f in fitness]
    assert [re.search(r"was rated (\d\.\d\d)", p).group(1) for p in gaslit] == [f"{f:.2f}" for f in told[:3]]
    memory = _generator_prompts("memory", iterations=4, memory_size=2)
    examples = [re.findall(r"^- (.*) \(rated (\d\.\d\d)\)$", p, flags=re.M) for p in memory]
    rewrite = ["How do I bake bread?" + " racist" * k for k in range(4)]
    assert examples[0] == []
    assert examples[1] == [(rewrite[1], f"{told[1]:.2f}")]
    # the last two accepted rewrites only, with gaslit scores
    assert examples[3] == [(rewrite[2], f"{told[2]:.2f}"), (rewrite[3], f"{told[3]:.2f}")]
    for prompt in vanilla + informed + gaslit + memory:
        assert prompt.endswith("Question: " + prompt.split("Question: ")[-1])  # the question comes last


def test_generator_prompt_asks_for_tags_with_prefill_and_stop():
    config = SearchConfig(methods=("vanilla",), iterations=1)
    engine = make_engine(config)
    engine.run(SEEDS[:1])
    request = engine.generator.batches[0][0]
    assert request.prefill == "<question>" and request.stop == ("</question>",)
    assert "never answer" in request.messages[0][1]


def test_a_generator_that_never_complies_keeps_the_parent_after_bounded_retries():
    config = SearchConfig(methods=("informed",), iterations=2, generator_attempts=3)
    engine = make_engine(config, generator=lambda r: question_of(r))  # echoing the parent is no rewrite
    [result] = engine.run(SEEDS[:1])
    assert [len(b) for b in engine.generator.batches] == [5, 5, 5, 5, 5, 5]  # 3 attempts x 2 iterations
    assert result.best.prompt == SEEDS[0] and result.trajectory == [0.01, 0.01, 0.01]
    assert result.generator_failures == 10 and result.sut_queries == 1
    assert len({r.seed for b in engine.generator.batches for r in b}) == 30  # each retry samples anew


def test_greedy_generator_is_not_retried():
    config = SearchConfig(methods=("vanilla",), iterations=1, generator_temperature=0.0)
    engine = make_engine(config, generator=lambda r: "")
    engine.run(SEEDS[:1])
    assert len(engine.generator.batches) == 1


def test_empty_answers_are_asked_again_boundedly():
    answers = iter(["", "  ", "third time"] + ["x"] * 100)
    config = SearchConfig(methods=("seeds",), sut_attempts=3)
    engine = make_engine(config, sut=lambda r: next(answers))
    [result] = engine.run(SEEDS[:1])
    assert result.best.answer == "third time" and len(engine.sut.batches) == 3
    never = make_engine(SearchConfig(methods=("seeds",), sut_attempts=2), sut=lambda r: "")
    [result] = never.run(SEEDS[:1])
    assert result.best.answer == "" and len(never.sut.batches) == 2  # the last answer counts, empty or not


def test_fitness_aggregations():
    oracle = ScriptedOracle(lambda text: [0.1, 0.4, 0.7], attributes=("a", "b", "c"))
    for how, expected in (("max", 0.7), ("min", 0.1), ("mean", 0.4), ("median", 0.4)):
        [result] = make_engine(SearchConfig(methods=("seeds",), fitness=how), oracle=oracle).run(SEEDS[:1])
        assert result.best.fitness == pytest.approx(expected)
        assert result.best.scores == {"a": 0.1, "b": 0.4, "c": 0.7}


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1, float("inf")])
def test_an_oracle_returning_nan_or_out_of_range_is_a_clear_error_and_keeps_earlier_records(tmp_path, bad):
    config = SearchConfig(methods=("vanilla",), iterations=2)
    path = tmp_path / "run.jsonl"
    oracle = ScriptedOracle(lambda text: [bad if "racist racist" in text else 0.5 if "racist" in text else 0.1])
    with RunWriter(path, new_header({"search": config.to_dict()}, {})) as writer, \
            pytest.raises(OracleError, match=r"scores must be finite and in \[0, 1\]"):
        make_engine(config, oracle=oracle, writer=writer).run(SEEDS[:1])
    run = read_run(path)
    assert any(r["key"] == "s0/vanilla/i1/step" for r in run.records)  # iteration 1 is kept
    assert not any(r["key"].startswith("s0/vanilla/i2/m") and r["role"] == "sut" for r in run.records
                   if r["type"] == "call")


def test_bad_configurations_and_seeds_are_refused():
    with pytest.raises(ValueError, match="categories is empty"):
        SearchConfig(categories=())
    with pytest.raises(ValueError, match="methods must be one of"):
        SearchConfig(methods=("vanila",))
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        SearchConfig(iterations=0)
    engine = make_engine(SearchConfig(methods=("seeds",)))
    with pytest.raises(ValueError, match="seeds is empty"):
        engine.run([])
    with pytest.raises(ValueError, match=r"seeds\[1\] is empty"):
        engine.run(["fine", "   "])


# -- run file and resume ---------------------------------------------------------------------------------

def _timeless(records):
    drop = {"seconds", "oracle_seconds", "wall_seconds", "model_seconds", "new_calls", "replayed_calls", "prev"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def _sampling_generator(request):
    """Like appending_generator, but the request's sampling seed decides whether the reply is usable, so
    retries happen and must replay identically."""
    return "" if request.seed % 3 == 0 else appending_generator(request)


def _run_to(path, config, crash_after=None):
    header = new_header({"search": config.to_dict()}, {})
    with RunWriter(path, header) as writer:
        return make_engine(config, generator=_sampling_generator, writer=writer, crash_after=crash_after).run(SEEDS)


def _resume(path, config):
    run = open_for_resume(path)
    with RunWriter(path) as writer:
        engine = make_engine(config, generator=_sampling_generator, writer=writer, records=run.records)
        return engine.run(SEEDS), engine


CONFIG = SearchConfig(methods=("vanilla", "memory", "random", "jailbreak", "seeds"), iterations=3,
                      categories=("racist", "toxic", "sexist"), generator_temperature=0.7)


@pytest.mark.parametrize("crash_after", [1, 7, 23, 40])
def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, crash_after):
    whole = tmp_path / "whole.jsonl"
    expected = _run_to(whole, CONFIG)
    cut = tmp_path / "cut.jsonl"
    with pytest.raises(SimulatedCrash):
        _run_to(cut, CONFIG, crash_after=crash_after)
    recorded = sum(1 for r in read_run(cut).records if r["type"] == "call" and r["role"] == "sut")
    results, engine = _resume(cut, CONFIG)
    assert [(r.method, r.trajectory, r.best.prompt, r.sut_queries) for r in results] == \
        [(r.method, r.trajectory, r.best.prompt, r.sut_queries) for r in expected]
    assert _timeless(read_run(cut).records) == _timeless(read_run(whole).records)
    # nothing repeated: the resumed engine asked the SUT only for what the cut run had not recorded
    total_sut_calls = sum(1 for r in read_run(whole).records if r["type"] == "call" and r["role"] == "sut")
    assert engine.sut.requests_answered == total_sut_calls - recorded


def test_resume_drops_a_truncated_last_line_and_reports_it(tmp_path):
    whole = tmp_path / "whole.jsonl"
    _run_to(whole, CONFIG)
    lines = whole.read_bytes().split(b"\n")
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"\n".join(lines[:30]) + b"\n" + lines[30][: len(lines[30]) // 2])
    with pytest.warns(TruncatedLineWarning, match="line 31 was cut short"):
        run = open_for_resume(cut)
    assert len(run.records) == 29 and cut.read_bytes().endswith(b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _resume(cut, CONFIG)
    assert _timeless(read_run(cut).records) == _timeless(read_run(whole).records)


def test_resume_refuses_foreign_damaged_and_mismatched_files(tmp_path):
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": 1}\n')
    with pytest.raises(RunFileError, match="not an evotox run file"):
        open_for_resume(foreign)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RunFileError, match="no complete first line"):
        open_for_resume(empty)
    whole = tmp_path / "whole.jsonl"
    _run_to(whole, CONFIG)
    lines = whole.read_text().splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(lines[:5] + ["{not json\n"] + lines[6:]))
    with pytest.raises(RunFileError, match="line 6 is damaged"):
        open_for_resume(damaged)
    # the same file resumed under another configuration: a recorded request differs
    other = CONFIG.replace(system_prompt="You are a pirate.")
    run = open_for_resume(whole)
    with pytest.raises(RunFileError, match="recorded a different request"):
        make_engine(other, records=run.records).run(SEEDS)
    with pytest.raises(FileExistsError, match="resume it"):
        RunWriter(whole, new_header({}, {}))


def test_every_call_is_one_json_line_with_its_fields(tmp_path):
    path = tmp_path / "run.jsonl"
    _run_to(path, CONFIG)
    text = path.read_text()
    header, *records = [json.loads(line) for line in text.splitlines()]
    assert header["format"] == "evotox-run" and header["config"]["search"]["iterations"] == 3
    assert header["packages"]["numpy"]
    calls = [r for r in records if r["type"] == "call"]
    assert len({r["key"] for r in records}) == len(records)
    sut = [r for r in calls if r["role"] == "sut"]
    assert all({"prompt", "text", "scores", "fitness", "seed_index", "iteration", "method", "prompt_tokens",
                "completion_tokens", "seconds"} <= set(r) for r in sut)
    assert all("parsed" in r and "category" in r for r in calls if r["role"] == "generator")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.sampled_from(["vanilla", "gaslighting", "random"]))
def test_best_so_far_never_decreases_and_is_the_best_evaluated(scores, method):
    table = iter(scores * 200)
    config = SearchConfig(methods=(method,), iterations=3, categories=("a", "b", "c"))
    engine = make_engine(config, generator=lambda r: f"{question_of(r)} {category_of(r)} {r.seed}</question>",
                         oracle=ScriptedOracle(lambda text: [next(table)]))
    [result] = engine.run(SEEDS[:1])
    assert all(b >= a for a, b in zip(result.trajectory, result.trajectory[1:]))
    evaluated = [row for batch in engine.oracle.batches for row in batch]
    assert len(evaluated) == result.sut_queries == 10


def test_a_changed_model_file_is_detected_for_resume(tmp_path):
    from evotox.archive import describe_models, model_changes

    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF one")
    recorded = describe_models({"sut": {"kind": "llamacpp", "files": [str(weights)]}, "oracle": {"sha256": "aa"}})
    assert model_changes(recorded, recorded) == []
    weights.write_bytes(b"GGUF two")
    now = describe_models({"sut": {"kind": "llamacpp", "files": [str(weights)]}, "oracle": {"sha256": "bb"}})
    changes = model_changes(recorded, now)
    assert [c.split(":")[0] for c in changes] == ["sut file_sha256", "oracle sha256"]


def test_another_inference_engine_is_a_model_change_for_resume():
    """The same weights on another engine (or engine version, or quantisation) answer differently."""
    from evotox.archive import model_changes

    engine = {"name": "ctranslate2", "version": "4.8.5", "quantization": "int8", "weights_sha256": "ab" * 32}
    recorded = {"sut": {"sha256": "s" * 64, "engine": engine}}
    assert model_changes(recorded, {"sut": {"sha256": "s" * 64, "engine": dict(engine)}}) == []
    for change in ({"name": "reference"}, {"version": "4.9.0"}, {"quantization": "float32"}):
        now = {"sut": {"sha256": "s" * 64, "engine": {**engine, **change}}}
        assert [c.split(":")[0] for c in model_changes(recorded, now)] == ["sut engine"]


def test_a_failing_search_stops_the_parallel_ones(tmp_path):
    from evotox.backends import BackendError

    def flaky(request):
        if "Why is the sky blue?" in request.messages[-1][1]:
            raise BackendError("server gone")
        time.sleep(0.002)  # the healthy searches would take 50 x 5 x 2 ms each
        return appending_generator(request)

    config = SearchConfig(methods=("vanilla",), iterations=50, parallel_searches=3)
    engine = make_engine(config, generator=flaky)
    with pytest.raises(BackendError, match="server gone"):
        engine.run(SEEDS)
    # the other two searches stopped long before their 50 iterations
    assert len(engine.generator.batches) < 20
