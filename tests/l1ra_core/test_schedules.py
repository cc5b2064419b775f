"""Tests for ReallocationSchedule and lambda_schedule."""

from __future__ import annotations

import pytest

from l1ra_core import ReallocationSchedule, lambda_schedule


def due_steps(schedule: ReallocationSchedule, last: int) -> list[int]:
    return [step for step in range(last + 1) if schedule.is_due(step)]


def test_every_interval_steps_never_at_step_zero():
    schedule = ReallocationSchedule(interval=10)
    assert schedule.period == 10
    assert due_steps(schedule, 35) == [10, 20, 30]


def test_fraction_of_total_steps():
    schedule = ReallocationSchedule(fraction=0.05, total_steps=1000)
    assert schedule.period == 50
    assert due_steps(schedule, 160) == [50, 100, 150]
    assert ReallocationSchedule(fraction=0.1, total_steps=25).period == 2  # round(2.5), ties to even


def test_nothing_is_due_during_warmup():
    schedule = ReallocationSchedule(interval=10, warmup=20)
    assert due_steps(schedule, 50) == [30, 40, 50]


def test_total_steps_may_accompany_an_interval():
    assert ReallocationSchedule(interval=7, total_steps=100).period == 7


def test_lambda_schedule_constant_and_linear_warmup():
    assert lambda_schedule(0, 0.1) == 0.1
    assert lambda_schedule(500, 0.1) == 0.1
    assert [lambda_schedule(step, 1.0, warmup_steps=4) for step in range(7)] == [0, 0.25, 0.5, 0.75, 1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of interval"),
        ({"interval": 5, "fraction": 0.1, "total_steps": 100}, ValueError, "exactly one of interval"),
        ({"interval": 0}, ValueError, "interval must be an int >= 1"),
        ({"interval": 2.5}, TypeError, "interval must be an int"),
        ({"fraction": 0.1}, ValueError, "fraction needs total_steps"),
        ({"fraction": 0.0, "total_steps": 100}, ValueError, r"fraction must be in \(0, 1\]"),
        ({"fraction": 1.5, "total_steps": 100}, ValueError, r"fraction must be in \(0, 1\]"),
        ({"fraction": float("nan"), "total_steps": 100}, ValueError, "fraction must be finite"),
        ({"fraction": "0.1", "total_steps": 100}, TypeError, "fraction must be a real number"),
        ({"fraction": 0.01, "total_steps": 20}, ValueError, "rounds to 0 steps"),
        ({"fraction": 0.1, "total_steps": 0}, ValueError, "total_steps must be an int >= 1"),
        ({"interval": 5, "warmup": -1}, ValueError, "warmup must be an int >= 0"),
    ],
)
def test_schedule_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReallocationSchedule(**kwargs)


@pytest.mark.parametrize(("step", "error"), [(-1, ValueError), (1.0, TypeError), (None, TypeError)])
def test_is_due_rejects_bad_steps(step, error):
    with pytest.raises(error, match="step must be an int"):
        ReallocationSchedule(interval=5).is_due(step)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((-1, 0.1), ValueError, "step must be an int >= 0"),
        ((1, -0.1), ValueError, "lam must be finite and >= 0"),
        ((1, 0.1, -5), ValueError, "warmup_steps must be an int >= 0"),
        ((1, 0.1, 2.0), TypeError, "warmup_steps must be an int"),
    ],
)
def test_lambda_schedule_errors_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        lambda_schedule(*args)
