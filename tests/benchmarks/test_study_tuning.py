"""Learning-rate grids are extended while the winner sits at an edge, up to the bound, and the search is
replayed from finished tune results alone."""

from __future__ import annotations

import pytest

from benchmarks.lora_rank.tuning import next_rate_down, search, step_rate


def table(scores):
    """A lookup over finished tune runs: ``scores`` maps rate -> dev NLL, or None for a diverged run."""
    def lookup(lr):
        if lr not in scores:
            return None
        value = scores[lr]
        return {"dev_nll": value if value is not None else 9.9, "divergence": {"diverged": value is None}}
    return lookup


def test_an_interior_winner_ends_the_search():
    state = search([1e-3, 3e-3, 1e-2], table({1e-3: 2.5, 3e-3: 2.3, 1e-2: 2.4}), 2, "lora")
    assert state.winner == 3e-3 and state.at_edge is None and state.extensions == ()


def test_a_winner_at_the_top_asks_for_one_step_up_then_settles():
    scores = {1e-3: 2.5, 3e-3: 2.37}
    pending = search([1e-3, 3e-3], table(scores), 2, "lora")
    assert pending.winner is None and pending.missing == (9e-3,) and pending.extensions == (9e-3,)
    scores[9e-3] = 2.40
    done = search([1e-3, 3e-3], table(scores), 2, "lora")
    assert done.winner == 3e-3 and done.at_edge is None and done.rates == (1e-3, 3e-3, 9e-3)


def test_the_bound_stops_the_search_and_the_edge_is_reported():
    scores = {1e-3: 2.5, 3e-3: 2.4, 9e-3: 2.3, 0.027: 2.2}
    state = search([1e-3, 3e-3], table(scores), 2, "lora")
    assert state.winner == 0.027 and state.at_edge == "top" and state.extensions == (9e-3, 0.027)
    assert search([1e-3, 3e-3], table(scores), 0, "lora").at_edge == "top"


def test_a_single_rate_is_extended_on_both_sides():
    scores = {1e-4: 2.5, 3e-4: 2.6}
    pending = search([1e-4], table(scores), 2, "full")
    assert pending.missing == (3.33e-5,)
    scores[3.33e-5] = 2.7
    assert search([1e-4], table(scores), 2, "full").winner == 1e-4


def test_a_diverged_rate_bounds_the_grid_and_cannot_win():
    state = search([1e-3, 3e-3, 30.0], table({1e-3: 2.5, 3e-3: 2.4, 30.0: None}), 1, "lora")
    assert state.winner == 3e-3 and state.at_edge is None and state.scores[30.0] is None
    with pytest.raises(ValueError, match="every learning rate tried for lora at rank 2 diverged"):
        search([30.0], table({30.0: None, 10.0: None}), 1, "lora at rank 2")


def test_steps_and_the_next_rate_down():
    assert step_rate(3e-3, up=True) == 9e-3 and step_rate(1e-3, up=False) == 3.33e-4
    assert next_rate_down([1e-3, 3e-3, 9e-3], 9e-3) == 3e-3 and next_rate_down([1e-3, 3e-3], 1e-3) == 3.33e-4
