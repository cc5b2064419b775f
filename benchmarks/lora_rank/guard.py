"""Checks on a training-loss curve: the divergence guard and the "has it flattened" check.

**Divergence** (:func:`divergence`). Step losses of batch 8 are noisy (single batches rise 20-70 % above the
running median in healthy runs and come back), so one high batch is not divergence; a run has diverged when

1. a loss is not finite (training stops there: the weights are no longer numbers), or
2. *blow-up*: a step's loss exceeds ``BLOWUP_FACTOR`` (3) x the median of the up to ``WINDOW`` (10) steps
   before it, or
3. *spike without recovery*: a step's loss exceeds ``SPIKE_FACTOR`` (1.3) x the median of the ``WINDOW``
   steps before it (at least 3 of them), and the run never comes back down: the mean of its last ``WINDOW``
   steps is above ``RECOVERY`` (0.8) x the mean of its first ``WINDOW`` steps.

Calibrated on the 60 training curves of the quick grid (60 steps): healthy runs end at 0.50-0.66 of their
first-10 mean, the one diverged run (seed 1, LoRA rank 8 at 3e-3: 3.9 -> 6.6 at step 8, stuck above 4)
at 0.84 after a 1.45x spike; no healthy run reaches 3x. A diverged run is re-run at the next rate down
(:mod:`.plan`) and never averaged in (:mod:`.report`).

**Flattened** (:func:`flatness`): the least-squares line through the last third of the curve (at least
``WINDOW`` steps); the curve has flattened when that line falls by less than ``FLAT_DROP`` (5 %) of the
window's mean loss across the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

WINDOW = 10
BLOWUP_FACTOR = 3.0
SPIKE_FACTOR = 1.3
SPIKE_MIN_HISTORY = 3
RECOVERY = 0.8
FLAT_DROP = 0.05
MAX_RETRIES = 2  # a diverged run is re-run at most this many times, each at the next rate down

RULE = {"window": WINDOW, "blowup_factor": BLOWUP_FACTOR, "spike_factor": SPIKE_FACTOR,
        "spike_min_history": SPIKE_MIN_HISTORY, "recovery": RECOVERY}


def _checked(losses: Sequence[float | None]) -> list[float | None]:
    if isinstance(losses, (str, bytes)) or not isinstance(losses, Sequence):
        raise TypeError(f"losses must be a sequence of numbers, got {type(losses).__name__}")
    out: list[float | None] = []
    for step, loss in enumerate(losses, 1):
        if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating))):
            raise TypeError(f"losses: step {step} is {loss!r}, not a number")
        out.append(None if loss is None or not math.isfinite(float(loss)) else float(loss))
    return out


def divergence(losses: Sequence[float | None]) -> dict[str, Any]:
    """The guard's verdict on one curve (``None`` or a non-finite value: a non-finite loss), as recorded in
    a run file: ``diverged``, the ``reason`` and 1-based ``step`` when it did, the ``rule`` applied."""
    values = _checked(losses)
    verdict: dict[str, Any] = {"diverged": False, "reason": None, "step": None, "rule": dict(RULE)}
    if None in values:
        step = values.index(None) + 1
        return {**verdict, "diverged": True, "reason": "non-finite loss", "step": step}
    curve = np.asarray(values, dtype=np.float64)
    first_spike = None
    for step in range(1, len(curve)):
        history = np.median(curve[max(0, step - WINDOW):step])
        if curve[step] > BLOWUP_FACTOR * history:
            return {**verdict, "diverged": True, "reason": f"blow-up: {curve[step]:.3g} > {BLOWUP_FACTOR:g} x the "
                    f"running median {history:.3g}", "step": step + 1}
        if first_spike is None and step >= SPIKE_MIN_HISTORY and curve[step] > SPIKE_FACTOR * history:
            first_spike = (step, curve[step], history)
    if first_spike is not None and len(curve) >= WINDOW:
        start, end = float(curve[:WINDOW].mean()), float(curve[-WINDOW:].mean())
        if end > RECOVERY * start:
            step, value, history = first_spike
            return {**verdict, "diverged": True, "step": step + 1,
                    "reason": f"spike without recovery: {value:.3g} > {SPIKE_FACTOR:g} x the running median "
                              f"{history:.3g}, and the last-{WINDOW} mean {end:.3g} > {RECOVERY:g} x the "
                              f"first-{WINDOW} mean {start:.3g}"}
    return verdict


def flatness(losses: Sequence[float | None]) -> dict[str, Any] | None:
    """The last third's least-squares slope (loss per step), the fitted drop across that window relative to
    its mean loss, and ``flattened`` (drop < ``FLAT_DROP``); None for a curve too short (under
    ``WINDOW`` steps in the window) or with a non-finite loss."""
    values = _checked(losses)
    if None in values:
        return None
    curve = np.asarray(values, dtype=np.float64)
    width = max(WINDOW, len(curve) // 3)
    if len(curve) < width or width < 2:
        return None
    tail = curve[-width:]
    steps = np.arange(width, dtype=np.float64)
    slope = float(np.polyfit(steps, tail, 1)[0])
    drop = -slope * (width - 1) / float(tail.mean())
    return {"steps": width, "slope": slope, "relative_drop": drop, "flattened": drop < FLAT_DROP}
