"""L1RA configuration: one frozen, JSON-serialisable record of every hyper-parameter of a run.

It imports no framework: a NumPy or JAX user reads and writes it like a PyTorch user. The same
object drives a backend's injection (which modules, initial rank, alpha, dropout), its controller
(L1 strength, budget, reallocation schedule) and its checkpoints, so a saved adapter always
carries the exact settings it was trained with.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from l1ra_core.schedules import ReallocationSchedule, check_schedule_settings
from sfbow_common.checks import check_int, check_nonnegative, check_real
from sfbow_common.records import Record, record_from_dict, set_checked

#: The largest LoRA alpha accepted: usual values are 1 to a few hundred; far above this the scale
#: ``alpha / initial_rank`` overflows half precision (65504) and then float32, giving inf outputs.
MAX_ALPHA = 1e4

__all__ = ["L1RAConfig"]


def compile_target_pattern(pattern: str) -> re.Pattern[str]:
    """``target_modules`` given as a regex, compiled; a bad one is a ``ValueError`` naming the pattern."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"target_modules={pattern!r} is not a valid regular expression ({error}); pass a regex matched "
            "against whole module names, or a list of module names"
        ) from None


@dataclasses.dataclass(frozen=True)
class L1RAConfig(Record):
    """Hyper-parameters of L1RA adapters and of their rank controller.

    Attributes:
        target_modules: which sub-modules get an adapter. A sequence of names matches a module whose
            qualified name equals an entry or ends with ``"." + entry`` (``"query"`` matches
            ``encoder.layer.0.attention.self.query``); a single string is a regular expression that must
            match the whole qualified name.
        initial_rank: the rank every adapter starts with (PEFT's ``r``). The adapter scale is fixed at
            ``alpha / initial_rank`` for the whole run, which keeps the model's output unchanged when
            ranks are reallocated.
        alpha: LoRA alpha.
        dropout: dropout probability applied to the adapter's input (0 disables it).
        budget: total rank shared by all adapters; ``None`` means ``initial_rank * number_of_adapters``.
        l1_lambda: strength of the L1 penalty on the gates.
        gate_lr: step size of the proximal L1 step; ``None`` uses the learning rate of the optimizer
            parameter group that holds the gate (so learning-rate schedules apply to it too).
        threshold: gates at or below this value are pruned at a reallocation.
        min_rank: no adapter drops below this rank.
        update_interval: reallocate every this many optimizer steps. Exclusive with ``update_fraction``
            (an explicit interval replaces the default fraction).
        update_fraction: reallocate every ``update_fraction * total_steps`` steps (the paper uses 5-10%).
        total_steps: planned number of optimizer steps; needed by ``update_fraction``. A backend may
            supply it later (the Trainer callback fills it from the Trainer).
        warmup_steps: no reallocation at or before this step.
        seed: seed of the generator that initialises new adapter components, so every process of a
            distributed run and every resumed run draws the same values.
        init_seed: seed for the initial ``A`` factors at injection; ``None`` uses the framework's RNG.
    """

    target_modules: str | tuple[str, ...]
    initial_rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    budget: int | None = None
    l1_lambda: float = 1.0
    gate_lr: float | None = None
    threshold: float = 0.0
    min_rank: int = 1
    update_interval: int | None = None
    update_fraction: float | None = 0.1
    total_steps: int | None = None
    warmup_steps: int = 0
    seed: int = 0
    init_seed: int | None = None

    def __post_init__(self) -> None:
        targets = self.target_modules
        if not isinstance(targets, str):
            if not isinstance(targets, Sequence) or not all(isinstance(t, str) for t in targets):
                raise TypeError(
                    "target_modules must be a regex string or a sequence of module names, "
                    f"got {targets!r}"
                )
            object.__setattr__(self, "target_modules", tuple(targets))
        if not self.target_modules:
            raise ValueError("target_modules is empty: name at least one module, e.g. ['query', 'value']")
        if isinstance(self.target_modules, str):
            compile_target_pattern(self.target_modules)

        def optional(check: Any, name: str, **bounds: Any) -> Any:
            value = getattr(self, name)
            return None if value is None else check(value, name, **bounds)

        set_checked(
            self,
            initial_rank=check_int(self.initial_rank, "initial_rank", minimum=1),
            alpha=check_real(self.alpha, "alpha", minimum=0.0, maximum=MAX_ALPHA, exclusive_minimum=True),
            dropout=check_nonnegative(self.dropout, "dropout"),
            budget=optional(check_int, "budget", minimum=0),
            l1_lambda=check_nonnegative(self.l1_lambda, "l1_lambda"),
            gate_lr=optional(check_nonnegative, "gate_lr"),
            threshold=check_nonnegative(self.threshold, "threshold"),
            min_rank=check_int(self.min_rank, "min_rank", minimum=1),
            update_interval=optional(check_int, "update_interval", minimum=1),
            update_fraction=optional(check_real, "update_fraction", minimum=0.0, exclusive_minimum=True,
                                     maximum=1.0),
            total_steps=optional(check_int, "total_steps", minimum=1),
            warmup_steps=check_int(self.warmup_steps, "warmup_steps", minimum=0),
            seed=check_int(self.seed, "seed", minimum=0),
            init_seed=optional(check_int, "init_seed", minimum=0),
        )
        if not self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold!r}")
        if self.update_interval is not None and self.update_fraction is not None:
            object.__setattr__(self, "update_fraction", None)  # the fraction has a default; the interval wins
        if self.update_interval is None and self.update_fraction is None:
            raise ValueError(
                "neither update_interval nor update_fraction is set, so ranks would never be reallocated; "
                "set update_interval (steps) or update_fraction (share of total_steps)"
            )
        check_schedule_settings(self.update_interval, self.update_fraction, self.total_steps, self.warmup_steps)

    @property
    def scaling(self) -> float:
        """The fixed adapter scale ``alpha / initial_rank``."""
        return self.alpha / self.initial_rank

    def schedule(self, total_steps: int | None = None) -> ReallocationSchedule:
        """The reallocation schedule, planned for ``total_steps`` (default: ``self.total_steps``)."""
        return ReallocationSchedule(
            update_interval=self.update_interval,
            update_fraction=self.update_fraction,
            total_steps=self.total_steps if total_steps is None else total_steps,
            warmup_steps=self.warmup_steps,
        )

    def replace(self, **changes: Any) -> L1RAConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> L1RAConfig:
        """Inverse of :meth:`to_dict`; fields left out take their defaults, unknown keys are an error."""
        if isinstance(data, Mapping) and "target_modules" not in data:
            raise ValueError("an L1RAConfig needs target_modules (the modules that get an adapter)")
        return typing.cast(L1RAConfig, record_from_dict(cls, data))
