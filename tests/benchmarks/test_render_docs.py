"""benchmarks/render_docs.py: the committed docs equal what it renders from the committed results."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "render_docs.py"


@pytest.fixture(scope="module")
def render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_docs_are_what_the_results_render() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_region_in_the_docs_has_a_renderer_and_every_renderer_is_used(render_docs) -> None:
    used = {match["name"] for path in render_docs.documents() for match in
            render_docs.MARKER.finditer(path.read_text(encoding="utf-8"))}
    assert used == set(render_docs.REGIONS)


def test_a_changed_result_changes_the_doc(render_docs, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    text = (REPO / "docs" / "sts.md").read_text(encoding="utf-8")
    sts = (results / "sts.json").read_text(encoding="utf-8")
    (results / "sts.json").write_text(sts.replace('"label": "SFBoW default (pca K=100, zipf weights)"',
                                                  '"label": "renamed"'))
    rendered = render_docs.render(text, results)
    old_row = re.compile(r"\| SFBoW default \(pca K=100, zipf weights\) +\| +67\.5 \| +76\.3 \|")  # any width
    assert old_row.search(text) and not old_row.search(rendered)
    assert re.search(r"\| renamed +\| +67\.5 \| +76\.3 \|", rendered)


def test_only_the_regions_change(render_docs) -> None:
    text = "before\n<!-- results:sts -->\nstale\n<!-- /results -->\nafter\n"
    rendered = render_docs.render(text, REPO / "benchmarks" / "results")
    assert rendered.startswith("before\n<!-- results:sts -->\n| method") and rendered.endswith("<!-- /results -->\nafter\n")
    assert "stale" not in rendered


@pytest.mark.parametrize(("text", "message"), [
    ("<!-- results:nope -->\n<!-- /results -->\n", "unknown region 'nope'"),
    ("<!-- results:sts -->\nno end\n", "1 region starts, 0 ends"),
    ("x\n<!-- /results -->\n", "0 region starts, 1 ends"),
])
def test_bad_markers_are_named(render_docs, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_docs.render(text, REPO / "benchmarks" / "results", "doc.md")
