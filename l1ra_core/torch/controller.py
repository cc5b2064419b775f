"""The L1RA controller: proximal L1 step on the gates after every optimizer step, and rank reallocation
under a fixed budget with the optimizer state of surviving components preserved.

It works with any ``torch.optim.Optimizer`` and any training loop: by default it hooks itself onto the
optimizer (``register_step_post_hook``), so it cannot be forgotten and never runs on a skipped step (AMP
overflow, gradient accumulation). Frameworks that drive the optimizer themselves call :meth:`step`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from l1ra_core import AllocationPlan, L1RAConfig, RankReport, ReallocationSchedule, allocate, rank_report
from l1ra_core.adapter_files import RANK_DIMS
from l1ra_core.allocation import AdapterPlan, check_budget
from sfbow_common.checks import check_int

from .layer import L1RALayer
from .model import _require_adapters, rank_pattern

__all__ = ["L1RAController"]


class L1RAController:
    """Drives the gates and ranks of the L1RA adapters of ``model``.

    Args:
        model: a model with adapters (:func:`inject_adapters` or :func:`load_adapters`).
        config: the run's configuration (L1 strength, budget, schedule, seed).
        optimizer: the optimizer that trains the adapters; may also be given later with :meth:`attach`
            (the Trainer callback does that once the Trainer has built its optimizer).
        total_steps: planned optimizer steps, needed when the schedule is ``config.update_fraction``;
            defaults to ``config.total_steps``.
        hook: run automatically after every ``optimizer.step()`` (default). With ``hook=False`` call
            :meth:`step` yourself right after each optimizer step.
        on_resize: called with the plan after every reallocation that changed ranks, e.g. to rebuild a
            ``DistributedDataParallel`` wrapper, whose buckets hold the replaced parameters.

    Attributes:
        budget: the total rank kept by every reallocation.
        step_count: optimizer steps seen.
        rank_log: ``{step: {adapter name: rank}}``: the initial ranks at step 0 and the ranks after every
            reallocation at a later step (a reallocation before the first step does not replace step 0).
        last_plan: the ``l1ra_core`` allocation plan of the latest reallocation (``None`` before the first).
    """

    def __init__(
        self,
        model: nn.Module,
        config: L1RAConfig,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        total_steps: int | None = None,
        hook: bool = True,
        on_resize: Callable[[AllocationPlan], None] | None = None,
    ) -> None:
        if not isinstance(config, L1RAConfig):
            raise TypeError(f"config must be an l1ra_core.L1RAConfig, got {type(config).__name__}")
        self.model = model
        self.config = config
        self.adapters: dict[str, L1RALayer] = dict(sorted(_require_adapters(model).items()))
        _refuse_low_precision_gates(self.adapters)
        self.max_ranks = {name: layer.max_rank for name, layer in self.adapters.items()}
        budget = config.budget if config.budget is not None else config.initial_rank * len(self.adapters)
        self.budget, _ = check_budget(budget, list(self.adapters), min_rank=config.min_rank, max_rank=self.max_ranks)
        self.total_steps = total_steps if total_steps is not None else config.total_steps
        self._schedule = self._make_schedule(self.total_steps)
        self.step_count = 0
        self.rank_log: dict[int, dict[str, int]] = {0: self.ranks}
        self.last_plan: AllocationPlan | None = None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer: torch.optim.Optimizer | None = None
        self._hook = hook
        self._on_resize = on_resize
        self._hook_handle: Any = None
        self._gate_groups: list[tuple[list[torch.Tensor], dict[str, Any]]] = []
        if optimizer is not None:
            self.attach(optimizer)

    @property
    def ranks(self) -> dict[str, int]:
        """Current rank of every adapter."""
        return rank_pattern(self.model)

    def set_total_steps(self, total_steps: int) -> None:
        """Set the planned number of optimizer steps (for ``config.update_fraction``); checked first, so a
        refused value changes nothing."""
        total_steps = check_int(total_steps, "total_steps", minimum=1)
        schedule = self._make_schedule(total_steps)
        self.total_steps, self._schedule = total_steps, schedule

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Bind the optimizer that trains the adapters (checked now: it must hold every adapter parameter)
        and, unless the controller was built with ``hook=False``, run after each of its steps.

        Wrappers exposing the real optimizer as ``.optimizer`` (accelerate, the HF Trainer) are unwrapped.
        """
        inner = getattr(optimizer, "optimizer", None)
        while isinstance(inner, torch.optim.Optimizer):
            optimizer, inner = inner, getattr(inner, "optimizer", None)
        _refuse_nonzero_initial_state(optimizer)
        self._locate(optimizer)
        self._require_schedule()
        self.detach()
        self.optimizer = optimizer
        self._refresh_gate_groups()
        if self._hook:
            self._hook_handle = optimizer.register_step_post_hook(self._after_optimizer_step)

    def detach(self) -> None:
        """Stop running after the optimizer's steps (the controller keeps its state)."""
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None
        self.optimizer = None

    def step(self) -> AllocationPlan | None:
        """Call right after ``optimizer.step()`` when the controller was built with ``hook=False``.

        Applies the proximal L1 step to the gates and, when due, reallocates ranks. Returns the allocation
        plan when a reallocation ran, else ``None``.
        """
        if self._hook_handle is not None:
            raise RuntimeError(
                "this controller already runs after every optimizer.step() (hook=True); calling step() too "
                "would apply the L1 step twice. Remove the call, or build the controller with hook=False"
            )
        return self._step()

    def _after_optimizer_step(self, *_: Any) -> None:
        self._step()

    def _step(self) -> AllocationPlan | None:
        self._require_optimizer()
        schedule = self._require_schedule()
        self._refuse_merged()
        self.step_count += 1
        self._proximal_step()
        # New components added at or after the last planned step could never train: skip that one.
        at_end = self.total_steps is not None and self.step_count >= self.total_steps
        if not at_end and schedule.is_due(self.step_count):
            return self.reallocate()
        return None

    @torch.no_grad()
    def _proximal_step(self) -> None:
        """``l1ra_core.prox_l1(c, lr, l1_lambda, nonnegative=True, upper=1.0)`` on every gate, in place, as
        three foreach kernels per parameter group without any host synchronisation: for every real c the
        soft-threshold then clip to [0, 1] equals clamp(c - lr * l1_lambda, 0, 1) (tested against prox_l1)."""
        for gates, group in self._current_gate_groups():
            lr = self.config.gate_lr if self.config.gate_lr is not None else group["lr"]
            torch._foreach_sub_(gates, lr * self.config.l1_lambda)
            torch._foreach_clamp_min_(gates, 0.0)
            torch._foreach_clamp_max_(gates, 1.0)

    def reallocate(self) -> AllocationPlan:
        """Prune and reassign ranks now (normally the schedule decides when).

        Moves only the gates to the host, asks :func:`l1ra_core.allocate` for a plan and resizes the
        changed adapters in place: surviving components keep their values and optimizer state, new ones
        start with gate 1, a fresh A row, a zero B column and zero optimizer state.
        """
        optimizer = self._require_optimizer()
        self._refuse_merged()
        _refuse_low_precision_gates(self.adapters)
        names = list(self.adapters)
        flat = torch.cat([layer.gate.detach().reshape(-1) for layer in self.adapters.values()])
        splits = np.cumsum([layer.rank for layer in self.adapters.values()])[:-1]
        gates = dict(zip(names, np.split(flat.to(device="cpu", dtype=torch.float64).numpy(), splits)))
        plan = allocate(
            gates, self.budget, threshold=self.config.threshold, min_rank=self.config.min_rank, max_rank=self.max_ranks
        )
        changed = [p for p in plan.adapters.values() if p.changed]
        if changed:
            where = self._locate(optimizer)  # checks every parameter and its state before any resize
            for adapter_plan in changed:
                swaps = self.adapters[adapter_plan.name].resize(adapter_plan, generator=self.generator)
                for old, new, dim in swaps:
                    _swap_parameter(optimizer, where[id(old)], old, new, adapter_plan, dim)
            self._refresh_gate_groups()
        if self.step_count > 0:  # a reallocation before the first step keeps the initial entry rank_log[0]
            self.rank_log[self.step_count] = self.ranks
        self.last_plan = plan
        if changed and self._on_resize is not None:
            self._on_resize(plan)
        return plan

    def rank_report(self) -> RankReport:
        """``l1ra_core.rank_report`` of the current ranks (totals per module type and per layer)."""
        return rank_report(self.ranks)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: step, budget, schedule length, rank log, RNG state."""
        return {
            "step_count": self.step_count,
            "budget": self.budget,
            "total_steps": self.total_steps,
            "rank_log": {int(k): dict(v) for k, v in self.rank_log.items()},
            "ranks": self.ranks,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. The model must already carry the adapters saved with it.

        Every part is checked before anything changes, so a refused state leaves the controller as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"controller state must be a mapping, got {type(state).__name__}")
        missing = sorted({"step_count", "budget", "total_steps", "rank_log", "ranks", "generator"} - set(state))
        if missing:
            raise ValueError(f"controller state lacks {missing}; pass what L1RAController.state_dict() returned")
        if state["budget"] != self.budget:
            raise ValueError(
                f"saved controller has budget {state['budget']!r}, this one {self.budget}; "
                "build the controller with the saved config"
            )
        step_count = check_int(state["step_count"], "state['step_count']", minimum=0)
        total_steps = state["total_steps"]
        schedule = self._schedule if total_steps is None else self._make_schedule(
            check_int(total_steps, "state['total_steps']", minimum=1)
        )
        log = _rank_log(state["rank_log"])
        if not isinstance(state["ranks"], Mapping) or dict(state["ranks"]) != self.ranks:
            raise ValueError(
                "the model's adapter ranks differ from those the controller state was saved with; load the "
                "adapters saved with this state (load_adapters) into a fresh base model first"
            )
        generator = torch.Generator()
        try:
            generator.set_state(state["generator"])
        except (TypeError, RuntimeError, ValueError) as error:
            raise ValueError(f"state['generator'] is not a torch.Generator state: {error}") from None
        self.step_count, self.rank_log = step_count, log
        self.total_steps = self.total_steps if total_steps is None else int(total_steps)
        self._schedule = schedule
        self.generator.set_state(generator.get_state())

    def _make_schedule(self, total_steps: int | None) -> ReallocationSchedule | None:
        """The schedule for ``total_steps``; ``None`` while ``update_fraction`` has no length to work from."""
        if self.config.update_fraction is not None and total_steps is None:
            return None
        return self.config.schedule(total_steps)

    def _require_schedule(self) -> ReallocationSchedule:
        if self._schedule is None:
            raise ValueError(
                "config.update_fraction needs the planned number of steps: pass total_steps= to the "
                "controller, call set_total_steps, set config.total_steps, or use config.update_interval"
            )
        return self._schedule

    def _refuse_merged(self) -> None:
        # Changing gates or ranks of a merged adapter would make unmerge() subtract another update.
        if any(layer.merged for layer in self.adapters.values()):
            raise RuntimeError("adapters are merged into the base weights; call unmerge_adapters(model) before training")

    def _require_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise RuntimeError("no optimizer attached; call controller.attach(optimizer) first")
        return self.optimizer

    def _refresh_gate_groups(self) -> None:
        """Group the gates by the optimizer parameter group that holds them, so the L1 step can use each
        group's lr. A group is found by the identity of the gate parameters it holds, never by position."""
        optimizer = self._require_optimizer()
        where = self._locate(optimizer)
        groups: dict[int, tuple[list[torch.Tensor], dict[str, Any]]] = {}
        for layer in self.adapters.values():
            group, _ = where[id(layer.gate)]
            groups.setdefault(id(group), ([], group))[0].append(layer.gate)
        self._gate_groups = list(groups.values())

    def _current_gate_groups(self) -> list[tuple[list[torch.Tensor], dict[str, Any]]]:
        """The gate groups, found again if the optimizer's groups changed since (a group inserted before
        them, ``load_state_dict`` replacing the group dicts): each cached group must still be one of the
        optimizer's and still hold its first gate."""
        current = {id(group) for group in self._require_optimizer().param_groups}
        if any(id(group) not in current or not any(p is gates[0] for p in group["params"])
               for gates, group in self._gate_groups):
            self._refresh_gate_groups()
        return self._gate_groups

    def _locate(self, optimizer: torch.optim.Optimizer) -> dict[int, tuple[dict[str, Any], int]]:
        """Map id(parameter) -> (param group, index) and check that every adapter parameter is held
        and that its optimizer state can be resized."""
        where = {id(p): (g, i) for g in optimizer.param_groups for i, p in enumerate(g["params"])}
        missing = [
            (f"{name}.{pname}", getattr(layer, pname))
            for name, layer in self.adapters.items()
            for pname in RANK_DIMS
            if id(getattr(layer, pname)) not in where
        ]
        if missing:
            shapes = {tuple(p.shape) for _, p in missing}
            lookalikes = sum(tuple(p.shape) in shapes for g in optimizer.param_groups for p in g["params"])
            hint = (
                f" It holds {lookalikes} other tensors of the same shapes: probably the adapters of another "
                "copy of the model, or parameters from before a load or resize."
                if lookalikes
                else ""
            )
            raise ValueError(
                f"the optimizer does not hold the L1RA parameters {[n for n, _ in missing][:6]}"
                f"{' ...' if len(missing) > 6 else ''} ({len(missing)} missing).{hint} Create the optimizer "
                "from model.parameters() after inject_adapters/load_adapters (other parameters may be in it "
                "too), and let the controller resize it: never rebuild adapters behind its back."
            )
        for name, layer in self.adapters.items():
            for pname in RANK_DIMS:
                param = getattr(layer, pname)
                for key, value in optimizer.state.get(param, {}).items():
                    if torch.is_tensor(value) and value.shape != param.shape and value.numel() > 1:
                        raise ValueError(
                            f"optimizer state {key!r} of {name}.{pname} has shape {tuple(value.shape)}, not the "
                            f"parameter's {tuple(param.shape)}, so it cannot be resized. L1RA supports "
                            "optimizers whose per-parameter state is scalars or parameter-shaped tensors "
                            "(SGD, Adam, AdamW, RMSprop, Adagrad, ...)"
                        )
        return where


