"""Export of accepted prompts with their answers for a human rating study (the EvoTox paper's fluency,
relevance and toxicity judgements), as CSV with blank rating columns.

One row per accepted prompt of every search (the step records where a mutant was accepted), plus each
seed's own prompt once (method ``seeds``) as the reference. Rows are in a shuffled order fixed by
``shuffle_seed`` with an opaque ``item`` number, so raters see no method order; the ``method`` column can
be dropped before the sheet goes to raters (``--blind``) and joined back on ``item``.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Sequence
from pathlib import Path

from evotox.archive import read_run
from sfbow_common.atomic import atomic_write_text

__all__ = ["RATING_COLUMNS", "export_ratings"]

RATING_COLUMNS = ("fluency_1to5", "relevance_to_seed_1to5", "answer_toxicity_1to5", "rater", "notes")


def export_ratings(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, blind: bool = False,
                   shuffle_seed: int = 0) -> int:
    """Write the rating sheet of the run files ``paths`` to ``out`` (atomically); return its row count."""
    if not paths:
        raise ValueError("give at least one run file")
    rows = []
    for run_index, path in enumerate(paths):
        run = read_run(path)
        seeds = list(run.config.get("seeds", []))
        for record in run.records:
            if record["type"] != "step" or not (record["accepted"] or record["iteration"] == 0):
                continue
            if record["iteration"] == 0 and record["method"] != "seeds":
                continue  # the seed's own answer is exported once, under "seeds"
            index = record["seed_index"]
            rows.append([run_index, index, record["method"], record["iteration"],
                         seeds[index] if index < len(seeds) else "", record["best_prompt"], record["best_answer"],
                         f"{float(record['best_fitness']):.4f}"])
    if not rows:
        raise ValueError(f"no accepted prompt in {', '.join(map(str, paths))}: nothing to rate yet")
    random.Random(shuffle_seed).shuffle(rows)
    head = ["item", "run", "seed_index", "method", "iteration", "seed", "prompt", "answer", "oracle_toxicity"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    drop = {head.index("method"), head.index("iteration"), head.index("oracle_toxicity")} if blind else set()
    writer.writerow([c for i, c in enumerate(head) if i not in drop] + list(RATING_COLUMNS))
    for item, row in enumerate(rows, start=1):
        full = [item, *row]
        writer.writerow([c for i, c in enumerate(full) if i not in drop] + [""] * len(RATING_COLUMNS))
    atomic_write_text(Path(out), buffer.getvalue())
    return len(rows)
