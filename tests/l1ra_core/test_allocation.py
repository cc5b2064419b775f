"""Hand-written examples that pin the semantics of l1ra_core.allocate, and its validation."""

from __future__ import annotations

import types

import numpy as np
import pytest

from l1ra_core import AdapterPlan, AllocationPlan, allocate


def summary(plan: AllocationPlan) -> dict[str, tuple[list[int], int]]:
    """name -> (kept indices, number of new components)."""
    return {name: (a.keep.tolist(), a.n_new) for name, a in plan.adapters.items()}


def test_freed_rank_goes_to_the_adapter_that_pruned_nothing():
    gates = {"a": [0.9, 0.0, 0.5, 0.2], "b": [0.3, 0.4], "c": [0.0, 0.0, 0.7]}
    plan = allocate(gates, budget=9)
    assert summary(plan) == {"a": ([0, 2, 3], 0), "b": ([0, 1], 3), "c": ([2], 0)}
    assert plan.ranks == {"a": 3, "b": 5, "c": 1}
    assert (plan.budget, plan.pruned, plan.freed, plan.reassigned, plan.total_rank) == (9, 3, 3, 3, 9)
    assert plan.changed


def test_neediest_first_is_the_largest_smallest_gate_and_ties_go_by_name():
    gates = {
        "w": [0.0, 0.0, 1.0],  # prunes two: frees 2
        "x": [0.9, 0.8],  # weakest 0.8: neediest
        "y": [0.2, 0.7],  # weakest 0.2: least needy
        "z": [0.6, 0.5],  # weakest 0.5
    }
    assert allocate(gates, budget=9).ranks == {"w": 1, "x": 3, "y": 2, "z": 3}
    assert allocate(gates, budget=8).ranks == {"w": 1, "x": 3, "y": 2, "z": 2}
    tied = {"p": [0.0, 1.0], "b": [0.5], "a": [0.5]}
    assert allocate(tied, budget=4).ranks == {"a": 2, "b": 1, "p": 1}


def test_round_robin_deals_one_rank_at_a_time_in_need_order():
    gates = {"drop": [0.0] * 7 + [1.0], "x": [0.9], "y": [0.5]}
    plan = allocate(gates, budget=10)  # 7 freed: x, y, x, y, x, y, x
    assert plan.ranks == {"drop": 1, "x": 5, "y": 4}


def test_max_rank_skips_full_adapters_and_caps_kept_components():
    gates = {"drop": [0.0, 0.0, 0.0, 1.0], "x": [0.9], "y": [0.5]}
    plan = allocate(gates, budget=6, max_rank={"drop": 4, "x": 2, "y": 4})
    assert plan.ranks == {"drop": 1, "x": 2, "y": 3}
    big = allocate({"a": [0.1, 0.5, 0.3, 0.9], "b": [1.0]}, budget=4, max_rank=2)
    assert summary(big) == {"a": ([1, 3], 0), "b": ([0], 1)}
    assert big.adapters["a"].pruned == 2


def test_min_rank_keeps_the_strongest_components_ties_to_the_lower_index():
    plan = allocate({"dead": [0.0, 0.0, 0.0], "live": [1.0]}, budget=4)
    assert summary(plan) == {"dead": ([0], 0), "live": ([0], 2)}
    plan = allocate({"weak": [0.1, -0.3, 0.3, 0.05], "live": [1.0, 1.0]}, budget=5, threshold=0.5, min_rank=2)
    assert summary(plan)["weak"] == ([1, 2], 0)


def test_threshold_prunes_gates_at_or_below_it_by_absolute_value():
    plan = allocate({"a": [0.1, -0.1, 0.2, -0.3], "b": [1.0]}, budget=5, threshold=0.1)
    assert summary(plan) == {"a": ([2, 3], 0), "b": ([0], 2)}


def test_adapters_below_min_rank_grow_to_it():
    plan = allocate({"small": [1.0], "big": [1.0, 1.0, 1.0]}, budget=5, min_rank=2)
    assert plan.ranks == {"big": 3, "small": 2}


def test_when_no_adapter_is_eligible_the_freed_rank_goes_to_all_in_need_order():
    gates = {"a": [0.0, 0.4, 0.9], "b": [0.0, 0.8, 0.7], "c": [0.0, 0.0, 0.6]}
    plan = allocate(gates, budget=9)
    assert plan.ranks == {"a": 3, "b": 4, "c": 2}  # need order b (0.7), c (0.6), a (0.4)
    assert plan.total_rank == 9