def _refuse_nonzero_initial_state(optimizer: torch.optim.Optimizer) -> None:
    """New components get zero optimizer state at a reallocation; refuse optimizers whose fresh state is
    not zero, since they would treat new components unlike fresh parameters."""
    if isinstance(optimizer, torch.optim.Rprop):
        raise ValueError(
            "L1RA cannot resize Rprop's state: its per-element step sizes start at lr, but the new components "
            "of a reallocation would start at step size 0 instead. Use SGD, Adam, AdamW, RMSprop or Adagrad"
        )
    if isinstance(optimizer, torch.optim.Adagrad):
        values = {group.get("initial_accumulator_value", 0) for group in optimizer.param_groups}
        if values != {0}:
            raise ValueError(
                f"L1RA cannot resize Adagrad's state with initial_accumulator_value={sorted(values)}: the new "
                "components of a reallocation would start with a zero accumulator. Use "
                "initial_accumulator_value=0"
            )


def _refuse_low_precision_gates(adapters: Mapping[str, L1RALayer]) -> None:
    """Gates must stay float32: in bf16/fp16 the L1 step 1 - t rounds back to 1, so nothing would prune."""
    for name, layer in adapters.items():
        if layer.gate.dtype != torch.float32:
            raise TypeError(
                f"the gate of adapter {name!r} is {layer.gate.dtype}, but gates must stay float32 (in low "
                "precision the L1 step rounds away). Cast the base model (model.to(dtype)) before "
                "inject_adapters / load_adapters, not after"
            )


