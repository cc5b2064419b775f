"""Tests for ReallocationSchedule."""

from __future__ import annotations

import pytest

from l1ra_core import ReallocationSchedule


def due_steps(schedule: ReallocationSchedule, last: int) -> list[int]:
    return [step for step in range(last + 1) if schedule.is_due(step)]


def test_every_interval_steps_never_at_step_zero():
    schedule = ReallocationSchedule(update_interval=10)
    assert schedule.period == 10
    assert due_steps(schedule, 35) == [10, 20, 30]


def test_fraction_of_total_steps():
    schedule = ReallocationSchedule(update_fraction=0.05, total_steps=1000)
    assert schedule.period == 50
    assert due_steps(schedule, 160) == [50, 100, 150]
    assert ReallocationSchedule(update_fraction=0.1, total_steps=25).period == 2  # round(2.5), ties to even


def test_nothing_is_due_during_warmup():
    schedule = ReallocationSchedule(update_interval=10, warmup_steps=20)
    assert due_steps(schedule, 50) == [30, 40, 50]


def test_total_steps_may_accompany_an_interval():
    assert ReallocationSchedule(update_interval=7, total_steps=100).period == 7


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of update_interval"),
        ({"update_interval": 5, "update_fraction": 0.1, "total_steps": 100}, ValueError, "exactly one of update_interval"),
        ({"update_interval": 0}, ValueError, "update_interval must be an int >= 1"),
        ({"update_interval": 2.5}, TypeError, "update_interval must be an int"),
        ({"update_fraction": 0.1}, ValueError, "update_fraction needs total_steps"),
        ({"update_fraction": 0.0, "total_steps": 100}, ValueError, "update_fraction must be finite and > 0 and <= 1"),
        ({"update_fraction": 1.5, "total_steps": 100}, ValueError, "update_fraction must be finite and > 0 and <= 1"),
        ({"update_fraction": float("nan"), "total_steps": 100}, ValueError, "update_fraction must be finite"),
        ({"update_fraction": "0.1", "total_steps": 100}, TypeError, "update_fraction must be a real number"),
        ({"update_fraction": 0.01, "total_steps": 20}, ValueError, "rounds to 0 steps"),
        ({"update_fraction": 0.1, "total_steps": 0}, ValueError, "total_steps must be an int >= 1"),
        ({"update_interval": 5, "warmup_steps": -1}, ValueError, "warmup_steps must be an int >= 0"),
    ],
)
def test_schedule_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReallocationSchedule(**kwargs)


@pytest.mark.parametrize(("step", "error"), [(-1, ValueError), (1.0, TypeError), (None, TypeError)])
def test_is_due_rejects_bad_steps(step, error):
    with pytest.raises(error, match="step must be an int"):
        ReallocationSchedule(update_interval=5).is_due(step)


def test_a_config_and_its_schedule_share_the_validation():
    from l1ra_core import L1RAConfig

    config = L1RAConfig(target_modules=["q"], update_fraction=0.1, warmup_steps=3)
    assert config.schedule(total_steps=100) == ReallocationSchedule(
        update_fraction=0.1, total_steps=100, warmup_steps=3
    )
    with pytest.raises(ValueError, match="rounds to 0 steps"):
        config.schedule(total_steps=4)
    with pytest.raises(ValueError, match="rounds to 0 steps"):
        L1RAConfig(target_modules=["q"], update_fraction=0.1, total_steps=4)
