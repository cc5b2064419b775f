"""L1RA under DistributedDataParallel with two real processes (gloo on CPU, loopback only).

The worker (``_ddp_worker.py``) trains on real STS-B pairs, each rank on its own shard of every batch.
Checked here, across the ranks' own output files: the same reallocations at the same steps, the DDP
wrapper rebuilt at each resize, parameters and Adam state equal after several reallocations; and that a
rank failing inside a reallocation, or a replica drifting apart, ends every rank at once. Every run is
bounded by a timeout far below the process groups' own (300 s), so a hang fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed not available", allow_module_level=True)
safetensors_torch = pytest.importorskip("safetensors.torch")

WORKER = Path(__file__).with_name("_ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 240  # one whole two-process run; the MiniLM one takes about 25 s on two busy cores


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def _worker_args(stsb_dir: Path, out: Path, *extra: str) -> list[str]:
    return [str(WORKER), "--stsb", str(stsb_dir / "sts-train.csv"), "--out", str(out), *extra]


def _run_plain(stsb_dir: Path, out: Path, *extra: str, wait_for: tuple[int, ...] = (0, 1)):
    """Start two ranks as plain processes (no launcher to end them) and wait, bounded, for ``wait_for``.

    Returns ``(return codes, stderr texts, seconds)``; processes still running are killed afterwards."""
    init = f"file://{out / 'store'}"
    procs = [
        subprocess.Popen([sys.executable, *_worker_args(stsb_dir, out, *extra), "--rank", str(rank),
                          "--world-size", "2", "--init", init],
                         env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    started = time.monotonic()
    try:
        for rank in wait_for:
            procs[rank].wait(timeout=max(1.0, LIMIT_S - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two-rank job was still running after {LIMIT_S} s: a rank is hanging")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        errors = [proc.communicate(timeout=30)[1] for proc in procs]
    return [proc.returncode for proc in procs], errors, elapsed


def _summaries(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_minilm_under_torchrun_stays_identical_across_ranks_through_reallocations(minilm_path, stsb_dir, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               *_worker_args(stsb_dir, tmp_path, "--model", "minilm", "--steps", "14", "--interval", "3")]
    try:
        done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun was still running after {LIMIT_S} s: a rank is hanging")
    assert done.returncode == 0, done.stderr[-4000:]

    first, second = _summaries(tmp_path)
    assert first["world"] == 2 and first["reallocations"] == [3, 6, 9, 12]
    assert first["resized_at"] == second["resized_at"]  # the same resizes at the same steps ...
    assert len(first["resized_at"]) >= 2 and first["resized_at"][0] < 14 - 1  # ... with training after them
    assert first["ranks"] == second["ranks"]
    final = first["ranks"]["14"]
    assert len(set(final.values())) > 1 and sum(final.values()) == 4 * len(final)  # real reallocation, same budget
    assert first["losses"] != second["losses"]  # each rank trained on its own shard ...

    ours, theirs = (safetensors_torch.load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1))
    assert ours.keys() == theirs.keys() and any(key.endswith(".exp_avg_sq") for key in ours)
    for key in ours:  # ... yet parameters and optimizer state agree to float tolerance
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=1e-7, msg=key)
    assert max(t.numel() for k, t in ours.items() if k.endswith(".gate")) > 4  # some adapter grew


def test_a_rank_failing_during_a_reallocation_fails_every_rank_fast(stsb_dir, tmp_path):
    # Rank 1 raises inside the reallocation at step 6, then stays alive for 600 s (as a process stuck in
    # its own clean-up would): no launcher ends rank 0, only the controller's agreement can.
    codes, errors, elapsed = _run_plain(stsb_dir, tmp_path, "--model", "tiny", "--steps", "9", "--interval", "3",
                                        "--fail-rank", "1", "--fail-step", "6", "--linger", "600", wait_for=(0,))
    assert codes[0] == 1
    assert "PeerReallocationError: rank(s) [1] failed during the reallocation at step 6" in errors[0]
    assert "injected failure on rank 1" in errors[1]
    assert elapsed < LIMIT_S
    assert not (tmp_path / "rank0.json").exists()


def test_replicas_that_drift_apart_are_caught_on_every_rank(stsb_dir, tmp_path):
    codes, errors, _ = _run_plain(stsb_dir, tmp_path, "--model", "tiny", "--steps", "6", "--interval", "3",
                                  "--perturb-rank", "0", "--perturb-step", "2")
    assert codes == [1, 1]
    for text in errors:
        assert "ReplicaMismatchError: the gates of rank(s) [1] differ from rank 0's at step 2" in text


def test_the_distributed_controller_needs_a_process_group(tiny_net):
    from l1ra_core import L1RAConfig
    from l1ra_core.torch import inject_adapters
    from l1ra_core.torch.ddp import DistributedL1RAController

    config = L1RAConfig(target_modules=["up", "down"], initial_rank=2, update_interval=2)
    inject_adapters(tiny_net, config)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedL1RAController(tiny_net, config)
