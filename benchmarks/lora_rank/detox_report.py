"""The toxicity arm's part of the report: residual toxicity and "toxicity retained" per model, the way bias
retained is reported. Per seed, retained = (t(model) - t(full FT of that seed, its re-run if it diverged)) /
(t(base) - t(full FT)) on the mean toxicity over the fixed hard prompts (or over the search seeds), with a
paired bootstrap over prompts (or seeds); over several seeds, the t interval of :mod:`.stats`. Diverged runs
are left out, as in the bias table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sfbow_common.tables import markdown_table

from .config import Run
from .stats import describe
from .store import Results, diverged
from .toxicity_eval import toxicity_retained

MEASURES = (("hard_prompts", "scores"), ("search", "best"))


def detox_rows(study: Results, results: dict[tuple[int, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model name, one entry per seed of every measured, non-diverged run: the mean toxicity of each
    measure and, where the base and that seed's full fine-tune have it, toxicity retained with its paired
    bootstrap interval."""
    config = study.config
    bootstrap: dict[str, Any] = {"n_resamples": config.bootstrap, "seed": 0}
    base = (results.get((config.seeds[0], "base")) or {}).get("measures", {}).get("detox")
    fulls = {}
    for seed in config.seeds:
        final = study.final(Run("full", seed))
        if final is not None and not diverged(final[1]):
            fulls[seed] = final[1]["measures"]["detox"]
    rows: dict[str, dict[str, Any]] = {}
    for (seed, name), result in sorted(results.items()):
        detox = (result.get("measures") or {}).get("detox")
        if detox is None or diverged(result):
            continue
        entry: dict[str, Any] = {"seed": seed}
        for measure, key in MEASURES:
            if detox[measure] is None:  # the search runs for the first search_study_seeds seeds only
                continue
            values = detox[measure][key]
            entry[f"{measure}_mean"] = float(np.mean(values))
            full = fulls.get(seed)
            if base is not None and base[measure] is not None and full is not None and full[measure] is not None:
                entry[f"{measure}_retained"] = toxicity_retained(values, base[measure][key], full[measure][key],
                                                                 **bootstrap).to_dict()
        rows.setdefault(name, {"seeds": []})["seeds"].append(entry)
    return rows


def _retained(entries: Sequence[dict[str, float]]) -> str:
    if len(entries) == 1:
        e = entries[0]
        return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}] (1 seed, over prompts)"
    return describe([e["value"] for e in entries], 2)


def detox_lines(rows: dict[str, dict[str, Any]], order: Sequence[str]) -> list[str]:
    """The Markdown table of :func:`detox_rows` in ``order`` (names without a row are left out)."""
    shown = [name for name in order if name in rows]
    if not shown:
        return []
    table = []
    for name in shown:
        entries = rows[name]["seeds"]
        cells: list[object] = [name]
        for measure, _ in MEASURES:
            cells += [describe([e[f"{measure}_mean"] for e in entries if f"{measure}_mean" in e], 3),
                      _retained([e[f"{measure}_retained"] for e in entries if f"{measure}_retained" in e])
                      if any(f"{measure}_retained" in e for e in entries) else "-"]
        table.append(cells)
    header = ["model", "toxicity, hard prompts", "retained, hard prompts", "toxicity, search", "retained, search"]
    return ["Toxicity on the evaluation seeds (Jigsaw, the largest of its six attributes; training answers were "
            "selected with the profanity oracle): the mean over the fixed hard prompts (the base's EvoTox prompts) "
            "and over the search seeds (the best toxicity an EvoTox search against the model reached); retained = "
            "(toxicity - full FT's) / (base's - full FT's), one seed with a 95% paired bootstrap interval over "
            "prompts (or search seeds), several with the t interval over seeds.", "", markdown_table(header, table), ""]
