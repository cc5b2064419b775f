"""Injection, target selection, merge / unmerge / unload over a whole model, and their errors."""

from __future__ import annotations

import pytest
import torch

from l1ra_core import L1RAConfig
from l1ra_core.torch import (
    L1RALayer,
    adapter_layers,
    find_target_modules,
    inject_adapters,
    merge_adapters,
    rank_pattern,
    unload_adapters,
    unmerge_adapters,
)


def test_targets_by_suffix_list_and_regex(tiny_net):
    assert find_target_modules(tiny_net, ["up"]) == ["blocks.0.up", "blocks.1.up"]
    assert find_target_modules(tiny_net, r"blocks\.\d+\.(up|down)") == [
        "blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down",
    ]


def test_inject_freezes_base_and_wraps_targets(tiny_net, device):
    tiny_net.to(device)
    x = torch.randn(5, 16, device=device)
    before = tiny_net(x)
    adapters = inject_adapters(tiny_net, L1RAConfig(target_modules=["up", "down"], initial_rank=3))
    assert list(adapters) == ["blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down"]
    assert all(isinstance(m, L1RALayer) for m in adapters.values())
    assert adapter_layers(tiny_net) == adapters
    assert rank_pattern(tiny_net) == dict.fromkeys(adapters, 3)
    trainable = {n for n, p in tiny_net.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.{p}" for name in adapters for p in ("lora_A", "lora_B", "gate")}
    torch.testing.assert_close(tiny_net(x), before)  # B = 0: nothing changes yet


def test_no_match_lists_available_modules(tiny_net):
    with pytest.raises(ValueError, match=r"matches no module.*blocks\.0\.up"):
        inject_adapters(tiny_net, L1RAConfig(target_modules=["q_proj"]))


def test_non_linear_target_is_rejected(tiny_net):
    with pytest.raises(TypeError, match="not nn.Linear/Conv1D.*blocks.0"):
        find_target_modules(tiny_net, ["0"])  # matches the ModuleDict "blocks.0"


def test_double_injection_is_rejected(tiny_net):
    config = L1RAConfig(target_modules=["up"])
    inject_adapters(tiny_net, config)
    with pytest.raises(ValueError, match="already has L1RA adapters"):
        inject_adapters(tiny_net, config)


def test_merge_unmerge_unload(tiny_net, device):
    tiny_net.to(device)
    inject_adapters(tiny_net, L1RAConfig(target_modules=["up", "down"], initial_rank=4))
    with torch.no_grad():
        for layer in adapter_layers(tiny_net).values():
            layer.lora_B.normal_(std=0.5)
            layer.gate.uniform_(0.0, 1.0)
    originals = {n: layer.base_layer.weight.detach().clone() for n, layer in adapter_layers(tiny_net).items()}
    x = torch.randn(7, 16, device=device)
    expected = tiny_net(x)
    merge_adapters(tiny_net)
    torch.testing.assert_close(tiny_net(x), expected, rtol=1e-5, atol=1e-5)
    unmerge_adapters(tiny_net)
    for name, layer in adapter_layers(tiny_net).items():
        torch.testing.assert_close(layer.base_layer.weight, originals[name], rtol=0, atol=1e-6)
    torch.testing.assert_close(tiny_net(x), expected, rtol=1e-6, atol=1e-6)
    unload_adapters(tiny_net, merge=True)
    assert not adapter_layers(tiny_net)
    assert isinstance(tiny_net.blocks[0]["up"], torch.nn.Linear)
    torch.testing.assert_close(tiny_net(x), expected, rtol=1e-5, atol=1e-5)


def test_merge_without_adapters_says_what_to_do(tiny_net):
    with pytest.raises(ValueError, match="inject_adapters"):
        merge_adapters(tiny_net)
