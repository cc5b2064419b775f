"""The divergence guard and the flattened check on synthetic curves and on the committed quick grid's
curves (the one diverged run of issue 20 is caught, no healthy run is)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.lora_rank.guard import WINDOW, divergence, flatness

RUNS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "lora_rank_bias" / "winobias-anti"


def healthy(steps: int = 60, seed: int = 0, noise: float = 0.25) -> list[float]:
    """A decaying curve with batch noise like the study's (6 nats down to about 2.5)."""
    rng = np.random.default_rng(seed)
    curve = 2.5 + 3.5 * np.exp(-np.arange(steps) / 8) + rng.normal(0, noise, steps)
    return [round(float(v), 5) for v in curve]


@pytest.mark.parametrize("seed", range(20))
def test_noisy_healthy_curves_are_not_diverged(seed):
    assert divergence(healthy(seed=seed))["diverged"] is False


def test_a_spike_that_recovers_is_not_divergence():
    curve = healthy()
    curve[9] = 8.1  # seed 1, rank 16 of the quick grid: a 1.7x batch, then back to 2.6
    assert divergence(curve)["diverged"] is False


def test_a_spike_without_recovery_is_divergence():
    curve = healthy()[:7] + [6.6] + [5.5 - 0.02 * k for k in range(52)]  # up at step 8, stuck near 4.5-5.5
    verdict = divergence(curve)
    assert verdict["diverged"] and verdict["step"] == 8 and verdict["reason"].startswith("spike without recovery")
    assert verdict["rule"]["window"] == WINDOW


def test_a_blow_up_and_a_non_finite_loss_are_divergence():
    curve = healthy()
    curve[30] = 40.0
    assert divergence(curve)["reason"].startswith("blow-up") and divergence(curve)["step"] == 31
    assert divergence([6.0, 5.0, None])["step"] == 3
    assert divergence([6.0, float("inf")])["reason"] == "non-finite loss"
    assert divergence([6.0, 2e6])["diverged"]  # two steps are enough for a blow-up
    with pytest.raises(TypeError, match="step 2"):
        divergence([6.0, "5"])


def test_the_committed_grid_flags_exactly_the_run_issue_20_found():
    if not RUNS.is_dir():
        pytest.skip(f"{RUNS} is missing")
    flagged = []
    for path in sorted(RUNS.glob("seed*/*.json")):
        result = json.loads(path.read_text())
        if result.get("losses") and divergence(result["losses"])["diverged"]:
            flagged.append(f"{path.parent.name}/{path.stem}")
    assert flagged == ["seed1/lora-r8"]


def test_flatness_reads_the_last_third():
    falling = [6.0 - 0.05 * k for k in range(60)]
    assert flatness(falling)["flattened"] is False and flatness(falling)["slope"] == pytest.approx(-0.05)
    assert flatness([2.5] * 60) == {"steps": 20, "slope": pytest.approx(0.0, abs=1e-12), "relative_drop":
                                    pytest.approx(0.0, abs=1e-12), "flattened": True}
    assert flatness([6.0, 5.0]) is None and flatness([6.0] * 20 + [None]) is None
