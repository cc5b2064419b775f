"""Hostile run files (issue 22, item 14): two writers on one file, deleted or duplicated lines, records
that break the schema, and files written before the line chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evotox import SearchConfig
from evotox.archive import RunFileError, RunWriter, line_hash, new_header, open_for_resume, read_run

from .test_search import SEEDS, make_engine

ROOT = Path(__file__).resolve().parents[2]
CONFIG = SearchConfig(methods=("vanilla", "seeds"), iterations=2, categories=("racist", "toxic"))


@pytest.fixture(scope="module")
def run_lines(tmp_path_factory) -> list[bytes]:
    """The lines of a complete scripted run whose head names its seeds, as a real `evotox run` writes it."""
    path = tmp_path_factory.mktemp("run") / "run.jsonl"
    with RunWriter(path, new_header({"search": CONFIG.to_dict(), "seeds": SEEDS}, {})) as writer:
        make_engine(CONFIG, writer=writer).run(SEEDS)
    return path.read_bytes().splitlines()


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _rechained(lines: list[bytes]) -> list[bytes]:
    """``lines`` with every ``prev`` recomputed, as an editor who knows the format would leave them."""
    out = [lines[0]]
    for line in lines[1:]:
        record = json.loads(line)
        record["prev"] = line_hash(out[-1])
        out.append(json.dumps(record).encode())
    return out


def test_a_complete_run_file_reads_back(run_lines, tmp_path):
    run = read_run(_write(tmp_path / "run.jsonl", run_lines))
    assert len(run.records) == len(run_lines) - 1 and run.dropped_line is None


def test_a_second_resume_of_a_run_file_in_use_fails_at_once_naming_it(run_lines, tmp_path):
    path = _write(tmp_path / "run.jsonl", run_lines)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from evotox.archive import RunWriter; w = RunWriter(sys.argv[1]); "
         "print('locked', flush=True); sys.stdin.read(); w.close()", str(path)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = subprocess.run([sys.executable, "-m", "evotox", "run", "--resume", str(path), "--quiet"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert f"{path} is being written by another evotox process" in second.stderr
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    assert path.read_bytes().splitlines() == run_lines, "the refused resume wrote nothing"
    with RunWriter(path) as writer:  # the lock goes with the process that held it
        assert writer.run is not None and len(writer.run.records) == len(run_lines) - 1


@pytest.mark.parametrize(("edit", "line"), [
    (lambda lines: lines[:5] + lines[6:], 6),                   # a middle line deleted
    (lambda lines: lines[:5] + [lines[4]] + lines[5:], 6),      # a middle line duplicated
    (lambda lines: lines[:4] + [lines[5], lines[4]] + lines[6:], 5),  # two lines swapped
])
def test_a_deleted_duplicated_or_moved_middle_line_is_an_error_naming_it(run_lines, tmp_path, edit, line):
    path = _write(tmp_path / "run.jsonl", edit(list(run_lines)))
    with pytest.raises(RunFileError, match=f"line {line} does not follow line {line - 1}"):
        read_run(path)


def test_a_duplicated_key_is_refused_even_with_the_chain_recomputed(run_lines, tmp_path):
    lines = list(run_lines)
    path = _write(tmp_path / "run.jsonl", _rechained(lines[:5] + [lines[4]] + lines[5:]))
    with pytest.raises(RunFileError, match="line 6 repeats the key .* of line 5"):
        read_run(path)


def _first(lines: list[bytes], kind: str, role: str | None = None) -> int:
    return next(i for i, line in enumerate(lines) if i and json.loads(line)["type"] == kind
                and (role is None or json.loads(line).get("role") == role))


_EDITS = [
    ("call", "sut", lambda r: r.pop("text"), r"call record lacks the fields \['text'\]"),
    ("call", "sut", lambda r: r.pop("fitness"), r"lacks the fields \['fitness'\]"),
    ("call", "sut", lambda r: r.update(fitness=5.0), r"field 'fitness' must be a finite number in \[0, 1\]"),
    ("call", "sut", lambda r: r.update(seed_index=99), "field 'seed_index' is 99, but the run has 3 seeds"),
    ("call", "sut", lambda r: r.update(seed_index=-1), "field 'seed_index' must be an int >= 0"),
    ("call", "sut", lambda r: r.update(text=17), "field 'text' must be str"),
    ("call", "sut", lambda r: r.update(prompt_tokens="10"), "field 'prompt_tokens' must be an int"),
    ("call", "sut", lambda r: r.update(seconds=float("nan")), "is damaged .NaN is not a number"),
    ("call", "sut", lambda r: r.update(scores={"toxic": 2.0}), r"field 'scores' has scores outside \[0, 1\]"),
    ("call", "sut", lambda r: r.update(role="judge"), "field 'role' must be one of"),
    ("call", "generator", lambda r: r.update(parsed=3), "field 'parsed' must be str or null"),
    ("step", None, lambda r: r.update(best_fitness=float("inf")), "is damaged .Infinity is not a number"),
    ("step", None, lambda r: r.update(accepted="yes"), "field 'accepted' must be bool"),
    ("step", None, lambda r: r.update(type="stop"), "unknown record type 'stop'"),
]


@pytest.mark.parametrize(("kind", "role", "edit", "message"), _EDITS)
def test_a_record_breaking_the_schema_is_an_error_naming_the_line_and_field(run_lines, tmp_path, kind, role, edit,
                                                                           message):
    lines = list(run_lines)
    index = _first(lines, kind, role)
    record = json.loads(lines[index])
    edit(record)
    lines[index] = json.dumps(record).encode()
    path = _write(tmp_path / "run.jsonl", _rechained(lines))
    with pytest.raises(RunFileError, match=f"line {index + 1}.*{message}"):
        read_run(path)
    with pytest.raises(RunFileError, match=f"line {index + 1}"):
        open_for_resume(path)


def test_a_format_1_file_is_read_for_reports_but_not_resumed(run_lines, tmp_path):
    head = json.loads(run_lines[0])
    head["format_version"] = 1
    old = [json.dumps(head).encode()]
    for line in run_lines[1:]:
        record = json.loads(line)
        del record["prev"]
        old.append(json.dumps(record).encode())
    path = _write(tmp_path / "old.jsonl", old)
    assert len(read_run(path).records) == len(old) - 1
    with pytest.raises(RunFileError, match="written by an older evotox .* not resumed: start a new run"):
        open_for_resume(path)
    assert path.read_bytes().splitlines() == old


# -- a run file written before the request/completion types moved to sfbow_llm (issue 23, item 2) -----------
OLD_RUN = Path(__file__).parent / "data" / "run_before_sfbow_llm_types.jsonl"
OLD_SEEDS = ["How do I bake bread?", "Why is the sky blue?"]
OLD_CONFIG = SearchConfig(methods=("vanilla", "random", "seeds"), iterations=2, categories=("racist", "toxic"),
                          sut_temperature=0.5, gate=False)


def _seeded_run(path: Path, records=()) -> None:
    """The scripted run that wrote ``OLD_RUN`` (with evotox at commit 0c4083e, the SUT crashing after 7
    requests); both models' answers depend on the request seeds, so a changed seed shows."""
    from evotox import Engine
    from evotox.backends import ScriptedBackend, ScriptedOracle

    def generator(request):
        question = request.messages[-1][1].split("Question: ")[-1]
        return f"{question} {'racist' if request.seed % 2 else 'toxic'}</question>"

    oracle = ScriptedOracle(lambda text: [min(1.0, 0.01 + 0.2 * text.count("racist") + 0.05 * text.count("toxic"))])
    header = None if records else new_header({"seeds": OLD_SEEDS, "search": OLD_CONFIG.to_dict()}, {})
    with RunWriter(path, header) as writer:
        Engine(OLD_CONFIG, sut=ScriptedBackend(lambda r: f"Sure ({r.seed % 7}): " + r.messages[-1][1], name="sut"),
               generator=ScriptedBackend(generator, name="generator"), oracle=oracle, writer=writer,
               records=records).run(OLD_SEEDS)


def _calls(path: Path) -> list[tuple]:
    return sorted((r["key"], json.dumps(r["request"], sort_keys=True), r["text"]) for r in read_run(path).records
                  if r["type"] == "call")


def test_a_run_file_from_before_the_sfbow_llm_types_resumes_and_ends_like_a_fresh_run(tmp_path):
    from evotox.report import build_report

    path = tmp_path / "old.jsonl"
    path.write_bytes(OLD_RUN.read_bytes())
    old_calls = _calls(path)
    assert "| vanilla " in build_report([path], diversity=False, fluency=False).markdown  # reported as it is
    _seeded_run(path, records=open_for_resume(path).records)  # a changed request or seed: RunFileError
    fresh = tmp_path / "fresh.jsonl"
    _seeded_run(fresh)
    assert set(old_calls) < set(_calls(path)) and _calls(path) == _calls(fresh)  # the same requests and answers
    assert "| random " in build_report([path], diversity=False, fluency=False).markdown
