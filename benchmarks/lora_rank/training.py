"""Training: batches of the fine-tuning data, the shared schedule, each method's wrapped model and
optimizer (full, PEFT LoRA, L1RA), and the training loop."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .config import Run, StudyConfig
from .model import projections, target_regex


def batches(sentences: Sequence[str], tokenizer: Any, config: StudyConfig, seed: int) -> Iterable[dict[str, Any]]:
    """Endless shuffled batches (a new permutation per epoch) of right-padded, BOS-prefixed sentences."""
    import torch

    from sfbow_llm.loglik import tokenize_sentences

    ids = [row[: config.max_length] for row in tokenize_sentences(tokenizer, sentences)]
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(ids))
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            rows = [ids[i] for i in order[start:start + config.batch_size]]
            width = max(map(len, rows))
            input_ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for k, row in enumerate(rows):
                input_ids[k, : len(row)] = torch.as_tensor(row)
                mask[k, : len(row)] = 1
            labels = input_ids.masked_fill(mask == 0, -100)
            labels[:, 0] = -100  # the BOS prefix is context, not a target
            yield {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def linear_schedule(optimizer: Any, steps: int) -> Any:
    """10% linear warm-up, then linear decay to 0: the same for every method."""
    import torch

    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))


def prepare(kind: str, model: Any, config: StudyConfig, run: Run, lr: float, steps: int) -> tuple[Any, Any, Any]:
    """Wrap ``model`` for ``kind`` (full, lora, l1ra): returns (model, optimizer, L1RA controller or None)."""
    import torch

    torch.manual_seed(run.seed)
    if kind == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0), None
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        rank = run.rank if run.rank is not None else config.tune_rank
        peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                      target_modules=target_regex(config)))
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        return peft_model, torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0), None
    from l1ra_core import L1RAConfig
    from l1ra_core.torch import L1RAController, adapter_parameter_groups, inject_adapters

    n_adapters = len(projections(model, config))
    budget = run.budget if run.kind != "tune" else config.tune_rank * n_adapters
    assert budget is not None
    r0 = max(1, budget // n_adapters)
    l1ra_config = L1RAConfig(target_modules=target_regex(config), initial_rank=r0, alpha=2 * r0, budget=budget,
                             l1_lambda=config.l1_lambda, total_steps=steps,
                             update_interval=max(1, round(config.update_fraction * steps)),
                             seed=run.seed, init_seed=run.seed)
    inject_adapters(model, l1ra_config)
    optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=lr, gate_lr=config.gate_lr), weight_decay=0.0)
    return model, optimizer, L1RAController(model, l1ra_config, optimizer, total_steps=steps)


def train(model: Any, optimizer: Any, data: Iterable[dict[str, Any]], steps: int, label: str
          ) -> list[float | None]:
    """``steps`` optimizer steps of the causal-LM loss; returns the loss per step. A non-finite loss is
    recorded as None and ends training there (the weights are no longer numbers): the divergence guard
    (:mod:`.guard`) marks such a run."""
    from tqdm import tqdm

    schedule = linear_schedule(optimizer, steps)
    model.train()
    losses: list[float | None] = []
    stream = iter(data)
    for _ in tqdm(range(steps), desc=label, unit="step", leave=False):
        loss = model(**next(stream)).loss
        if not math.isfinite(loss.item()):
            losses.append(None)
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        losses.append(round(loss.item(), 5))
    model.eval()
    return losses
