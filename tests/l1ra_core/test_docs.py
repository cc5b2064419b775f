"""The examples in docs/l1ra_core.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "l1ra_core.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
EXAMPLES = [block for block in BLOCKS if "import l1ra_core" in block]  # the API listing is not runnable


def test_the_doc_has_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_example_runs(code, capsys):
    for framework in ("torch", "jax"):
        if f"import {framework}" in code:
            pytest.importorskip(framework)
    exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})


def test_the_performance_table_is_the_committed_benchmark_result():
    results = (DOC.parents[1] / "benchmarks" / "results" / "allocate.md").read_text()
    table = results.split("\n\n", 1)[1].strip()  # the table and its note, below the title
    assert table in DOC.read_text(), "paste benchmarks/results/allocate.md into docs/l1ra_core.md#performance"
