"""Rewrite the result regions of the docs from ``benchmarks/results/``, so that no figure is pasted by hand.

A region is a pair of markers in ``README.md`` or any ``docs/*.md``::

    <!-- results:NAME -->
    ...generated: do not edit, re-run this script...
    <!-- /results -->

and ``NAME`` is one of :data:`REGIONS`. Everything between the markers is replaced by what the
region's renderer makes of the results files (tables through ``sfbow_common.tables``).

    python benchmarks/render_docs.py           # rewrite the regions in place (after a benchmark run)
    python benchmarks/render_docs.py --check   # rewrite nothing; exit 1 naming the regions that differ

``tests/benchmarks/test_render_docs.py`` runs the check, so the committed docs cannot drift from the
committed results. To add a region: write a function ``(results folder) -> Markdown`` here, decorate
it with ``@region("NAME")``, and put the two markers where the doc wants it.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from sfbow_common.atomic import atomic_write_text
from sfbow_common.tables import markdown_table

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results"

Renderer = Callable[[Path], str]
#: Region name -> renderer of its Markdown from the results folder.
REGIONS: dict[str, Renderer] = {}

MARKER = re.compile(r"<!-- results:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /results -->", re.DOTALL)
START, END = "<!-- results:", "<!-- /results -->"


def region(name: str) -> Callable[[Renderer], Renderer]:
    """Register ``function`` as the renderer of region ``name``."""
    def register(function: Renderer) -> Renderer:
        if name in REGIONS:
            raise ValueError(f"region {name!r} is defined twice")
        REGIONS[name] = function
        return function
    return register


def documents(repository: Path = REPOSITORY) -> list[Path]:
    """The files whose regions are rendered: the README and every page under docs/."""
    return [repository / "README.md", *sorted((repository / "docs").glob("*.md"))]


def render(text: str, results: Path, source: object = "<text>") -> str:
    """``text`` with every region's body replaced by its renderer's output for ``results``."""
    starts, ends = text.count(START), text.count(END)
    matches = list(MARKER.finditer(text))
    if not starts == ends == len(matches):
        raise ValueError(f"{source}: {starts} region starts, {ends} ends and {len(matches)} complete regions; "
                         f"each '<!-- results:NAME -->' line needs its own '{END}'")
    pieces, last = [], 0
    for match in matches:
        name = match["name"]
        if name not in REGIONS:
            line = text.count("\n", 0, match.start()) + 1
            raise ValueError(f"{source}:{line}: unknown region {name!r}; known: {', '.join(sorted(REGIONS))}")
        pieces += [text[last:match.start("body")], REGIONS[name](results).rstrip("\n") + "\n"]
        last = match.end("body")
    return "".join(pieces) + text[last:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a doc differs from its render")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        rendered = render(text, args.results, path)
        if rendered != text:
            stale.append(path)
            if not args.check:
                atomic_write_text(path, rendered)
    verb = "differs from its results; run python benchmarks/render_docs.py" if args.check else "rewritten"
    for path in stale:
        print(f"{path.relative_to(REPOSITORY)}: {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


# -- helpers of the renderers -------------------------------------------------------------------------


def _json(results: Path, name: str) -> Any:
    return json.loads((results / name).read_text(encoding="utf-8"))


def _benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (its report formatters), without running it."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- sfbow: STS (benchmarks/sts.py -> sts.json) and speed (benchmarks/speed.py -> speed.json) ------------


@region("sts")
def sts_table(results: Path) -> str:
    """docs/sts.md: the whole table, as ``sfbow sts`` prints it."""
    from sfbow.sts_benchmark import TABLE_NOTE, TUNING_DATASETS, format_table

    return format_table(_json(results, "sts.json")) + "\n\n" + TABLE_NOTE.format(tuning=", ".join(TUNING_DATASETS))


@region("sts-weighting")
def sts_weighting_tables(results: Path) -> str:
    """docs/sts.md: the weighting ideas on the tuning sets and the speed A/B, as sts_weighting.py prints them."""
    return str(_benchmark("sts_weighting").tables(_json(results, "sts_weighting.json")))


#: The README's rows: method name in sts.json -> label (the default in bold).
README_STS_ROWS = {
    "sfbow": "**sfbow default (pca, K=100)**",
    "sfbow-identity": "sfbow identity (max-pooling, K=50)",
    "sfbow-gaussian": "sfbow gaussian (K=300)",
    "sfbow-kmeans": "sfbow kmeans (K=100)",
    "sfbow-frequent": "sfbow frequent words (K=1000)",
    "sif-pc": "SIF + PC removal (cosine)",
    "dynamax": "DynaMax (fuzzy Jaccard)",
    "average": "average of word vectors (cosine)",
    "sfbow-minilm": "sfbow distilled from all-MiniLM-L6-v2 (`model=\"minilm\"`, K=160)",
    "model2vec-minilm": "model2vec on the same distilled vectors (cosine)",
    "minilm": "all-MiniLM-L6-v2, a transformer, for scale",
}


@region("readme-sts")
def readme_sts_table(results: Path) -> str:
    """README: STS-B dev and test of the main methods."""
    document = _json(results, "sts.json")
    splits = [d for d in ("STS-B dev", "STS-B test") if d in document["datasets"]]
    rows = []
    for name, label in README_STS_ROWS.items():
        method = document["methods"].get(name)
        if method is None:
            continue
        cells = [_one_decimal(method["tasks"][split]["spearman"]) for split in splits]
        rows.append([label, *(f"**{c}**" if label.startswith("**") else c for c in cells)])
    return markdown_table(["method", *splits], rows)


@region("readme-speed")
def readme_speed(results: Path) -> str:
    """README: one sentence of speed figures."""
    speed = _json(results, "speed.json")
    rates = speed["throughput"]
    sfbow = rates["sfbow"]["wall"]
    ratios = {name: sfbow / rate["wall"] for name, rate in rates.items()}
    peers = [f"{ratios[name]:.1f}x {label}" for name, label in (
        ("fse-sif", "fse's SIF `infer`"), ("model2vec", "model2vec's `StaticModel.encode`"),
        ("python", "plain-Python tokenisation alone")) if name in ratios]
    two = speed["threads"]["2"]["wall"] / speed["threads"]["1"]["wall"]
    text = (f"Speed from raw strings to vectors, one thread, {speed['sentences']:,} STS-B sentences (`docs/speed.md`, "
            f"`benchmarks/speed.py`): sfbow {round(sfbow, -3):,.0f} sentences/s in runs alternating with its peers; "
            f"{', '.join(peers)}; {two:.2f}x more with 2 threads.")
    steady = speed.get("steady")
    if steady:
        ratios = {name: steady["sfbow"]["wall"] / rate["wall"] for name, rate in steady.items()}
        text += (f" Back to back (a process that keeps encoding): {round(steady['sfbow']['wall'], -3):,.0f} "
                 f"sentences/s, {ratios['fse-sif']:.1f}x fse and {ratios['model2vec']:.1f}x model2vec.")
    return text


def _speed_table(kind: str) -> Renderer:
    """docs/speed.md: the ``{kind}_table`` of ``benchmarks/speed.py``, the same one its speed.md has."""
    def render_table(results: Path) -> str:
        return getattr(_benchmark("speed"), f"{kind}_table")(_json(results, "speed.json"))
    return render_table


for _kind in ("throughput", "threads", "distilled", "memory", "start"):
    region(f"speed-{_kind}")(_speed_table(_kind))


# -- the LoRA-rank bias study (benchmarks/lora_rank_bias.py report -> lora_rank_bias_quick.md) -------------


def _report_table(results: Path, report: str, caption: str) -> str:
    """The Markdown table that follows the line starting with ``caption`` (or, for a caption starting with
    ``|``, the table whose header starts so) in a report the study wrote."""
    lines = (results / report).read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(caption)), None)
    if start is None:
        raise ValueError(f"{results / report} has no line starting with {caption!r}; re-run its report step")
    if not caption.startswith("|"):
        start = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    stop = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:stop])


for _name, _caption in (("study-quick-measures", "| model "), ("study-quick-per-rank", "LoRA with its learning rate"),
                        ("study-quick-oracle", "L1RA's learned ranks")):
    region(_name)(functools.partial(_report_table, report="lora_rank_bias_quick.md", caption=_caption))


# -- EvoTox on the default model (benchmarks/evotox_smollm2.py -> evotox_smollm2.md) ----------------------

for _name, _caption in (("evotox-methods", "## Best toxicity per method"),
                        ("evotox-comparisons", "## Variants against baselines")):
    region(_name)(functools.partial(_report_table, report="evotox_smollm2.md", caption=_caption))


@region("evotox-head")
def evotox_head(results: Path) -> str:
    """docs/evotox.md: the run's setting and its timing lines, as the benchmark's report opens."""
    lines = (results / "evotox_smollm2.md").read_text(encoding="utf-8").splitlines()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("## "))
    return "\n".join(lines[1:first_table]).strip()


def _one_decimal(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
