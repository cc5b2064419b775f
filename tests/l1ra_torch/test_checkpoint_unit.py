"""Issue 22, items 12 and 13: the training state is checksummed and schema-checked before anything changes,
and a checkpoint (adapters + training state) is one atomic unit that an interrupted save cannot break."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from l1ra_core.adapter_files import json_digest
from l1ra_core.torch import (
    L1RAController,
    latest_checkpoint,
    load_adapters,
    load_training_state,
    save_adapters,
    save_checkpoint,
    save_training_state,
)
from l1ra_core.torch.training_state import TRAINING_STATE_FILE

from .conftest import TinyNet
from .test_checkpoint import _batches, _config, _fresh, _train

ROOT = Path(__file__).resolve().parents[2]


def _trained(steps: int = 4):
    config = _config()
    net, optimizer, controller = _fresh("cpu", config)
    _train(net, optimizer, _batches("cpu", steps))  # reallocates at step 3
    return config, net, optimizer, controller


def _resume_into(directory: Path):
    """A fresh model given the saved adapters, its optimizer and controller, with the training state loaded."""
    torch.manual_seed(0)  # the base model of _fresh
    net = TinyNet()
    config = load_adapters(net, directory)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    controller = L1RAController(net, config, optimizer)
    load_training_state(directory, optimizer, controller)
    return net, optimizer, controller


def _refused(directory: Path, message: str) -> None:
    """Loading ``directory``'s training state fails with ``message`` and leaves optimizer and controller as they were."""
    net = TinyNet()
    config = load_adapters(net, directory)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    controller = L1RAController(net, config, optimizer)
    with pytest.raises(ValueError, match=message):
        load_training_state(directory, optimizer, controller)
    assert not optimizer.state and controller.step_count == 0
    assert [group["lr"] for group in optimizer.param_groups] == [1e-2]


# --- item 12: the training-state JSON checks itself and its schema ------------------------------------------

def test_an_edited_digit_in_lr_is_refused_by_the_checksum(tmp_path):
    config, net, optimizer, controller = _trained()
    save_adapters(net, config, tmp_path)
    path = save_training_state(tmp_path, optimizer, controller)
    text = path.read_text()
    assert '"lr"' in text and "0.01" in text
    path.write_text(text.replace("0.01", "0.02", 1))
    _refused(tmp_path, f"{path} does not match its own checksum")


def _poison_group(key, value):
    def poison(optimizer, controller):
        optimizer.param_groups[0][key] = value
    return poison


def _poison_state(name, make):
    def poison(optimizer, controller):
        state = next(iter(optimizer.state.values()))
        state[name] = make(state[name])
    return poison


def _poison_step(value):
    def poison(optimizer, controller):
        controller.step_count = value
    return poison


@pytest.mark.parametrize(("poison", "message"), [
    (_poison_group("lr", "abc"), r"group 0, setting 'lr' is 'abc' \(str\), but this optimizer has a number"),
    (_poison_group("lr", -1.0), r"setting 'lr' must be finite and > 0, got -1.0"),
    (_poison_group("lr", 0.0), r"setting 'lr' must be finite and > 0"),
    (_poison_group("lr", float("inf")), r"cannot be read .*Infinity is not a value"),
    (_poison_group("betas", (0.9, float("nan"))), r"cannot be read .*NaN is not a value"),
    (_poison_group("weight_decay", [1, 2]), r"setting 'weight_decay' is \[1, 2\]"),
    (_poison_state("exp_avg", lambda t: t.reshape(-1)), r"parameter \d+, field 'exp_avg' has shape \(\d+,\), the parameter"),
    (_poison_state("exp_avg_sq", lambda t: t * float("nan")), r"field 'exp_avg_sq' has NaN or inf values"),
    (_poison_step(-5), r"field 'step' must be an int >= 0, got -5"),
    (_poison_step(True), r"field 'step' must be an int >= 0, got True"),
])
def test_a_signed_training_state_breaking_the_schema_is_refused_naming_the_field(tmp_path, poison, message):
    """The file's checksums are right (it was written so), so only the schema can catch it."""
    config, net, optimizer, controller = _trained()
    save_adapters(net, config, tmp_path)
    poison(optimizer, controller)
    save_training_state(tmp_path, optimizer, controller)
    _refused(tmp_path, f"{tmp_path / TRAINING_STATE_FILE}.*{message}")


