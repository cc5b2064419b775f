"""When to reallocate: every ``update_interval`` steps, or every ``update_fraction`` of training.

Steps count completed optimizer steps: step 1 is the state after the first update. The names are
those of :class:`l1ra_core.L1RAConfig`, which validates its schedule fields with
:func:`check_schedule_settings` too, so a config and the schedule built from it agree by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfbow_common.checks import check_int, check_real

__all__ = ["ReallocationSchedule", "check_schedule_settings"]


def check_schedule_settings(
    update_interval: int | None,
    update_fraction: float | None,
    total_steps: int | None,
    warmup_steps: int,
) -> None:
    """Raise unless the four schedule settings are valid together.

    Exactly one of ``update_interval`` and ``update_fraction`` is given. ``total_steps`` may be
    ``None`` here (a config may learn it later, e.g. from a Trainer); when it is known, a
    fraction must give a period of at least one step.
    """
    if (update_interval is None) == (update_fraction is None):
        raise ValueError(
            "give exactly one of update_interval (steps between reallocations) or update_fraction "
            "(share of total_steps)"
        )
    if update_interval is not None:
        check_int(update_interval, "update_interval", minimum=1)
    else:
        check_real(update_fraction, "update_fraction", minimum=0.0, exclusive_minimum=True, maximum=1.0)
    if total_steps is not None:
        check_int(total_steps, "total_steps", minimum=1)
        if update_fraction is not None and round(update_fraction * total_steps) == 0:
            raise ValueError(
                f"update_fraction * total_steps = {update_fraction * total_steps:g} rounds to 0 steps; "
                "raise update_fraction or pass update_interval"
            )
    check_int(warmup_steps, "warmup_steps", minimum=0)


@dataclass(frozen=True)
class ReallocationSchedule:
    """Reallocate every ``update_interval`` steps, or every ``round(update_fraction * total_steps)``.

    Give exactly one of ``update_interval`` or ``update_fraction``; ``update_fraction`` needs
    ``total_steps``, the planned number of optimizer steps (the reference uses 5-10% of training;
    the period is rounded to the nearest int, ties to even). A step is due when it is a multiple
    of the period and lies after the ``warmup_steps``; step 0 (before any training) is never due.
    """

    update_interval: int | None = None
    update_fraction: float | None = None
    total_steps: int | None = None
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        check_schedule_settings(self.update_interval, self.update_fraction, self.total_steps, self.warmup_steps)
        if self.update_fraction is not None and self.total_steps is None:
            raise ValueError("update_fraction needs total_steps, the length of training in optimizer steps")

    @property
    def period(self) -> int:
        """Steps between reallocations."""
        if self.update_interval is not None:
            return int(self.update_interval)
        assert self.update_fraction is not None and self.total_steps is not None  # __post_init__
        return round(self.update_fraction * self.total_steps)

    def is_due(self, step: int) -> bool:
        """Whether to reallocate after optimizer step ``step``."""
        step = check_int(step, "step", minimum=0)
        return step > self.warmup_steps and step % self.period == 0
