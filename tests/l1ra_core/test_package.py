"""The public surface of l1ra_core, and that importing it never pulls in a deep-learning framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import l1ra_core

CONTRACT = {
    "allocate", "AllocationPlan", "AdapterPlan", "soft_threshold", "prox_l1", "prox_elastic_net",
    "ReallocationSchedule", "L1RAConfig", "adapter_singular_values", "energy_kept",
    "truncate_adapter", "spectral_budget", "rank_report", "RankReport",
}


def test_public_api():
    assert set(l1ra_core.__all__) >= CONTRACT
    assert all(hasattr(l1ra_core, name) for name in l1ra_core.__all__)


def test_import_does_not_load_torch():
    code = "import sys, l1ra_core; l1ra_core.allocate({'a': [1.0]}, 1); print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout.strip() == "False"
