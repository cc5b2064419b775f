"""Tests for the factor-only spectra of LoRA updates, against dense SVDs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l1ra_core import adapter_singular_values, energy_kept, spectral_budget, truncate_adapter


@st.composite
def factors(draw):
    """Random (A, B, gates) of random sizes, rank possibly above min(out, in)."""
    r, n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gates = rng.uniform(0, 1, r) * (rng.uniform(size=r) > 0.3)
    return rng.normal(size=(r, n_in)), rng.normal(size=(n_out, r)), gates


def dense(A, B, gates):
    return B @ np.diag(gates) @ A


@settings(max_examples=100, deadline=None)
@given(factors())
def test_singular_values_match_the_dense_svd(abc):
    A, B, gates = abc
    sigma = adapter_singular_values(A, B, gates)
    expected = np.linalg.svd(dense(A, B, gates), compute_uv=False)
    assert len(sigma) == min(A.shape[0], *expected.shape)
    np.testing.assert_allclose(sigma, expected[: len(sigma)], atol=1e-10)
    ungated = np.linalg.svd(B @ A, compute_uv=False)[: len(sigma)]
    np.testing.assert_allclose(adapter_singular_values(A, B), ungated, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(factors(), st.data())
def test_truncation_is_the_best_rank_k_approximation(abc, data):
    A, B, gates = abc
    k = data.draw(st.integers(0, A.shape[0]))
    a_k, b_k = truncate_adapter(A, B, k, gates)
    assert a_k.shape == (k, A.shape[1]) and b_k.shape == (B.shape[0], k)
    W = dense(A, B, gates)
    sigma = np.linalg.svd(W, compute_uv=False)
    error = np.linalg.norm(W - b_k @ a_k) ** 2
    assert error == pytest.approx(np.sum(sigma[k:] ** 2), abs=1e-9)  # Eckart-Young optimum
    # the square-root split balances the factors: row norms of A_k equal column norms of B_k
    np.testing.assert_allclose(np.linalg.norm(a_k, axis=1), np.linalg.norm(b_k, axis=0), atol=1e-10)


def test_truncation_equals_the_dense_truncated_svd():
    rng = np.random.default_rng(0)
    A, B, gates = rng.normal(size=(5, 9)), rng.normal(size=(7, 5)), rng.uniform(0.2, 1, 5)
    W = dense(A, B, gates)
    u, s, vt = np.linalg.svd(W)
    a_k, b_k = truncate_adapter(A, B, 3, gates)
    np.testing.assert_allclose(b_k @ a_k, (u[:, :3] * s[:3]) @ vt[:3], atol=1e-12)
    a_full, b_full = truncate_adapter(A, B, 5, gates)
    np.testing.assert_allclose(b_full @ a_full, W, atol=1e-12)


def test_truncation_keeps_float32_and_pads_beyond_the_spectrum():
    A = np.ones((4, 2), dtype=np.float32)
    B = np.ones((3, 4), dtype=np.float32)
    a_k, b_k = truncate_adapter(A, B, 4)
    assert a_k.dtype == b_k.dtype == np.float32
    np.testing.assert_array_equal(a_k[2:], 0)
    np.testing.assert_allclose(b_k @ a_k, B @ A, rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(factors(), st.data())
def test_energy_kept_matches_the_dense_residual(abc, data):
    A, B, gates = abc
    k = data.draw(st.integers(0, 8))
    W = dense(A, B, gates)
    total = np.linalg.norm(W) ** 2
    expected = 1.0 if total == 0 else 1 - np.linalg.norm(W - _dense_truncation(W, k)) ** 2 / total
    assert energy_kept((A, B, gates), k) == pytest.approx(expected, abs=1e-9)
    assert energy_kept(adapter_singular_values(A, B, gates), k) == pytest.approx(expected, abs=1e-9)


def _dense_truncation(W, k):
    u, s, vt = np.linalg.svd(W, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vt[:k]


def test_energy_kept_edge_cases():
    assert energy_kept([3.0, 4.0], 1) == pytest.approx(16 / 25)  # sorted before summing
    assert energy_kept([3.0, 4.0], 0) == 0.0
    assert energy_kept([3.0, 4.0], 5) == 1.0
    assert energy_kept([0.0, 0.0], 0) == 1.0  # 0 / 0: a zero update is fully kept
    assert energy_kept((np.zeros((2, 3)), np.zeros((4, 2))), 1) == 1.0


def test_spectral_budget_gives_rank_to_the_largest_singular_values():
    A = np.eye(3)
    strong = (A, np.diag([10.0, 9.0, 8.0]))
    weak = (A, np.diag([7.0, 1.0, 0.5]))
    gated = (A, np.eye(3), np.array([6.0, 0.0, 0.0]))
    adapters = {"strong": strong, "weak": weak, "gated": gated}
    assert spectral_budget(adapters, 3) == {"gated": 1, "strong": 1, "weak": 1}
    assert spectral_budget(adapters, 5) == {"gated": 1, "strong": 3, "weak": 1}
    assert spectral_budget(adapters, 6) == {"gated": 1, "strong": 3, "weak": 2}
    assert spectral_budget(adapters, 4, min_rank=0) == {"gated": 0, "strong": 3, "weak": 1}
    tied = {"b": (A, np.eye(3)), "a": (A, np.eye(3))}
    assert spectral_budget(tied, 4, min_rank=0) == {"a": 3, "b": 1}  # ties: by name


@settings(max_examples=50, deadline=None)
@given(st.lists(factors(), min_size=1, max_size=4), st.data())
def test_spectral_budget_spends_the_budget_on_the_pooled_top_values(adapter_list, data):
    adapters = {f"m{i}": abc for i, abc in enumerate(adapter_list)}
    available = sum(min(A.shape[0], A.shape[1], B.shape[0]) for A, B, _ in adapter_list)
    budget = data.draw(st.integers(len(adapters), available))
    ranks = spectral_budget(adapters, budget)
    assert sum(ranks.values()) == budget and min(ranks.values()) >= 1
    chosen = [adapter_singular_values(*adapters[n])[: ranks[n]] for n in ranks]
    left = [adapter_singular_values(*adapters[n])[ranks[n]:] for n in ranks]
    rest = np.concatenate(left)
    if len(rest):
        floor = np.concatenate([s[1:] for s in chosen])  # what min_rank did not force
        assert len(floor) == 0 or floor.min() >= rest.max() - 1e-12


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    A, B = torch.randn(3, 5), torch.randn(4, 3)
    np.testing.assert_allclose(
        adapter_singular_values(A, B), adapter_singular_values(A.numpy(), B.numpy()), rtol=1e-12
    )


A23, B42 = np.ones((2, 3)), np.ones((4, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: adapter_singular_values(A23, np.ones((4, 3))), ValueError, "same r"),
        (lambda: adapter_singular_values(np.ones(3), B42), ValueError, "A must be r x in"),
        (lambda: adapter_singular_values(A23, B42, [1.0]), ValueError, r"gates must have shape \(2,\)"),
        (lambda: adapter_singular_values(A23 * np.nan, B42), ValueError, "must be finite"),
        (lambda: truncate_adapter(A23, B42, 3), ValueError, "rank=3 exceeds the adapter's rank r=2"),
        (lambda: truncate_adapter(A23, B42, -1), ValueError, "rank must be an int >= 0"),
        (lambda: energy_kept([1.0, -1.0], 1), ValueError, "singular values must be a 1-D array"),
        (lambda: energy_kept([[1.0]], 1), ValueError, "singular values must be a 1-D array"),
        (lambda: energy_kept([1.0], 1.5), TypeError, "rank must be an int"),
        (lambda: spectral_budget({}, 1), ValueError, "adapters is empty"),
        (lambda: spectral_budget([(A23, B42)], 1), TypeError, "adapters must be a mapping"),
        (lambda: spectral_budget({"m": B42}, 1), TypeError, r"adapters\['m'\] must be a tuple"),
        (lambda: spectral_budget({"m": (A23, A23)}, 1), ValueError, r"adapters\['m'\]: A must be"),
        (lambda: spectral_budget({"m": (A23, B42)}, 0), ValueError, "budget must be an int >= 1"),
        (lambda: spectral_budget({"m": (A23, B42)}, 3), ValueError, "budget=3 exceeds the 2 ranks"),
    ],
)
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_factors_may_be_any_sequence_not_only_tuples():
    A = np.eye(3)
    as_tuples = {"strong": (A, np.diag([10.0, 9.0, 8.0])), "gated": (A, np.eye(3), np.array([6.0, 0.0, 0.0]))}
    as_lists = {name: list(factors) for name, factors in as_tuples.items()}
    assert spectral_budget(as_lists, 4) == spectral_budget(as_tuples, 4)
    assert energy_kept([A, np.diag([3.0, 4.0, 0.0])], 1) == energy_kept((A, np.diag([3.0, 4.0, 0.0])), 1)
    with pytest.raises(TypeError, match=r"adapters\['m'\] must be a tuple or other sequence"):
        spectral_budget({"m": "AB"}, 1)


@settings(max_examples=60, deadline=None)
@given(factors(), st.integers(-250, 250), st.integers(-250, 250))
def test_factors_near_the_float64_limits_give_exact_fractions_and_spectra(abc, a_exponent, b_exponent):
    """Scaling A by 10**a and B by 10**b scales every singular value by 10**(a + b) and leaves the energy
    fractions alone, even where forming the core directly would overflow or underflow."""
    A, B, gates = abc
    scale_a, scale_b = 10.0**a_exponent, 10.0**b_exponent
    reference = adapter_singular_values(A, B, gates)
    for rank in range(len(reference) + 1):
        assert energy_kept((A * scale_a, B * scale_b, gates), rank) == pytest.approx(
            energy_kept((A, B, gates), rank), abs=1e-9
        )
    if abs(a_exponent + b_exponent) < 290:
        np.testing.assert_allclose(
            adapter_singular_values(A * scale_a, B * scale_b, gates) / 10.0 ** (a_exponent + b_exponent),
            reference, rtol=1e-9, atol=1e-9 * reference.max(initial=0.0),
        )
    else:  # beyond float64: a clear error, or finite (underflowing) values, never NaN
        try:
            sigma = adapter_singular_values(A * scale_a, B * scale_b, gates)
        except ValueError as error:
            assert "exceed float64's range" in str(error)
        else:
            assert np.isfinite(sigma).all()


def test_the_issue_example_of_factors_near_1e200():
    A, B = np.eye(2, 3) * 1e200, np.eye(3, 2) * 1e200
    assert energy_kept((A, B, np.array([3.0, 4.0])), 1) == pytest.approx(16 / 25)
    with pytest.raises(ValueError, match="exceed float64's range"):
        adapter_singular_values(A, B)
    a_k, b_k = truncate_adapter(A, B / 1e200, 1, np.array([3.0, 4.0]))
    assert np.isfinite(a_k).all() and np.isfinite(b_k).all()
    np.testing.assert_allclose(np.linalg.norm(b_k @ (a_k / 1e200)), 4.0)
