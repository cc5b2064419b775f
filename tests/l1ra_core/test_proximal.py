"""Tests for the proximal operators: exact values, optimality, non-expansiveness, in-place use."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from l1ra_core import prox_elastic_net, prox_l1, soft_threshold

REAL = st.floats(-10, 10, allow_nan=False)
THRESHOLD = st.floats(0, 5, allow_nan=False)
VECTORS = hnp.arrays(np.float64, st.integers(1, 20), elements=REAL)


def test_soft_threshold_values():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    np.testing.assert_array_equal(soft_threshold(x, 0.5), [-1.5, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(soft_threshold(x, 0.0), x)
    assert soft_threshold(3, 1) == 2.0


def test_dtypes_float_kept_integers_promoted():
    assert soft_threshold(np.ones(3, dtype=np.float32), 0.1).dtype == np.float32
    assert prox_l1(np.ones(3, dtype=np.float16), 0.1, 1.0).dtype == np.float16
    assert soft_threshold(np.array([3, -1]), 1).dtype == np.float64


def _grid_min(objective, x, lower=-np.inf, upper=np.inf):
    grid = np.clip(np.linspace(x - 12, x + 12, 4801), lower, upper)
    return objective(grid).min()


@settings(max_examples=200, deadline=None)
@given(REAL, THRESHOLD)
def test_soft_threshold_minimises_the_l1_proximal_objective(x, t):
    def objective(z):
        return 0.5 * (z - x) ** 2 + t * np.abs(z)

    z = soft_threshold(x, t)
    best = objective(z)
    assert best <= _grid_min(objective, x) + 1e-12
    for eps in (1e-3, -1e-3, 1e-6, -1e-6):
        assert best <= objective(z + eps) + 1e-12


@settings(max_examples=200, deadline=None)
@given(REAL, st.floats(0, 2), st.floats(0, 2), st.floats(0.1, 3))
def test_prox_l1_with_a_box_minimises_the_constrained_objective(x, step, lam, upper):
    def objective(z):
        return 0.5 * (z - x) ** 2 + step * lam * np.abs(z)

    z = prox_l1(x, step, lam, nonnegative=True, upper=upper)
    assert 0.0 <= z <= upper
    assert objective(z) <= _grid_min(objective, x, 0.0, upper) + 1e-12


@settings(max_examples=200, deadline=None)
@given(REAL, st.floats(0, 2), st.floats(0, 2), st.floats(0, 5))
def test_prox_elastic_net_minimises_its_objective(x, step, lam, l2):
    def objective(z):
        return 0.5 * (z - x) ** 2 + step * (lam * np.abs(z) + 0.5 * l2 * z**2)

    z = prox_elastic_net(x, step, lam, l2)
    assert objective(z) <= _grid_min(objective, x) + 1e-12
    assert z == pytest.approx(soft_threshold(x, step * lam) / (1 + step * l2))


@settings(max_examples=200, deadline=None)
@given(VECTORS, VECTORS, THRESHOLD)
def test_soft_threshold_is_non_expansive(x, y, t):
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    sx, sy = soft_threshold(x, t), soft_threshold(y, t)
    assert np.all(np.abs(sx - sy) <= np.abs(x - y) + 1e-12)
    assert np.linalg.norm(sx - sy) <= np.linalg.norm(x - y) + 1e-12


@settings(max_examples=100, deadline=None)
@given(VECTORS, st.floats(0, 2), st.floats(0, 2))
def test_prox_elastic_net_without_l2_is_prox_l1(x, step, lam):
    np.testing.assert_array_equal(prox_elastic_net(x, step, lam, 0.0), prox_l1(x, step, lam))


def test_l1ra_gate_step_keeps_gates_in_the_unit_interval():
    gates = np.array([1.0, 0.6, 0.002, -0.1, 1.3])
    np.testing.assert_allclose(
        prox_l1(gates, lr=0.01, l1_lambda=0.5, nonnegative=True, upper=1.0), [0.995, 0.595, 0.0, 0.0, 1.0]
    )
    np.testing.assert_allclose(prox_l1(gates, 0.01, 0.5, upper=1.0), [0.995, 0.595, 0.0, -0.095, 1.0])


def test_out_updates_in_place():
    gates = np.array([1.0, 0.2, -0.5], dtype=np.float32)
    result = prox_l1(gates, 0.1, 3.0, nonnegative=True, out=gates)
    assert result is gates
    np.testing.assert_allclose(gates, [0.7, 0.0, 0.0])
    x = np.array([2.0, -2.0])
    assert prox_elastic_net(x, 1.0, 1.0, 1.0, out=x) is x
    np.testing.assert_array_equal(x, [0.5, -0.5])


def test_out_works_on_a_torch_tensor_through_numpy():
    torch = pytest.importorskip("torch")
    gate = torch.tensor([1.0, 0.05, 0.5])
    prox_l1(gate.numpy(), 0.1, 1.0, nonnegative=True, upper=1.0, out=gate.numpy())
    assert torch.allclose(gate, torch.tensor([0.9, 0.0, 0.4]))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: soft_threshold([1.0], -0.1), ValueError, "threshold must be finite and >= 0"),
        (lambda: soft_threshold([1.0], np.nan), ValueError, "threshold must be finite"),
        (lambda: soft_threshold([1.0], "0.1"), TypeError, "threshold must be a real number"),
        (lambda: soft_threshold(["a"], 0.1), TypeError, "x must hold real numbers"),
        (lambda: prox_l1([1.0], -1.0, 0.1), ValueError, "lr must be finite and >= 0"),
        (lambda: prox_l1([1.0], 0.1, np.inf), ValueError, "l1_lambda must be finite and >= 0"),
        (lambda: prox_l1([1.0], 0.1, True), TypeError, "l1_lambda must be a real number"),
        (lambda: prox_l1([1.0], 0.1, 0.1, upper=-1.0), ValueError, "upper must be finite and >= 0"),
        (lambda: prox_elastic_net([1.0], 0.1, 0.1, -2.0), ValueError, "l2_lambda must be finite and >= 0"),
        (lambda: prox_l1(np.ones(2), 0.1, 0.1, out=np.ones(3)), ValueError, r"out has shape \(3,\)"),
        (lambda: prox_l1(np.ones(2), 0.1, 0.1, out=[0.0, 0.0]), TypeError, "out must be a NumPy array"),
        (lambda: prox_l1(np.ones(2), 0.1, 0.1, out=np.ones(2, dtype=int)), TypeError, "out must have a floating"),
        (lambda: prox_l1([1, 2], 0.1, 0.1, out=np.array([1, 2])), TypeError, "integer out would truncate"),
    ],
)
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
