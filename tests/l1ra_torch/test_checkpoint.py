"""Saving and loading adapters, and resuming training exactly from a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from l1ra_core import L1RAConfig
from l1ra_core.torch import (
    L1RAController,
    adapter_layers,
    inject_adapters,
    load_adapters,
    load_training_state,
    rank_pattern,
    save_adapters,
    save_training_state,
)

from .conftest import TinyNet


def _config(**kwargs) -> L1RAConfig:
    return L1RAConfig(target_modules=["up", "down"], initial_rank=4, alpha=8.0, update_interval=3, gate_lr=0.05,
                      l1_lambda=1.0, seed=7, init_seed=0, **kwargs)


def _fresh(device, config, directory=None):
    """A TinyNet with adapters (injected, or loaded from ``directory``), its AdamW and its controller."""
    torch.manual_seed(0)
    net = TinyNet().to(device)
    if directory is None:
        inject_adapters(net, config)
        with torch.no_grad():  # varied gates, so that reallocations really prune and grow
            for i, layer in enumerate(adapter_layers(net).values()):
                layer.gate.copy_(torch.rand(layer.rank, generator=torch.Generator().manual_seed(i)) * 0.3 + 0.05)
    else:
        config = load_adapters(net, directory)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    return net, optimizer, L1RAController(net, config, optimizer)


def _batches(device, n):
    generator = torch.Generator().manual_seed(123)
    return [(torch.randn(8, 16, generator=generator).to(device), torch.randn(8, 3, generator=generator).to(device))
            for _ in range(n)]


def _train(net, optimizer, batches):
    for x, y in batches:
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_save_and_load_recreates_adapters_at_their_ranks(device, tmp_path):
    config = _config()
    net, optimizer, controller = _fresh(device, config)
    _train(net, optimizer, _batches(device, 7))
    assert len(controller.rank_log) > 1 and len(set(rank_pattern(net).values())) > 1, "ranks should differ"
    save_adapters(net, config, tmp_path)
    meta = json.loads((tmp_path / "l1ra_config.json").read_text())
    assert meta["rank_pattern"] == rank_pattern(net)

    torch.manual_seed(0)
    fresh = TinyNet().to(device)  # the same base weights as net's
    assert load_adapters(fresh, tmp_path) == config
    assert rank_pattern(fresh) == rank_pattern(net)
    x = torch.randn(5, 16, device=device)
    torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)


def test_resume_continues_exactly(device, tmp_path):
    config, batches = _config(), _batches(device, 8)
    straight, optimizer, straight_controller = _fresh(device, config)
    _train(straight, optimizer, batches)

    first, optimizer, controller = _fresh(device, config)
    _train(first, optimizer, batches[:4])
    save_adapters(first, config, tmp_path)
    save_training_state(tmp_path, optimizer, controller)

    resumed, optimizer, controller = _fresh(device, config, directory=tmp_path)
    load_training_state(tmp_path, optimizer, controller)
    assert controller.step_count == 4
    _train(resumed, optimizer, batches[4:])

    assert controller.rank_log == straight_controller.rank_log and 6 in controller.rank_log
    assert controller.rank_log[6] != controller.rank_log[3], "the second half reallocated (new A rows drawn)"
    assert rank_pattern(resumed) == rank_pattern(straight)
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_loading_into_a_model_of_another_shape_fails_clearly(tmp_path):
    config = _config()
    net, _, _ = _fresh("cpu", config)
    save_adapters(net, config, tmp_path)
    other = TinyNet(dim=8)
    with pytest.raises(ValueError, match="another shape.*blocks.0.up"):
        load_adapters(other, tmp_path)
    assert not adapter_layers(other), "a failed load leaves the model untouched"

    class Renamed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(16, 16)

    with pytest.raises(ValueError, match=r"do not exist.*right base model.*proj"):
        load_adapters(Renamed(), tmp_path)


def test_loading_a_directory_without_adapters_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an L1RA adapter directory"):
        load_adapters(TinyNet(), tmp_path)
    with pytest.raises(FileNotFoundError, match="save_training_state"):
        net, optimizer, controller = _fresh("cpu", _config())
        load_training_state(tmp_path, optimizer, controller)


def test_training_state_for_other_ranks_is_refused(tmp_path):
    config = _config()
    net, optimizer, controller = _fresh("cpu", config)
    _train(net, optimizer, _batches("cpu", 4))
    save_training_state(tmp_path, optimizer, controller)
    _, optimizer, controller = _fresh("cpu", config)  # still at the initial ranks
    with pytest.raises(ValueError, match="load_adapters"):
        load_training_state(tmp_path, optimizer, controller)


def test_files_are_written_atomically(tmp_path):
    config = _config()
    net, _, _ = _fresh("cpu", config)
    save_adapters(net, config, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l1ra_adapters.safetensors", "l1ra_config.json"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("blocks.1.down.gate"), r"lacks \['blocks.1.down.gate'\]"),
        (lambda t: t.update({"blocks.0.up.extra": torch.zeros(2)}), r"unknown \['blocks.0.up.extra'\]"),
        (lambda t: t.update({"blocks.1.down.lora_B": torch.zeros(16, 3)}), r"blocks.1.down.lora_B is F32 \(16, 3\)"),
        (lambda t: t.update({"blocks.0.up.lora_A": t["blocks.0.up.lora_A"].long()}), r"lora_A is I64"),
        (lambda t: t.update({"blocks.0.up.gate": t["blocks.0.up.gate"].double()}), r"gate is F64"),
        (lambda t: t.update({"blocks.0.up.lora_B": t["blocks.0.up.lora_B"] * float("nan")}), r"lora_B has NaN"),
        (lambda t: t.update({"blocks.0.up.lora_A": t["blocks.0.up.lora_A"].double() * 1e300}), "lora_A has NaN or inf"),
        (lambda t: t.update({"blocks.0.up.gate": torch.full_like(t["blocks.0.up.gate"], -5.0)}), r"outside \[0, 1\] \(min -5\)"),
    ],
)
def test_a_crafted_weights_file_is_refused_and_leaves_the_model_untouched(tmp_path, edit, message):
    """Files edited with recomputed checksums, as an attacker would: every check still holds."""
    from safetensors.torch import load_file, save_file

    config = _config()
    net, _, _ = _fresh("cpu", config)
    save_adapters(net, config, tmp_path)
    path = tmp_path / "l1ra_adapters.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))
    resign(tmp_path)
    fresh = TinyNet()
    with pytest.raises(ValueError, match=message):
        load_adapters(fresh, tmp_path)
    assert not adapter_layers(fresh), "a failed load leaves the model untouched"
    assert all(p.requires_grad for p in fresh.parameters())


def resign(directory):
    """Recompute the checksums of an edited adapter directory, so that only the content checks remain."""
    from l1ra_core.adapter_files import json_digest
    from sfbow_common.hashing import file_sha256

    path = directory / "l1ra_config.json"
    meta = json.loads(path.read_text())
    meta["weights_sha256"] = file_sha256(directory / "l1ra_adapters.safetensors")
    meta["metadata_sha256"] = json_digest(meta)
    path.write_text(json.dumps(meta))


def test_a_failed_optimizer_load_leaves_the_controller_untouched(tmp_path):
    config = _config()
    net, optimizer, controller = _fresh("cpu", config)
    _train(net, optimizer, _batches("cpu", 4))  # reallocates at step 3
    save_adapters(net, config, tmp_path)
    save_training_state(tmp_path, optimizer, controller)
    net, _, controller = _fresh("cpu", config, tmp_path)
    params = [p for p in net.parameters() if p.requires_grad]
    other = torch.optim.AdamW([{"params": params[:2]}, {"params": params[2:]}], lr=1e-2)  # another layout
    with pytest.raises(ValueError):
        load_training_state(tmp_path, other, controller)
    assert controller.step_count == 0 and list(controller.rank_log) == [0]


def test_a_refused_controller_state_leaves_the_optimizer_untouched(tmp_path):
    config = _config()
    net, optimizer, controller = _fresh("cpu", config)
    _train(net, optimizer, _batches("cpu", 4))
    save_training_state(tmp_path, optimizer, controller)
    net, optimizer, controller = _fresh("cpu", config)  # still at the initial ranks
    _train(net, optimizer, _batches("cpu", 1))
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match="load_adapters"):
        load_training_state(tmp_path, optimizer, controller)
    after = optimizer.state_dict()
    assert after["state"].keys() == before["state"].keys()
    for key, state in before["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(after["state"][key][name], value)
