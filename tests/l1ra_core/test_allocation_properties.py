"""Property tests for l1ra_core.allocate, including agreement with a one-rank-at-a-time reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from l1ra_core import AllocationPlan, allocate

NAMES = st.sampled_from(["attn.q", "attn.k", "attn.v", "mlp.up", "mlp.down", "a", "b", "z"])
# Few distinct values, so exact zeros and ties are common.
GATE = st.sampled_from([0.0, 0.0, -0.0, 0.05, 0.1, 0.1, -0.3, 0.5, 0.5, 0.9, 1.0])
GATES = st.dictionaries(NAMES, st.lists(GATE, min_size=1, max_size=8), min_size=1, max_size=6)


@st.composite
def problems(draw):
    """A gates mapping and allocate() keyword arguments whose capacity covers the budget."""
    gates = draw(GATES)
    names = sorted(gates)
    min_rank = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["none", "int", "mapping"]))
    if kind == "int":
        max_rank = draw(st.integers(min_rank, 10))
    elif kind == "mapping":
        max_rank = {name: draw(st.integers(min_rank, 10)) for name in names}
    else:
        max_rank = None
    caps = [_cap(max_rank, name, 10**6) for name in names]
    low = min_rank * len(names)
    high = min(sum(caps), sum(len(g) for g in gates.values()) + 12)
    assume(low <= high)
    kwargs = {
        "budget": draw(st.integers(low, high)),
        "threshold": draw(st.sampled_from([0.0, 0.05, 0.1, 0.5])),
        "min_rank": min_rank,
        "max_rank": max_rank,
        "exclude_pruned": draw(st.booleans()),
    }
    return gates, kwargs


def _cap(max_rank, name, default):
    if max_rank is None:
        return default
    return max_rank[name] if isinstance(max_rank, dict) else max_rank


def reference_allocate(gates, budget, threshold, min_rank, max_rank, exclude_pruned):
    """The documented rules, applied literally: per component, one rank at a time."""
    names = sorted(gates)
    strength = {name: [abs(float(v)) for v in gates[name]] for name in names}
    cap = {name: _cap(max_rank, name, budget) for name in names}
    keep = {}
    for name in names:
        s = strength[name]
        by_strength = sorted(range(len(s)), key=lambda j: (-s[j], j))
        k = min(max(sum(v > threshold for v in s), min_rank), cap[name], len(s))
        keep[name] = set(by_strength[:k])
    while sum(max(len(keep[n]), min_rank) for n in names) > budget:
        # each adapter above min_rank offers its weakest kept component (ties: the higher index);
        # the globally weakest goes (ties: the later name)
        offers = [
            (strength[n][j], n, j)
            for n in names
            if len(keep[n]) > min_rank
            for j in [max(keep[n], key=lambda j, n=n: (-strength[n][j], j))]
        ]
        _, n, j = min(offers, key=lambda o: (o[0], -names.index(o[1]), -o[2]))
        keep[n].remove(j)
    rank = {n: max(len(keep[n]), min_rank) for n in names}
    pruned = {n: len(keep[n]) < len(strength[n]) for n in names}
    need = {n: min(strength[n][j] for j in keep[n]) for n in names}
    order = sorted(names, key=lambda n: (-need[n], n))
    spare = budget - sum(rank.values())
    for allowed in ([n for n in order if not (exclude_pruned and pruned[n])], order):
        while spare and any(rank[n] < cap[n] for n in allowed):
            for n in allowed:
                if spare and rank[n] < cap[n]:
                    rank[n] += 1
                    spare -= 1
    return {n: (sorted(keep[n]), rank[n] - len(keep[n])) for n in names}


def as_tuples(plan: AllocationPlan):
    return {name: (a.keep.tolist(), a.n_new) for name, a in plan.adapters.items()}


@settings(max_examples=300, deadline=None)
@given(problems())
def test_matches_the_one_rank_at_a_time_reference(problem):
    gates, kwargs = problem
    assert as_tuples(allocate(gates, **kwargs)) == reference_allocate(gates, **kwargs)


@settings(max_examples=200, deadline=None)
@given(problems())
def test_invariants(problem):
    gates, kwargs = problem
    plan = allocate(gates, **kwargs)
    min_rank, max_rank, threshold = kwargs["min_rank"], kwargs["max_rank"], kwargs["threshold"]
    assert plan.total_rank == sum(plan.ranks.values()) == kwargs["budget"]
    assert list(plan.adapters) == sorted(gates)
    kept_total = sum(len(a.keep) for a in plan.adapters.values())
    assert plan.pruned == sum(len(g) for g in gates.values()) - kept_total
    assert plan.freed == plan.reassigned == kwargs["budget"] - kept_total
    no_trimming = sum(max(min(sum(abs(v) > threshold for v in g), _cap(max_rank, n, 10**6)), min_rank)
                      for n, g in gates.items()) <= kwargs["budget"]
    for name, adapter in plan.adapters.items():
        g = np.abs(np.asarray(gates[name], dtype=float))
        assert adapter.name == name and adapter.old_rank == len(g)
        assert min_rank <= adapter.rank <= _cap(max_rank, name, kwargs["budget"])
        keep = adapter.keep
        assert keep.dtype == np.int64 and not keep.flags.writeable
        assert np.all(np.diff(keep) > 0) and (len(keep) == 0 or 0 <= keep[0] <= keep[-1] < len(g))
        above = np.flatnonzero(g > threshold)
        if no_trimming and len(above) <= _cap(max_rank, name, 10**6):
            assert set(above) <= set(keep.tolist())
        else:  # forced: what is kept is at least as strong as what is dropped
            dropped = np.setdiff1d(np.arange(len(g)), keep)
            if len(keep) and len(dropped):
                assert g[keep].min() >= g[dropped].max()


@settings(max_examples=200, deadline=None)
@given(problems())
def test_pruned_adapters_do_not_grow_while_the_others_have_room(problem):
    gates, kwargs = problem
    kwargs["exclude_pruned"] = True
    plan = allocate(gates, **kwargs)
    eligible = [a for a in plan.adapters.values() if a.pruned == 0]
    eligible_full = all(a.rank == _cap(kwargs["max_rank"], a.name, np.inf) for a in eligible)
    if not eligible_full:
        for adapter in plan.adapters.values():
            if adapter.pruned:
                assert adapter.rank <= max(len(adapter.keep), kwargs["min_rank"])


@settings(max_examples=100, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_independent_of_mapping_order(problem, rnd: random.Random):
    gates, kwargs = problem
    items = list(gates.items())
    rnd.shuffle(items)
    assert allocate(dict(items), **kwargs) == allocate(gates, **kwargs)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(NAMES, st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8), min_size=1, max_size=6))
def test_a_plan_on_nonzero_gates_that_meet_the_budget_changes_nothing(gates):
    budget = sum(len(g) for g in gates.values())
    plan = allocate(gates, budget, max_rank=8)
    assert not plan.changed
    assert all(a.keep.tolist() == list(range(a.old_rank)) and a.n_new == 0 for a in plan.adapters.values())


@settings(max_examples=50, deadline=None)
@given(problems())
def test_applying_a_plan_then_reallocating_with_live_gates_is_a_fixed_point(problem):
    gates, kwargs = problem
    plan = allocate(gates, **kwargs)
    resized = {name: adapter.resize(gates[name], fill=1.0) for name, adapter in plan.adapters.items()}
    resized = {name: np.where(np.abs(g) > kwargs["threshold"], g, 1.0) for name, g in resized.items()}
    assert not allocate(resized, **kwargs).changed


def test_accepts_torch_cpu_tensors():
    torch = pytest.importorskip("torch")
    gates = {"a": [0.9, 0.0, 0.5], "b": [0.3, 0.4], "c": [0.0, 0.7]}
    tensors = {name: torch.tensor(g, dtype=torch.float32) for name, g in gates.items()}
    assert allocate(tensors, budget=8) == allocate(gates, budget=8)