def test_when_eligible_adapters_are_full_the_rest_goes_to_the_pruned_ones():
    gates = {"full": [1.0, 1.0], "p": [0.0, 0.0, 0.5], "q": [0.0, 0.9]}
    plan = allocate(gates, budget=7, max_rank=3)
    assert plan.ranks == {"full": 3, "p": 2, "q": 2}


def test_exclude_pruned_false_lets_pruned_adapters_compete():
    gates = {"pruner": [0.0, 0.95], "steady": [0.5, 0.6]}
    assert allocate(gates, budget=4).ranks == {"pruner": 1, "steady": 3}
    assert allocate(gates, budget=4, exclude_pruned=False).ranks == {"pruner": 2, "steady": 2}


def test_over_budget_drops_the_globally_weakest_components_above_min_rank():
    plan = allocate({"a": [1.0, 0.2, 0.3], "b": [0.25, 0.9]}, budget=3)
    assert summary(plan) == {"a": ([0, 2], 0), "b": ([1], 0)}
    tied = allocate({"a": [0.5, 0.5], "b": [0.5, 0.5]}, budget=3)
    assert summary(tied) == {"a": ([0, 1], 0), "b": ([0], 0)}  # ties: the later one goes


def test_a_larger_budget_grows_the_adapters():
    plan = allocate({"a": [1.0, 1.0], "b": [0.5, 0.5]}, budget=7)
    assert plan.ranks == {"a": 4, "b": 3}
    assert (plan.pruned, plan.freed, plan.reassigned) == (0, 3, 3)


def test_an_unchanged_plan_reports_no_change():
    plan = allocate({"a": [1.0, 0.5], "b": [0.1]}, budget=3)
    assert not plan.changed
    assert not any(a.changed for a in plan.adapters.values())
    np.testing.assert_array_equal(plan.adapters["a"].keep, [0, 1])


def test_plan_containers_are_read_only_and_sorted():
    plan = allocate({"b": [1.0, 0.0], "a": [1.0]}, budget=3)
    assert isinstance(plan.adapters, types.MappingProxyType)
    assert list(plan.adapters) == ["a", "b"]
    assert "a" in plan.adapters and "zz" not in plan.adapters
    with pytest.raises(TypeError):
        plan.adapters["c"] = plan.adapters["a"]  # type: ignore[index]
    keep = plan.adapters["b"].keep
    assert keep.dtype == np.int64 and not keep.flags.writeable
    with pytest.raises(AttributeError):
        plan.adapters["b"].n_new = 5  # type: ignore[misc]
    assert repr(plan) == "AllocationPlan(adapters=2, budget=3, pruned=1, freed=1, reassigned=1, total_rank=3)"


def test_gates_of_any_real_dtype_are_accepted():
    plan = allocate({"i": np.array([0, 3, 1]), "f": np.array([0.5], dtype=np.float32)}, budget=4)
    assert summary(plan) == {"f": ([0], 1), "i": ([1, 2], 0)}


def test_adapter_plan_resize_applies_the_plan_to_arrays():
    plan = AdapterPlan("q", old_rank=3, keep=np.array([0, 2]), n_new=2)
    assert (plan.rank, plan.pruned, plan.changed) == (4, 1, True)
    np.testing.assert_array_equal(plan.resize([0.5, 0.0, 0.25], fill=1.0), [0.5, 0.25, 1.0, 1.0])
    B = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(plan.resize(B, axis=1), [[0, 2, 0, 0], [3, 5, 0, 0]])
    with pytest.raises(ValueError, match="'q'.*3 components"):
        plan.resize(np.zeros((3, 2)), axis=1)
    with pytest.raises(ValueError, match="along axis 1"):
        plan.resize(np.zeros(3), axis=1)