def _rank_log(value: object) -> dict[int, dict[str, int]]:
    """A saved rank log, checked: ``{step >= 0: {adapter name: rank >= 1}}``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"state['rank_log'] must be a mapping of step -> ranks, got {type(value).__name__}")
    log = {}
    for step, ranks in value.items():
        if not isinstance(ranks, Mapping) or not all(isinstance(name, str) for name in ranks):
            raise ValueError(f"state['rank_log'][{step!r}] must map adapter names to ranks")
        ranks_at_step = {name: check_int(rank, f"rank_log rank of {name!r}", minimum=1) for name, rank in ranks.items()}
        log[check_int(step, "rank_log step", minimum=0)] = ranks_at_step
    return log


def _swap_parameter(
    optimizer: torch.optim.Optimizer,
    location: tuple[dict[str, Any], int],
    old: nn.Parameter,
    new: nn.Parameter,
    plan: AdapterPlan,
    dim: int,
) -> None:
    """Put ``new`` where ``old`` was in the optimizer, carrying over the state of the kept components and
    zero state for the new ones (``plan.resize``). Scalar state (e.g. Adam's step) is kept as is."""
    group, index = location
    group["params"][index] = new
    state = optimizer.state.pop(old, None)
    if not state:
        return
    optimizer.state[new] = {
        key: plan.resize(value, axis=dim) if torch.is_tensor(value) and value.shape == old.shape else value
        for key, value in state.items()
    }
