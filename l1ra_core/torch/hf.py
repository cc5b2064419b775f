"""Hugging Face ``Trainer`` integration: a callback that binds the controller to the Trainer's optimizer.

The Trainer builds its optimizer inside ``train()``, so the controller is created without one and the
callback attaches it at ``on_train_begin`` (and fills ``total_steps`` from the Trainer when the schedule
needs it). From then on the controller runs after every optimizer step through its hook. Needs
``transformers``; import this module explicitly (``from l1ra_core.torch.hf import L1RATrainerCallback``).
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("L1RATrainerCallback needs transformers: pip install transformers") from exc

from .controller import L1RAController

__all__ = ["L1RATrainerCallback"]


class L1RATrainerCallback(TrainerCallback):
    """``Trainer(..., callbacks=[L1RATrainerCallback(controller)])``."""

    def __init__(self, controller: L1RAController) -> None:
        self.controller = controller

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if optimizer is None:
            raise RuntimeError("the Trainer passed no optimizer to the callback; cannot attach the L1RA controller")
        if self.controller.total_steps is None:
            self.controller.set_total_steps(state.max_steps)
        self.controller.attach(optimizer)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.controller.detach()
