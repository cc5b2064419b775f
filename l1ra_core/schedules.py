"""When to reallocate, and how strong the L1 penalty is at each step.

Steps count completed optimizer steps: step 1 is the state after the first update.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared_utils.checks import check_int, check_nonnegative

__all__ = ["ReallocationSchedule", "lambda_schedule"]


@dataclass(frozen=True)
class ReallocationSchedule:
    """Reallocate every ``interval`` steps, or every ``round(fraction * total_steps)`` steps.

    Give exactly one of ``interval`` or ``fraction``; ``fraction`` needs ``total_steps``, the
    planned number of optimizer steps (the reference uses 5-10% of training; the period is
    rounded to the nearest int, ties to even). A step is due when it is a multiple of the
    period and lies after the ``warmup`` steps; step 0 (before any training) is never due.
    """

    interval: int | None = None
    fraction: float | None = None
    total_steps: int | None = None
    warmup: int = 0

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.fraction is None):
            raise ValueError(
                "give exactly one of interval (steps between reallocations) or fraction "
                "(of total_steps)"
            )
        if self.total_steps is not None:
            check_int(self.total_steps, "total_steps", minimum=1)
        if self.interval is not None:
            check_int(self.interval, "interval", minimum=1)
        else:
            if not 0 < check_nonnegative(self.fraction, "fraction") <= 1:
                raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
            if self.total_steps is None:
                raise ValueError(
                    "fraction needs total_steps, the length of training in optimizer steps"
                )
            if self.period == 0:
                raise ValueError(
                    f"fraction * total_steps = {self.fraction * self.total_steps} rounds to 0 steps; "
                    "raise fraction or pass interval"
                )
        check_int(self.warmup, "warmup", minimum=0)

    @property
    def period(self) -> int:
        """Steps between reallocations."""
        if self.interval is not None:
            return int(self.interval)
        return round(self.fraction * self.total_steps)

    def is_due(self, step: int) -> bool:
        """Whether to reallocate after optimizer step ``step``."""
        step = check_int(step, "step", minimum=0)
        return step > self.warmup and step % self.period == 0


def lambda_schedule(step: int, lam: float, warmup_steps: int = 0) -> float:
    """The L1 weight at ``step``: ``lam * min(1, step / warmup_steps)``, or ``lam`` with no warm-up.

    A linear warm-up lets the adapters learn something before the penalty starts closing
    gates, so early pruning is not driven by the random initialisation.
    """
    step = check_int(step, "step", minimum=0)
    lam = check_nonnegative(lam, "lam")
    warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)
    if warmup_steps == 0:
        return lam
    return lam * min(1.0, step / warmup_steps)
