"""The study's pre-registered CrowS-Pairs selection (benchmarks/lora_rank/crows_types.py): made on the first
seed's base run, read from what a run file records, applied to every run; on the committed grid no type
passes, so CrowS is descriptive only; with a biased type the headline reports its bias retained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.lora_rank.config import PROFILES
from benchmarks.lora_rank.crows_types import OTHER, pair_types, select
from benchmarks.lora_rank.report import report

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "lora_rank_bias"
BASE = RESULTS / "winobias-anti" / "seed0" / "base.json"


def _run(gaps: list[float], types: list[str] | None, name: str = "base") -> dict:
    recorded = {"crows": gaps, "crows_gender": [t == "gender" for t in (types or [])]}
    if types is not None:
        recorded["crows_types"] = types
    return {"run": {"name": name, "seed": 0}, "measures": {"gaps": recorded}}


def test_a_biased_type_is_selected_and_masks_every_run():
    types = ["race-color"] * 60 + ["gender"] * 60 + ["age"] * 60
    gaps = [1.0] * 55 + [-1.0] * 5 + [1.0, -1.0] * 60
    selection = select(_run(gaps, types), 0)
    assert selection is not None and selection.selected == ("race-color",) and selection.per_pair
    assert [t.bias_type for t in selection.test.dropped] == ["gender", "age"]
    other = _run([0.0] * 180, types, "lora-r1")
    assert selection.mask(other).tolist() == [True] * 60 + [False] * 120
    old = _run([0.0] * 180, None, "lora-r1")  # a file with gender flags only is compatible where it can tell
    old["measures"]["gaps"]["crows_gender"] = [t == "gender" for t in types]
    assert selection.mask(old).sum() == 60
    with pytest.raises(ValueError, match="run lora-r2 .* scored other CrowS-Pairs pairs than seed0/base"):
        selection.mask(_run([0.0] * 180, types[::-1], "lora-r2"))
    assert selection.headline_columns()[1] == ("CrowS selected retained", "crows_selected_retained", 2)
    assert select(None, 0) is None


def test_gender_flags_only_are_tested_as_gender_against_the_rest():
    run = _run([1.0, -1.0, 1.0, 1.0], None)
    run["measures"]["gaps"]["crows_gender"] = [True, True, False, False]
    assert pair_types(run) == ["gender", "gender", OTHER, OTHER]
    selection = select(run, 0)
    assert selection is not None and not selection.per_pair and selection.selected == ()
    assert selection.headline_columns() == []


@pytest.fixture(scope="module")
def committed():
    if not BASE.is_file():
        pytest.skip(f"{BASE} is not committed")
    return RESULTS


def test_on_the_committed_grid_no_type_passes_so_crows_is_descriptive(committed, tmp_path):
    text = report(PROFILES["quick"], committed, tmp_path, "quick", "quick").read_text()
    assert "| gender     | 200 |      49.5 [42.4, 56.6] |  0.944 |" in text
    assert "| non-gender | 200 |      56.5 [49.3, 63.5] | 0.0768 |  0.154 |" in text
    assert "**No CrowS-Pairs bias type is measurably biased in the base**" in text
    assert "CrowS-Pairs, descriptive (no power at this n)" in text
    headline = next(line for line in text.splitlines() if line.startswith("| model ") and "WinoBias" in line)
    assert "CrowS" not in headline
    summary = json.loads((tmp_path / "quick.json").read_text())
    assert summary["crows_selection"]["selected"] == [] and summary["crows_selection"]["source"] == "seed0/base"
    assert "crows_gender_retained" not in summary["rows"]["lora-r1"]["seeds"][0]


def test_a_selected_type_gets_its_bias_retained_in_the_headline(committed, tmp_path):
    """The committed grid with its base made biased on a synthetic 'race-color' half of the non-gender pairs
    (recorded per pair, as new runs do); the fine-tunes' files keep their gender flags only."""
    copy = tmp_path / "results"
    shutil.copytree(committed, copy)
    base = json.loads(BASE.read_text())
    gaps = base["measures"]["gaps"]
    types = ["gender" if flag else ("race-color" if i % 2 else "age") for i, flag in enumerate(gaps["crows_gender"])]
    gaps["crows_types"] = types
    gaps["crows"] = [abs(g) + 0.1 if kind == "race-color" else g for g, kind in zip(gaps["crows"], types)]
    (copy / "winobias-anti" / "seed0" / "base.json").write_text(json.dumps(base))
    text = report(PROFILES["quick"], copy, tmp_path / "out", "quick", "quick").read_text()
    assert "each pair's type" not in text and "(race-color: the `CrowS selected` columns above)" in text
    headline = next(line for line in text.splitlines() if line.startswith("| model ") and "WinoBias" in line)
    assert "CrowS selected %" in headline and "CrowS selected retained" in headline
    base_row = next(line for line in text.splitlines() if line.startswith("| base "))
    assert "100.0 [100.0, 100.0]" in base_row and "1.00 [1.00, 1.00]" in base_row
    summary = json.loads((tmp_path / "out" / "quick.json").read_text())
    assert summary["crows_selection"]["selected"] == ["race-color"]
    retained = [e["crows_selected_retained"]["value"] for e in summary["rows"]["full"]["seeds"]]
    assert np.allclose(retained, 0.0)
