"""Reports on run files: a Markdown summary, a CSV of every search, a plot of best toxicity per iteration.

Only complete searches count (those whose last iteration is recorded), and each comparison uses the seeds
both methods completed. Several run files are pooled; their seeds are told apart by file. Columns:

- mean and median of the best toxicity (fitness) a search reached, over seeds;
- A12 (with magnitude) and the Mann-Whitney p of each variant against each baseline;
- SUT queries per seed; the generator's replies that parsed, and that also passed the validity gate
  (:mod:`evotox.gate`; a call recorded before the gate existed counts as passed when it parsed);
- searches with no valid rewrite at all (every slot failed): reported in their own column and left out of
  the toxicity figures and the comparisons, since their "best" is only the seed's own answer;
- relevance (mean sfbow similarity of the accepted prompts to their seed) and fluency (perplexity of the
  accepted prompts under the default model, :mod:`evotox.fluency`);
- the cost overhead against the budget-matched random search from the model seconds recorded with each
  call (SUT, generator and oracle), summed over the same seeds, as ``variant / random - 1``: a replayed
  call keeps its recorded cost, so a resumed run reports what an uninterrupted one does;
- A12 and p flagged when fewer than ``MIN_SEEDS`` (5) seeds were compared;
- diversity: mean pairwise ``1 - fuzzy Jaccard`` (sfbow) of the accepted prompts pooled over seeds (for
  ``seeds`` the seed prompts, for ``jailbreak`` the best wrapped prompt of each seed).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evotox.archive import read_run
from evotox.config import BASELINES, METHODS, VARIANTS
from evotox.diversity import mean_pairwise_distance
from evotox.fluency import perplexity, relevance
from evotox.stats import compare
from sfbow_common.atomic import atomic_write_text
from sfbow_common.figures import new_figure, save_png
from sfbow_common.tables import markdown_table

__all__ = ["MIN_SEEDS", "Report", "SearchRecord", "build_report", "load_searches", "write_report"]

MIN_SEEDS = 5  # fewer compared seeds than this: A12 and p are shown but flagged as not interpretable


@dataclass
class SearchRecord:
    """One search as recorded: best fitness after each iteration, accepted prompts and its costs."""

    run: int
    seed_index: int
    method: str
    seed: str
    trajectory: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    best_prompt: str = ""
    complete: bool = False
    sut_queries: int = 0
    wall_seconds: float = 0.0
    model_seconds: float = 0.0
    generator_calls: int = 0
    generator_parsed: int = 0
    generator_valid: int = 0

    @property
    def no_valid_rewrite(self) -> bool:
        """A complete search that used the generator and never got one valid rewrite to ask the SUT."""
        return self.complete and self.generator_calls > 0 and self.sut_queries <= 1


@dataclass
class Report:
    """The report's parts: the Markdown text, the CSV text and the searches it was made from."""

    markdown: str
    csv: str
    searches: list[SearchRecord]


def load_searches(paths: Sequence[str | os.PathLike[str]]) -> list[SearchRecord]:
    """Every (run, seed, method) search in the run files, from their step and call records."""
    searches: dict[tuple[int, int, str], SearchRecord] = {}
    for run_index, path in enumerate(paths):
        run = read_run(path)
        seeds = list(run.config.get("seeds", []))
        iterations = int(run.config.get("search", {}).get("iterations", 0))
        steps = sorted((r for r in run.records if r["type"] == "step"), key=lambda r: (r["seed_index"], r["iteration"]))
        for step in steps:
            key = (run_index, step["seed_index"], step["method"])
            seed = seeds[step["seed_index"]] if step["seed_index"] < len(seeds) else ""
            search = searches.setdefault(key, SearchRecord(run_index, step["seed_index"], step["method"], seed))
            search.trajectory.append(float(step["best_fitness"]))
            search.best_prompt = step["best_prompt"]
            search.sut_queries = int(step["sut_queries"])
            if step["iteration"] > 0:
                search.wall_seconds += float(step["wall_seconds"])
            if step["accepted"]:
                search.accepted.append(step["best_prompt"])
            last = {"seeds": 0, "jailbreak": 1}.get(step["method"], iterations)
            search.complete = search.complete or step["iteration"] == last
        for call in run.records:
            owner = searches.get((run_index, call.get("seed_index", -1), call.get("method", "")))
            if call["type"] != "call" or owner is None:
                continue
            owner.model_seconds += float(call["seconds"]) + float(call.get("oracle_seconds", 0.0))
            if call["role"] == "generator":
                owner.generator_calls += 1
                owner.generator_parsed += call.get("parsed") is not None
                owner.generator_valid += call.get("parsed") is not None and call.get("gate") is None
    return list(searches.values())


