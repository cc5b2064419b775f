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
    if "import torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})
