"""Learning-rate grids that never leave the winner at an edge. A method's grid starts as the configured rates;
when the rate with the lowest dev-fold NLL is the grid's highest (lowest) rate, the grid is extended one step
up (down), by x3 (/3), and tuned again, at most ``StudyConfig.lr_extensions`` times per method (per rank for
LoRA). A diverged rate (:mod:`.guard`) cannot win, and bounds the grid on its side: a winner just below a
diverged rate is not at an edge. When the bound is reached with the winner still at an edge, the winner is
used and the report says so (``at_edge``)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any


def step_rate(lr: float, up: bool) -> float:
    """One grid step up (x3) or down (/3), rounded to 3 significant digits so that run names stay short."""
    return float(f"{lr * 3 if up else lr / 3:.3g}")


def next_rate_down(rates: Sequence[float], lr: float) -> float:
    """The grid's next rate below ``lr``, else one step down from it: where a diverged run is re-run."""
    lower = [rate for rate in rates if rate < lr]
    return max(lower) if lower else step_rate(lr, up=False)


def tune_score(result: dict[str, Any]) -> float | None:
    """A finished tune run's dev-fold NLL, or None when it diverged (then its rate cannot win)."""
    if (result.get("divergence") or {}).get("diverged"):
        return None
    value = result.get("dev_nll")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The state of one method's (and rank's) learning-rate search."""

    rates: tuple[float, ...]  # the grid so far, ascending: configured rates and extensions
    extensions: tuple[float, ...]  # the rates added, in the order they were added
    scores: dict[float, float | None]  # dev NLL of each finished rate; None: diverged
    missing: tuple[float, ...]  # rates of the grid whose tune run has not finished
    winner: float | None  # None while a tune run is missing
    at_edge: str | None  # "top" / "bottom": the winner is still at that edge (extensions used up)

    def to_dict(self) -> dict[str, Any]:
        return {"rates": list(self.rates), "extensions": list(self.extensions),
                "dev_nll": {f"{lr:g}": s for lr, s in self.scores.items()}, "missing": list(self.missing),
                "winner": self.winner, "at_edge": self.at_edge}


def search(configured: Sequence[float], lookup: Callable[[float], dict[str, Any] | None], max_extensions: int,
           what: str) -> Tuning:
    """Replay the search from the finished tune results (``lookup(lr)``: the result, or None when not
    finished): deterministic, so every worker and the report see the same grid. ``what`` names the method in
    the error raised when every rate, extensions included, diverged."""
    rates = sorted(set(configured))
    added: list[float] = []
    while True:
        scores: dict[float, float | None] = {}
        missing = []
        for lr in rates:
            result = lookup(lr)
            if result is None:
                missing.append(lr)
            else:
                scores[lr] = tune_score(result)
        state = functools.partial(Tuning, tuple(rates), tuple(added), scores, tuple(missing))
        if missing:
            return state(None, None)
        valid = {lr: s for lr, s in scores.items() if s is not None}
        best: float | None
        side: str | None
        if not valid:
            best, side = None, "bottom"
        else:
            best = min(valid, key=lambda lr: (valid[lr], lr))
            side = "top" if best == rates[-1] else "bottom" if best == rates[0] else None
            if side is None:
                return state(best, None)
        if len(added) >= max_extensions:
            if best is None:
                raise ValueError(f"every learning rate tried for {what} diverged ({', '.join(f'{r:g}' for r in rates)});"
                                 " give lower rates, or allow more lr_extensions")
            return state(best, side)
        candidate = step_rate(rates[-1] if side == "top" else rates[0], up=side == "top")
        rates = sorted({*rates, candidate})
        added.append(candidate)