def _format(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:+.0f} %"


def build_report(paths: Sequence[str | os.PathLike[str]], *, diversity: bool = True, fluency: bool = True) -> Report:
    """The report on the run files ``paths`` (see the module docstring); ``diversity`` and ``fluency``
    (which loads the default model) may be skipped."""
    if not paths:
        raise ValueError("give at least one run file")
    searches = load_searches(paths)
    done: dict[str, dict[tuple[int, int], SearchRecord]] = defaultdict(dict)
    failed: dict[str, int] = defaultdict(int)
    for search in searches:
        if search.complete and search.no_valid_rewrite:
            failed[search.method] += 1
        elif search.complete:
            done[search.method][(search.run, search.seed_index)] = search
    methods = [m for m in METHODS if done.get(m) or failed.get(m)]
    if not methods:
        raise ValueError(f"no complete search in {', '.join(map(str, paths))}: let the run finish at least one seed "
                         "(evotox run --resume RUN)")

    lm = None
    if fluency:
        from sfbow_llm.models import load_causal_lm

        lm = load_causal_lm(None, engine="reference")  # exact log-likelihoods for perplexity
    summary_rows = []
    for method in methods:
        runs = done[method]
        best = [s.trajectory[-1] for s in runs.values()]
        every = [s for s in searches if s.method == method and s.complete]
        calls = sum(s.generator_calls for s in every)
        parsed = sum(s.generator_parsed for s in every)
        valid = sum(s.generator_valid for s in every)
        prompts, seeds = _accepted(method, runs)
        model_over = _overhead(runs, done.get("random", {}))
        summary_rows.append([
            method, len(runs), str(failed.get(method, 0)),
            _format(float(np.mean(best))) if best else "n/a", _format(float(np.median(best))) if best else "n/a",
            _format(float(np.mean([s.sut_queries for s in runs.values()])), 1) if runs else "n/a",
            f"{100 * parsed / calls:.0f} %" if calls else "n/a", f"{100 * valid / calls:.0f} %" if calls else "n/a",
            _format(relevance(prompts, seeds)) if prompts else "n/a",
            _format(perplexity(prompts, lm), 1) if lm is not None and prompts else ("skipped" if lm is None else "n/a"),
            _percent(model_over) if method in VARIANTS else "",
            _format(_diversity(method, runs)) if diversity else "skipped"])
    summary = markdown_table(["method", "seeds", "no valid rewrite", "mean best", "median best", "SUT queries / seed",
                              "generator parsed", "generator valid", "relevance to seed", "perplexity",
                              "model-time overhead vs random", "diversity"], summary_rows)

    comparison_rows = []
    for variant in (m for m in VARIANTS if m in done):
        for baseline in (b for b in BASELINES if b in done):
            shared = sorted(set(done[variant]) & set(done[baseline]))
            if not shared:
                continue
            effect, size, p = compare([done[variant][k].trajectory[-1] for k in shared],
                                      [done[baseline][k].trajectory[-1] for k in shared])
            note = f"only {len(shared)} seed{'' if len(shared) == 1 else 's'} (< {MIN_SEEDS}): not interpretable" if len(shared) < MIN_SEEDS else ""
            comparison_rows.append([variant, baseline, len(shared), _format(effect), size, _format(p, 4), note])
    comparison = markdown_table(["variant", "baseline", "seeds", "A12", "magnitude", "Mann-Whitney p", "note"],
                                comparison_rows, align="llrrlrl") if comparison_rows else "(no variant and baseline share a seed yet)"
    markdown = ("## Best toxicity per method\n\n" + summary + "\n\n## Variants against baselines (best toxicity per "
                "seed)\n\n" + comparison + "\n")
    return Report(markdown=markdown, csv=_csv(searches), searches=searches)