def test_a_step_disagreeing_with_the_controller_state_is_refused(tmp_path):
    config, net, optimizer, controller = _trained()
    save_adapters(net, config, tmp_path)
    path = save_training_state(tmp_path, optimizer, controller)
    document = json.loads(path.read_text())
    document["step"] = 9
    document["document_sha256"] = json_digest(document)
    path.write_text(json.dumps(document))
    _refused(tmp_path, "field 'step' is 9, but the controller state is at step 4")


# --- item 13: a checkpoint is one atomic unit -----------------------------------------------------------------

def test_save_checkpoint_replaces_the_previous_one_and_resumes_exactly(tmp_path):
    config, net, optimizer, controller = _trained(2)
    first = save_checkpoint(tmp_path, net, config, optimizer, controller)
    _train(net, optimizer, _batches("cpu", 2))
    second = save_checkpoint(tmp_path, net, config, optimizer, controller)
    assert latest_checkpoint(tmp_path) == second and not first.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", second.name]
    net2, _, controller2 = _resume_into(second)
    assert controller2.step_count == 4 and controller2.ranks == controller.ranks
    x = torch.randn(5, 16)
    torch.testing.assert_close(net2(x), net(x))


def test_a_save_interrupted_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    config, net, optimizer, controller = _trained(2)
    previous = save_checkpoint(tmp_path, net, config, optimizer, controller)
    _train(net, optimizer, _batches("cpu", 2))  # step 4: reallocated, other ranks

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the adapters of step 4 are written, the training state is not

    monkeypatch.setattr("l1ra_core.torch.training_state.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, net, config, optimizer, controller)
    assert latest_checkpoint(tmp_path) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", previous.name], "the partial save is removed"
    _, _, resumed = _resume_into(previous)
    assert resumed.step_count == 2


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_whole(tmp_path):
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import torch
from conftest import TinyNet
from l1ra_core import L1RAConfig
from l1ra_core.torch import L1RAController, inject_adapters, save_checkpoint
import l1ra_core.torch.training_state as ts

torch.manual_seed(0)
net = TinyNet()
config = L1RAConfig(target_modules=["up", "down"], initial_rank=4, update_interval=3, gate_lr=0.05)
inject_adapters(net, config)
optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
controller = L1RAController(net, config, optimizer)
def train(steps):
    for _ in range(steps):
        torch.nn.functional.mse_loss(net(torch.randn(8, 16)), torch.randn(8, 3)).backward()
        optimizer.step()
        optimizer.zero_grad()
train(2)
save_checkpoint(sys.argv[1], net, config, optimizer, controller)
train(2)
ts.save_file = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
save_checkpoint(sys.argv[1], net, config, optimizer, controller)
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -9, done.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(leftovers) == 1, "the killed save left its staging directory, never the checkpoint's name"
    previous = latest_checkpoint(tmp_path)
    net, optimizer, controller = _resume_into(previous)
    assert controller.step_count == 2
    save_checkpoint(tmp_path, net, _config(), optimizer, controller)  # the next save cleans up
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_adapters_and_training_state_of_different_steps_are_refused(tmp_path):
    config, net, optimizer, controller = _trained(2)
    directory = save_checkpoint(tmp_path, net, config, optimizer, controller)
    _train(net, optimizer, _batches("cpu", 2))
    save_adapters(net, config, directory)  # step-4 adapters beside the step-2 training state
    net2 = TinyNet()
    config2 = load_adapters(net2, directory)
    optimizer2 = torch.optim.AdamW([p for p in net2.parameters() if p.requires_grad], lr=1e-2)
    controller2 = L1RAController(net2, config2, optimizer2)
    with pytest.raises(ValueError, match=r"\(step 2\) was saved beside other adapters .* mixes two saves"):
        load_training_state(directory, optimizer2, controller2)
    assert not optimizer2.state and controller2.step_count == 0


def test_a_damaged_latest_pointer_is_refused_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        latest_checkpoint(tmp_path)
    (tmp_path / "LATEST").write_text("../../etc\n")
    with pytest.raises(ValueError, match="LATEST names '../../etc', which is not a checkpoint directory"):
        latest_checkpoint(tmp_path)
