"""L1RALayer: the gated low-rank forward, merge / unmerge, and output-preserving resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from l1ra_core import AdapterPlan
from l1ra_core.torch import L1RALayer


def _trained_layer(device, dtype=torch.float32, rank=4, initial_rank=4) -> L1RALayer:
    torch.manual_seed(0)
    base = nn.Linear(12, 10).to(device=device, dtype=dtype)
    layer = L1RALayer(base, rank, initial_rank, alpha=8.0)
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.gate.uniform_(0.2, 1.0)
    return layer


def test_fresh_adapter_is_identity_and_only_factors_train(device):
    base = nn.Linear(12, 10).to(device)
    layer = L1RALayer(base, 4, 4, alpha=8.0)
    x = torch.randn(3, 12, device=device)
    torch.testing.assert_close(layer(x), base(x))
    assert torch.all(layer.gate == 1) and torch.all(layer.lora_B == 0)
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B", "gate"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_formula_on_base_device_and_dtype(device, dtype):
    layer = _trained_layer(device, dtype, rank=3, initial_rank=6)
    x = torch.randn(2, 5, 12, device=device, dtype=dtype)
    expected = layer.base_layer(x) + (8.0 / 6) * x @ layer.lora_A.T @ torch.diag(layer.gate).to(dtype) @ layer.lora_B.T
    out = layer(x)
    assert out.device.type == device.type and out.dtype == dtype
    assert layer.lora_A.device.type == device.type and layer.lora_A.dtype == dtype
    torch.testing.assert_close(out, expected)


def test_conv1d_base_layer(device):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    base = transformers.pytorch_utils.Conv1D(10, 12).to(device)  # nf=10 outputs, nx=12 inputs
    layer = L1RALayer(base, 4, 4, alpha=8.0)
    assert (layer.in_features, layer.out_features, layer.fan_in_fan_out) == (12, 10, True)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 12, device=device)
    before = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), before, rtol=1e-5, atol=1e-5)


def test_merge_then_unmerge_restores_weights_and_outputs(device):
    layer = _trained_layer(device)
    original = layer.base_layer.weight.detach().clone()
    x = torch.randn(4, 12, device=device)
    before = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), before, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, original, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer(x), before, rtol=1e-6, atol=1e-6)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_resize_keeps_survivors_and_output(device):
    layer = _trained_layer(device, rank=5)
    with torch.no_grad():
        layer.gate[[1, 3]] = 0.0  # pruned components have zero gates
    x = torch.randn(4, 12, device=device)
    before = layer(x)
    old_a = layer.lora_A.detach().clone()
    keep = torch.tensor([0, 2, 4])
    swaps = layer.resize(AdapterPlan("x", 5, np.array([0, 2, 4]), 3), generator=torch.Generator().manual_seed(1))
    assert layer.rank == 6 and layer.lora_A.shape == (6, 12) and layer.lora_B.shape == (10, 6)
    torch.testing.assert_close(layer.lora_A[:3], old_a[keep.to(device)])
    assert torch.all(layer.gate[3:] == 1) and torch.all(layer.lora_B[:, 3:] == 0)
    assert torch.all(layer.lora_A[3:].abs() > 0)
    torch.testing.assert_close(layer(x), before)
    assert [dim for _, _, dim in swaps] == [0, 1, 0]
    assert all(new is getattr(layer, n) for (_, new, _), n in zip(swaps, ["lora_A", "lora_B", "gate"]))


def test_resize_refuses_merged_adapter():
    layer = _trained_layer("cpu")
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.resize(AdapterPlan("x", 4, np.array([0]), 1))


def test_resize_refuses_a_plan_for_another_rank():
    layer = _trained_layer("cpu")
    with pytest.raises(ValueError, match="expects rank 3, this adapter has 4"):
        layer.resize(AdapterPlan("x", 3, np.array([0]), 1))
    assert layer.rank == 4


def test_rejects_unsupported_base():
    with pytest.raises(TypeError, match="nn.Linear or transformers Conv1D"):
        L1RALayer(nn.Conv2d(3, 3, 1), 2, 2, alpha=4.0)


def test_gate_is_float32_in_a_bf16_model_and_forward_merge_stay_correct():
    layer = _trained_layer(torch.device("cpu"), torch.bfloat16, rank=3, initial_rank=6)
    assert layer.gate.dtype == torch.float32 and layer.lora_A.dtype == torch.bfloat16
    x = torch.randn(4, 12, dtype=torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    A, B, g = layer.lora_A.float(), layer.lora_B.float(), layer.gate.detach()
    expected = layer.base_layer(x).float() + (8.0 / 6) * x.float() @ A.T @ torch.diag(g) @ B.T
    torch.testing.assert_close(out.float(), expected, rtol=3e-2, atol=3e-2)
    assert layer.delta_weight().dtype == torch.bfloat16
    weight = layer.base_layer.weight.detach().clone()
    layer.merge()
    assert layer.base_layer.weight.dtype == torch.bfloat16
    torch.testing.assert_close(layer(x).float(), out.float(), rtol=3e-2, atol=3e-2)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, weight, rtol=2e-2, atol=2e-2)
    swaps = layer.resize(AdapterPlan("x", 3, np.array([0, 2]), 2))
    assert layer.gate.dtype == torch.float32 and layer.lora_A.dtype == layer.lora_B.dtype == torch.bfloat16
    assert len(swaps) == 3
