"""docs/l1ra_core.md shows the committed benchmark result (its examples run in tests/docs/test_snippets.py)."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "l1ra_core.md"


def test_the_performance_table_is_the_committed_benchmark_result():
    results = (DOC.parents[1] / "benchmarks" / "results" / "allocate.md").read_text()
    table = results.split("\n\n", 1)[1].strip()  # the table and its note, below the title
    assert table in DOC.read_text(), "paste benchmarks/results/allocate.md into docs/l1ra_core.md#performance"