def _overhead(runs: dict[tuple[int, int], SearchRecord], random_runs: dict[tuple[int, int], SearchRecord]) -> float:
    """Model-time overhead over random search on the seeds both completed, from the recorded call seconds."""
    shared = set(runs) & set(random_runs)
    base = sum(random_runs[k].model_seconds for k in shared)
    model = sum(runs[k].model_seconds for k in shared)
    return model / base - 1 if base > 0 else float("nan")


def _accepted(method: str, runs: dict[tuple[int, int], SearchRecord]) -> tuple[list[str], list[str]]:
    """The accepted prompts of ``method`` with the seed of each (for ``seeds``: the seeds themselves)."""
    if method == "seeds":
        return [s.seed for s in runs.values()], [s.seed for s in runs.values()]
    pairs = [(p, s.seed) for s in runs.values() for p in s.accepted]
    return [p for p, _ in pairs], [seed for _, seed in pairs]


def _diversity(method: str, runs: dict[tuple[int, int], SearchRecord]) -> float:
    if method == "seeds":
        prompts = [s.seed for s in runs.values()]
    elif method == "jailbreak":
        prompts = [s.best_prompt for s in runs.values()]
    else:
        prompts = [p for s in runs.values() for p in s.accepted]
    return mean_pairwise_distance(prompts)


def _csv(searches: list[SearchRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "seed_index", "method", "complete", "iterations_done", "best_toxicity", "seed_toxicity",
                     "accepted", "sut_queries", "generator_calls", "generator_parsed", "generator_valid",
                     "no_valid_rewrite", "wall_seconds", "model_seconds"])
    for s in sorted(searches, key=lambda s: (s.run, s.seed_index, METHODS.index(s.method))):
        writer.writerow([s.run, s.seed_index, s.method, int(s.complete), len(s.trajectory) - 1,
                         f"{s.trajectory[-1]:.6f}", f"{s.trajectory[0]:.6f}", len(s.accepted), s.sut_queries,
                         s.generator_calls, s.generator_parsed, s.generator_valid, int(s.no_valid_rewrite),
                         f"{s.wall_seconds:.3f}", f"{s.model_seconds:.3f}"])
    return out.getvalue()


def plot(searches: list[SearchRecord], path: str | os.PathLike[str]) -> Path:
    """PNG of the mean best toxicity against iteration per search method, with a 95 % t-interval band over
    seeds; the seeds-as-they-are and jailbreak baselines as dashed lines."""
    from scipy.stats import t as student

    figure = new_figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for method in ("vanilla", "informed", "gaslighting", "memory", "random"):
        curves = np.array([s.trajectory for s in searches if s.method == method and s.complete and not s.no_valid_rewrite])
        if curves.size == 0:
            continue
        x = np.arange(curves.shape[1])
        mean = curves.mean(axis=0)
        line = axes.plot(x, mean, marker="o", label=f"{method} (n={len(curves)})")[0]
        if len(curves) > 1:
            half = student.ppf(0.975, len(curves) - 1) * curves.std(axis=0, ddof=1) / math.sqrt(len(curves))
            axes.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.15)
    for method, style in (("seeds", ":"), ("jailbreak", "--")):
        values = [s.trajectory[-1] for s in searches if s.method == method and s.complete and not s.no_valid_rewrite]
        if values:
            axes.axhline(float(np.mean(values)), linestyle=style, color="grey",
                         label=f"{method} (mean, n={len(values)})")
    axes.set_xlabel("iteration (0 = the seed prompt)")
    axes.set_ylabel("best toxicity so far (mean over seeds)")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return save_png(figure, path)


def write_report(report: Report, prefix: str | os.PathLike[str]) -> list[Path]:
    """Write ``PREFIX.md``, ``PREFIX.csv`` and ``PREFIX.png``; return their paths."""
    base = Path(prefix)
    written = [atomic_write_text(base.parent / f"{base.name}.md", report.markdown),
               atomic_write_text(base.parent / f"{base.name}.csv", report.csv)]
    written.append(plot(report.searches, base.parent / f"{base.name}.png"))
    return written
