"""The core is framework-agnostic: allocate, prox_l1 and the spectra driven by PyTorch tensors and JAX arrays
give exactly what they give on NumPy arrays, and what they cannot read is named."""

from __future__ import annotations

import numpy as np
import pytest

import l1ra_core

GATES = {"layer.0.q": [0.9, 0.0, 0.5, 0.0], "layer.0.v": [0.3, 0.4], "layer.1.q": [0.0, 0.7, 0.8]}
RNG = np.random.default_rng(0)
A, B, C = RNG.normal(size=(3, 7)).astype(np.float32), RNG.normal(size=(5, 3)).astype(np.float32), np.float32([1, 0.5, 0])


@pytest.fixture(params=["torch", "jax"])
def to_framework(request):
    """A function that turns a NumPy array into an array of the framework (skipped where it is missing)."""
    if request.param == "torch":
        torch = pytest.importorskip("torch")
        return lambda array: torch.from_numpy(np.array(array, dtype=np.float32))
    jnp = pytest.importorskip("jax.numpy")
    return lambda array: jnp.asarray(np.array(array, dtype=np.float32))


def test_allocate_takes_framework_arrays(to_framework):
    expected = l1ra_core.allocate({k: np.float32(v) for k, v in GATES.items()}, budget=9, min_rank=1)
    plan = l1ra_core.allocate({k: to_framework(v) for k, v in GATES.items()}, budget=9, min_rank=1)
    assert plan == expected and plan.changed


def test_prox_l1_takes_framework_arrays(to_framework):
    gates = np.float32([1.0, 0.6, 0.002, 0.5])
    expected = l1ra_core.prox_l1(gates, 0.01, 0.5, nonnegative=True, upper=1.0)
    result = l1ra_core.prox_l1(to_framework(gates), 0.01, 0.5, nonnegative=True, upper=1.0)
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == np.float32


def test_spectra_take_framework_arrays(to_framework):
    a, b, c = to_framework(A), to_framework(B), to_framework(C)
    np.testing.assert_allclose(l1ra_core.adapter_singular_values(a, b, c), l1ra_core.adapter_singular_values(A, B, C))
    assert l1ra_core.energy_kept((a, b, c), 1) == pytest.approx(l1ra_core.energy_kept((A, B, C), 1))
    a_k, b_k = l1ra_core.truncate_adapter(a, b, 2, c)
    np.testing.assert_allclose(b_k @ a_k, np.asarray(B) @ np.diag(C) @ np.asarray(A), rtol=1e-4, atol=1e-5)
    budget = l1ra_core.spectral_budget({"x": (a, b, c), "y": (a, b)}, 4)
    assert budget == l1ra_core.spectral_budget({"x": (A, B, C), "y": (A, B)}, 4)


def test_adapter_plan_resize_keeps_a_torch_tensor_a_tensor():
    torch = pytest.importorskip("torch")
    plan = l1ra_core.AdapterPlan("q", 3, np.array([0, 2]), 2)
    tensor = torch.arange(6.0).reshape(2, 3)
    resized = plan.resize(tensor, fill=-1.0, axis=1)
    assert isinstance(resized, torch.Tensor) and resized.dtype == tensor.dtype
    assert resized.tolist() == [[0.0, 2.0, -1.0, -1.0], [3.0, 5.0, -1.0, -1.0]]
    np.testing.assert_array_equal(plan.resize(tensor.numpy(), fill=-1.0, axis=1), resized.numpy())


def test_what_numpy_cannot_read_is_named_with_the_fix():
    torch = pytest.importorskip("torch")
    bf16 = {"layer.0.q": torch.ones(3, dtype=torch.bfloat16), "layer.0.v": torch.ones(2)}
    with pytest.raises(TypeError, match=r"gates\['layer.0.q'\] cannot be read as a NumPy array.*float\(\)"):
        l1ra_core.allocate(bf16, budget=5)
    with pytest.raises(TypeError, match=r"gates\['layer.0.v'\] cannot be read.*detach"):
        l1ra_core.allocate({"layer.0.v": torch.ones(2, requires_grad=True)}, budget=2)
    with pytest.raises(TypeError, match="x cannot be read as a NumPy array"):
        l1ra_core.prox_l1(torch.ones(2, dtype=torch.bfloat16), 0.1, 0.1)
    with pytest.raises(TypeError, match="A cannot be read as a NumPy array"):
        l1ra_core.adapter_singular_values(torch.ones(2, 3, dtype=torch.bfloat16), np.ones((4, 2)))
