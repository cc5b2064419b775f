"""What each kind of run computes (base, tune, full, lora, l1ra, truncated, check; speed in
:mod:`.speed`, detox-data in :mod:`.toxicity_arm`): a function of the :class:`.scheduler.Study` and the :class:`.config.Run` returning the run's
result, which the scheduler records."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import Run
from .data import dev_fold, training_sentences
from .diagnostics import adapter_diagnostics, full_update_spectra, plain_name
from .guard import divergence
from .model import l1ra_budgets, projections, target_regex
from .plan import NotReady
from .speed import run_speed
from .toxicity_arm import pairs_dev_nll, run_detox_data
from .training import batches, prepare, train

if TYPE_CHECKING:
    from .scheduler import Study


def run_base(study: Study, run: Run) -> dict[str, Any]:
    model = study.fresh_model()
    if study.references.get("base") is None:
        study.references.store("base", model)
    return {"measures": study.evaluate(model, run.seed)}


def trained(study: Study, kind: str, run: Run, lr: float, sentences: list[Any]
            ) -> tuple[Any, Any, dict[str, Any]]:
    """Train for ``run``: the model, the L1RA controller (or None) and the record every training run keeps:
    rate, loss curve, step time and the divergence guard's verdict (:func:`.guard.divergence`). A diverged
    run is not measured (its numbers would never be averaged in); the plan re-runs it at the next rate down."""
    model, controller, losses, step_seconds = study.train(kind, run, lr, sentences)
    verdict = divergence(losses)
    if verdict["diverged"]:
        print(f"diverged: seed {run.seed} {run.name} at lr {lr:g}, step {verdict['step']}: {verdict['reason']}",
              flush=True)
    return model, controller, {"lr": lr, "losses": losses, "step_seconds": step_seconds, "divergence": verdict}


def run_tune(study: Study, run: Run) -> dict[str, Any]:
    from sfbow_llm.loglik import sentence_log_likelihoods

    assert run.method is not None and run.lr is not None
    fit, dev = dev_fold(study.training_data(), study.config.dev_fraction)
    model, _, record = trained(study, run.method, run, run.lr, fit)
    if record["divergence"]["diverged"]:
        dev_nll = None
    elif study.config.data == "detox":  # chat pairs: the NLL of the answers
        dev_nll = pairs_dev_nll(model, study.lm.tokenizer, dev, study.config)
    else:
        dev_nll = sentence_log_likelihoods(model, study.lm.tokenizer, dev,
                                           batch_size=study.config.eval_batch_size).nll_per_token()
    return {**record, "dev_nll": dev_nll, "dev_sentences": len(dev)}


def run_full(study: Study, run: Run) -> dict[str, Any]:
    lr = run.lr if run.lr is not None else study.tuned_lr("full")
    model, _, record = trained(study, "full", run, lr, study.training_data())
    if record["divergence"]["diverged"]:
        return record
    deltas = study.full_deltas(run.seed, model)
    study.references.store(f"full_seed{run.seed}", model)
    study.save_weights(model, run, trainable_only=False)
    n_adapters = len(deltas)
    spectra = full_update_spectra({n: d.numpy() for n, d in deltas.items()}, l1ra_budgets(study.config, n_adapters))
    return {**record, "spectra": spectra, "measures": study.evaluate(model, run.seed)}


def run_lora(study: Study, run: Run) -> dict[str, Any]:
    lr = run.lr if run.lr is not None else study.tuned_lr("lora")
    if study.load(Run("base", study.config.seeds[0])) is None:
        raise NotReady("the base run has not finished")
    model, _, record = trained(study, "lora", run, lr, study.training_data())
    if record["divergence"]["diverged"]:
        return record
    study.save_weights(model, run, trainable_only=True)
    return {**record, "adapters": adapter_diagnostics(model), "measures": study.evaluate(model, run.seed)}


def run_l1ra(study: Study, run: Run) -> dict[str, Any]:
    lr = run.lr if run.lr is not None else study.tuned_lr("l1ra")
    study.require_references(run.seed)
    model, controller, record = trained(study, "l1ra", run, lr, study.training_data())
    if record["divergence"]["diverged"]:
        return record
    study.save_weights(model, run, trainable_only=True)
    report = controller.rank_report()
    return {**record, "adapters": adapter_diagnostics(model), "budget": controller.budget,
            "reallocations": len(controller.rank_log) - 1, "ranks_by_module_type": report.by_module_type,
            "measures": study.evaluate(model, run.seed)}


def run_truncated(study: Study, run: Run) -> dict[str, Any]:
    """Base + each full-FT projection update replaced by its best rank-r approximation."""
    import torch

    assert run.rank is not None
    study.require_references(run.seed)
    deltas = study.full_deltas(run.seed)
    model = study.fresh_model()
    layers = projections(model, study.config)
    with torch.no_grad():
        for name, delta in deltas.items():
            u, s, vt = torch.linalg.svd(delta.double(), full_matrices=False)
            k = min(run.rank, len(s))
            layers[name].weight += ((u[:, :k] * s[:k]) @ vt[:k]).to(layers[name].weight.dtype)
    return {"measures": study.evaluate(model, run.seed)}


def run_check(study: Study, run: Run) -> dict[str, Any]:
    """PEFT LoRA vs l1ra_core's layer with frozen gates, same initial factors and batches: losses and
    WinoBias gaps must agree to rounding."""
    import torch

    from biasbench import winobias_metrics
    from l1ra_core import L1RAConfig
    from l1ra_core.torch import adapter_layers, inject_adapters
    from sfbow_llm.loglik import sentence_log_likelihoods

    assert run.rank is not None
    steps, lr = study.config.check_steps, study.tuned_lr("lora")
    peft_model, peft_optimizer, _ = prepare("lora", study.fresh_model(), study.config, Run("lora", run.seed,
                                                                                          rank=run.rank), lr, steps)
    ours = study.fresh_model()
    inject_adapters(ours, L1RAConfig(target_modules=target_regex(study.config), initial_rank=run.rank, alpha=2 * run.rank))
    peft_modules = {plain_name(n): m for n, m in peft_model.named_modules()
                    if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})}
    with torch.no_grad():
        for name, layer in adapter_layers(ours).items():
            layer.lora_A.copy_(peft_modules[name].lora_A["default"].weight)
            layer.lora_B.copy_(peft_modules[name].lora_B["default"].weight)
            layer.gate.requires_grad_(False)
    ours_optimizer = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sentences = training_sentences(study.config)
    label = f"check r{run.rank}"
    peft_losses = train(peft_model, peft_optimizer, batches(sentences, study.lm.tokenizer, study.config, run.seed),
                        steps, label + " peft")
    our_losses = train(ours, ours_optimizer, batches(sentences, study.lm.tokenizer, study.config, run.seed),
                       steps, label + " l1ra_core")
    pairs = study.eval_data.winobias[:32]

    def gaps(model: Any) -> np.ndarray:
        return winobias_metrics(pairs, lambda s: sentence_log_likelihoods(
            model, study.lm.tokenizer, s, batch_size=study.config.eval_batch_size).log_likelihood,
            n_resamples=10)[1]

    peft_gaps, our_gaps = gaps(peft_model), gaps(ours)
    return {"lr": lr, "steps": steps, "peft_losses": peft_losses, "l1ra_core_losses": our_losses,
            "max_loss_difference": float(np.max(np.abs(np.subtract(np.asarray(peft_losses, dtype=np.float64), np.asarray(our_losses, dtype=np.float64))))),
            "max_gap_difference": float(np.max(np.abs(peft_gaps - our_gaps))), "pairs": len(pairs)}


RUN_KINDS: dict[str, Callable[[Study, Run], dict[str, Any]]] = {
    "base": run_base, "tune": run_tune, "full": run_full, "lora": run_lora, "l1ra": run_l1ra,
    "truncated": run_truncated, "check": run_check, "speed": run_speed, "detox-data": run_detox_data}
