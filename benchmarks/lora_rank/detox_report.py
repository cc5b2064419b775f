"""The toxicity arm's part of the report: residual toxicity and "toxicity retained" per model, the way bias
retained is reported. Per seed, retained = (t(model) - t(full FT of that seed)) / (t(base) - t(full FT)) on
the mean toxicity over the fixed hard prompts (or over the search seeds), with a paired bootstrap over
prompts (or seeds); over several seeds, the mean with a t-based 95% interval over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared_utils.tables import markdown_table

from .toxicity_eval import toxicity_retained

MEASURES = (("hard_prompts", "scores", "hard prompts"), ("search", "best", "search"))


def _over_seeds(values: Sequence[float], digits: int = 3) -> str:
    """The mean, and with two seeds or more its t-based 95% interval over seeds."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    from scipy import stats

    mean, half = float(np.mean(values)), float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1)
                                              / np.sqrt(len(values)))
    return f"{mean:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}] (n={len(values)})"


def _retained_cell(entries: Sequence[dict[str, float]]) -> str:
    if not entries:
        return "-"
    if len(entries) == 1:
        e = entries[0]
        return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"
    return _over_seeds([e["value"] for e in entries], 2)


def detox_rows(results: dict[tuple[int, str], dict[str, Any]], first_seed: int, bootstrap: dict[str, Any]
               ) -> dict[str, dict[str, Any]]:
    """Per model name, per seed: mean toxicity of each measure and, where the base and that seed's full
    fine-tune are finished, toxicity retained with its paired bootstrap interval."""
    rows: dict[str, dict[str, Any]] = {}
    base = results.get((first_seed, "base"), {}).get("measures", {}).get("detox")
    for (seed, name), result in sorted(results.items()):
        detox = result.get("measures", {}).get("detox")
        if detox is None:
            continue
        full = results.get((seed, "full"), {}).get("measures", {}).get("detox")
        entry: dict[str, Any] = {"seed": seed}
        for measure, key, _ in MEASURES:
            if detox[measure] is None:  # the search runs for the first search_study_seeds seeds only
                continue
            values = detox[measure][key]
            entry[f"{measure}_mean"] = float(np.mean(values))
            if base is not None and full is not None and base[measure] is not None and full[measure] is not None:
                entry[f"{measure}_retained"] = toxicity_retained(values, base[measure][key], full[measure][key],
                                                                 **bootstrap).to_dict()
        rows.setdefault(name, {"seeds": []})["seeds"].append(entry)
    return rows


def detox_lines(rows: dict[str, dict[str, Any]], order: Sequence[str]) -> list[str]:
    """The Markdown table of :func:`detox_rows` in ``order`` (names without a row are left out)."""
    shown = [name for name in order if name in rows]
    if not shown:
        return []
    table = []
    for name in shown:
        entries = rows[name]["seeds"]
        cells: list[object] = [name]
        for measure, _, _ in MEASURES:
            means = [e[f"{measure}_mean"] for e in entries if f"{measure}_mean" in e]
            cells += [_over_seeds(means) if means else "-",
                      _retained_cell([e[f"{measure}_retained"] for e in entries if f"{measure}_retained" in e])]
        table.append(cells)
    header = ["model", "toxicity, hard prompts", "retained, hard prompts", "toxicity, search", "retained, search"]
    return ["Toxicity on the evaluation seeds (Jigsaw, the largest of its six attributes; training answers were "
            "selected with the profanity oracle): the mean over the fixed hard prompts (the base's EvoTox prompts) "
            "and over the search seeds (best toxicity an EvoTox search against the model reached); retained = "
            "(toxicity - full FT's) / (base's - full FT's), one seed with a 95% paired bootstrap interval, several "
            "with a t-based 95% interval over seeds.", "", markdown_table(header, table), ""]