def test_adapter_plan_equality_compares_the_kept_indices():
    a = AdapterPlan("q", 3, np.array([0, 2]), 1)
    assert a == AdapterPlan("q", 3, np.array([0, 2]), 1)
    assert a != AdapterPlan("q", 3, np.array([0, 1]), 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget": None}, TypeError, "budget must be an int"),
        ({"budget": 4.0}, TypeError, "budget must be an int"),
        ({"budget": True}, TypeError, "budget must be an int"),
        ({"budget": -1}, ValueError, "budget must be an int >= 0"),
        ({"budget": 2}, ValueError, r"budget=2 is below min_rank \* number of adapters"),
        ({"budget": 5, "min_rank": 0}, ValueError, "min_rank must be an int >= 1"),
        ({"budget": 6, "min_rank": 3}, ValueError, r"budget=6 is below .* = 3 \* 3"),
        ({"budget": 5, "threshold": -0.1}, ValueError, "threshold must be finite and >= 0"),
        ({"budget": 5, "threshold": float("nan")}, ValueError, "threshold must be finite"),
        ({"budget": 5, "max_rank": {"a": 2, "b": 2}}, ValueError, r"keys must equal.*missing \['c'\]"),
        ({"budget": 5, "max_rank": {"a": 2, "b": 2, "c": 2, "d": 2}}, ValueError, r"unknown \['d'\]"),
        ({"budget": 5, "max_rank": {"a": 2, "b": 0, "c": 2}}, ValueError, r"\['b'\]=0 is below min_rank"),
        ({"budget": 5, "max_rank": {"a": 2, "b": 2.5, "c": 2}}, TypeError, r"max_rank\['b'\] must be an int"),
        ({"budget": 6, "max_rank": 1, "min_rank": 2}, ValueError, "max_rank=1 is below min_rank=2"),
        ({"budget": 7, "max_rank": 2}, ValueError, "budget=7 exceeds the total capacity 6"),
    ],
)
def test_argument_errors_name_the_argument(kwargs, error, match):
    gates = {"a": [1.0, 0.5], "b": [1.0], "c": [0.0, 1.0, 1.0]}
    with pytest.raises(error, match=match):
        allocate(gates, **kwargs)


@pytest.mark.parametrize(
    ("gates", "error", "match"),
    [
        ({}, ValueError, "gates is empty"),
        ([1.0, 2.0], TypeError, "gates must be a mapping"),
        ({1: [1.0]}, TypeError, "keys must be adapter names"),
        ({"a": [1.0], "b": []}, ValueError, r"gates\['b'\] is empty"),
        ({"a": [1.0], "b": 1.0}, ValueError, r"gates\['b'\] must be a 1-D array"),
        ({"a": [1.0], "b": [[1.0], [2.0, 3.0]]}, TypeError, r"gates\['b'\] cannot be read as a NumPy array"),
        ({"a": [1.0], "b": [[1.0, 2.0]]}, ValueError, r"gates\['b'\] must be a 1-D array.*shape \(1, 2\)"),
        ({"a": [[1.0]], "b": [[1.0]]}, ValueError, r"gates\['a'\] must be a 1-D array"),
        ({"a": [1.0], "b": ["x"]}, TypeError, r"gates\['b'\] must hold real numbers"),
        ({"a": [1.0], "b": [1j]}, TypeError, r"gates\['b'\] must hold real numbers"),
        ({"a": [1.0], "b": [1.0, np.nan]}, ValueError, r"gates\['b'\] contains NaN or inf"),
        ({"a": [np.inf], "b": [1.0]}, ValueError, r"gates\['a'\] contains NaN or inf"),
    ],
)
def test_gate_errors_name_the_adapter(gates, error, match):
    with pytest.raises(error, match=match):
        allocate(gates, budget=4)


@pytest.mark.parametrize(
    ("budget", "max_rank", "error", "match"),
    [
        (2**63, None, ValueError, r"budget must be an int <= 4611686018427387904, got 9223372036854775808"),
        (10**30, None, ValueError, "budget must be an int <= "),
        (10**18, {"a": 10**18, "b": 2**70, "c": 1}, None, None),  # caps beyond int64 are clipped, not overflowed
        (4 * 10**18, {"a": 10**18, "b": 10**18, "c": 10**18}, ValueError, "exceeds the total capacity 3000000000000000000"),
    ],
)
def test_huge_budgets_get_clear_errors_or_exact_plans(budget, max_rank, error, match):
    gates = {"a": [1.0, 0.5], "b": [1.0], "c": [0.0]}
    if error is None:
        plan = allocate(gates, budget, max_rank=max_rank)
        assert plan.total_rank == budget and plan.ranks["c"] == 1
    else:
        with pytest.raises(error, match=match):
            allocate(gates, budget, max_rank=max_rank)
