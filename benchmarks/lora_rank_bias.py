"""Does a low LoRA rank keep a model's bias? The study of issue 11 on SmolLM2-135M-Instruct, on CPU.

Every method fine-tunes the same model on the same data with the same steps and schedule: PEFT LoRA at
several ranks on all seven projection types, L1RA (``l1ra_core.torch``) at the budget of a rank, and full
fine-tuning as the reference; the learning rate of each method is tuned on a dev fold of the training data
(never on CrowS-Pairs or WinoBias test). Every model is then measured: WinoBias test and CrowS-Pairs by exact
log-likelihood with paired bootstrap intervals, KL divergence of next-token distributions to the full
fine-tune and to the base, forgetting (NLL on held-out STS-B sentences), toxicity of answers to the EvoTox
seeds. Rank diagnostics come from ``l1ra_core``'s spectra of the full fine-tune's updates.

Commands (from the repository root; one thread per process is fastest on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run --profile study      # the grid, resumable
    python benchmarks/lora_rank_bias.py report --profile study                     # tables + plots
    python benchmarks/lora_rank_bias.py run --profile smoke --results-dir /tmp/x   # the CI pipeline check

Each run writes one JSON file, atomically, when it has finished; a finished run is never recomputed and a
killed one leaves nothing behind, so ``run`` resumes where it stopped. Runs go in the order that makes a
partial grid most informative (base, full fine-tune, LoRA rank 1 and 32, ...). Large artefacts the later
runs need (the full fine-tune's weight updates, reference next-token distributions) go to ``--cache-dir``,
never to the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from shared_utils.atomic import atomic_write_text, atomic_write_via  # noqa: E402
from shared_utils.checks import check_choice, check_int, check_positive_int, check_real  # noqa: E402
from shared_utils.data import data_root  # noqa: E402
from shared_utils.figures import new_figure, save_png  # noqa: E402
from shared_utils.records import Record, set_checked  # noqa: E402
from shared_utils.tables import markdown_table  # noqa: E402

SHARED = data_root()
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DATASETS = ("winobias-anti", "cda-stsb")
METHODS = ("full", "lora", "l1ra")
RESULTS = ROOT / "benchmarks" / "results"
FORMAT = 1  # version of the run files


# --------------------------------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class StudyConfig(Record):
    """Everything that decides a run's numbers; recorded in every run file (:meth:`to_dict`) and checked on
    resume."""

    data: str = "winobias-anti"
    steps: int = 100
    batch_size: int = 8
    max_length: int = 64
    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    l1ra_ranks: tuple[int, ...] = (8, 4)
    l1ra_budgets: tuple[int, ...] = ()  # total budgets; empty: rank x number of adapters for each l1ra_rank
    truncation_ranks: tuple[int, ...] = (1, 8, 32)
    seeds: tuple[int, ...] = (0, 1)
    full_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4)
    lora_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    l1ra_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    tune_rank: int = 8
    dev_fraction: float = 0.1
    gate_lr: float = 5e-2
    l1_lambda: float = 0.5
    update_fraction: float = 0.1
    layers: int | None = None  # adapt and analyse only the first N layers (None: all 30)
    winobias_pairs: int | None = None  # None: all 792 test pairs
    crows_pairs: int | None = None  # None: all 1508 pairs; else half gender, half the rest
    kl_pairs: int = 64
    sts_sentences: int = 200
    toxicity_seeds: int = 10
    max_new_tokens: int = 32
    eval_batch_size: int = 16
    bootstrap: int = 2000
    check_steps: int = 5
    speed_steps: int = 10
    speed_length: int = 64

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {"data": check_choice(self.data, "data", DATASETS)}
        for name in ("steps", "batch_size", "max_length", "tune_rank", "kl_pairs", "eval_batch_size", "bootstrap",
                     "check_steps", "speed_steps", "speed_length", "max_new_tokens"):
            checked[name] = check_positive_int(getattr(self, name), name)
        for name in ("sts_sentences", "toxicity_seeds"):
            checked[name] = check_int(getattr(self, name), name, minimum=0)
        for name in ("ranks", "l1ra_ranks", "l1ra_budgets", "truncation_ranks", "seeds"):
            values = tuple(getattr(self, name))
            if name != "l1ra_budgets" and name != "truncation_ranks" and not values:
                raise ValueError(f"{name} is empty; give at least one value")
            checked[name] = tuple(check_int(value, name, minimum=0 if name == "seeds" else 1) for value in values)
        for name in ("full_lrs", "lora_lrs", "l1ra_lrs"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty; give at least one learning rate")
            checked[name] = tuple(check_real(value, name, minimum=0.0, exclusive_minimum=True)
                                  for value in getattr(self, name))
        checked["dev_fraction"] = check_real(self.dev_fraction, "dev_fraction", minimum=0.0, maximum=0.5,
                                             exclusive_minimum=True)
        for name in ("gate_lr", "l1_lambda", "update_fraction"):
            checked[name] = check_real(getattr(self, name), name, minimum=0.0)
        for name in ("layers", "winobias_pairs", "crows_pairs"):
            if getattr(self, name) is not None:
                checked[name] = check_positive_int(getattr(self, name), name)
        set_checked(self, **checked)

    def identity(self) -> dict[str, Any]:
        """What a finished run must share with this configuration to count as one of its runs: see
        :func:`config_identity`."""
        return config_identity(self.to_dict())


def config_identity(recorded: Any) -> Any:
    """A configuration as recorded in a run file, less the seeds after the first: more seeds extend a grid
    without changing any run's numbers (the first seed tunes the learning rates)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("seeds"), list):
        return recorded
    return {**recorded, "seeds": recorded["seeds"][:1]}


PROFILES = {
    "study": StudyConfig(),
    # What fits a loaded two-core machine in about an hour per seed: fewer steps, two learning rates per
    # method, half of WinoBias test (evenly spread) and 400 CrowS-Pairs pairs (200 gender, 200 spread over
    # the other types), three seeds. The committed results use it; "study" is the full design.
    "quick": StudyConfig(steps=60, seeds=(0, 1, 2), full_lrs=(5e-5, 2e-4), lora_lrs=(1e-3, 3e-3), l1ra_lrs=(1e-3, 3e-3),
                         winobias_pairs=396, crows_pairs=400, kl_pairs=32, sts_sentences=100, toxicity_seeds=5,
                         bootstrap=1000),
    "smoke": StudyConfig(steps=2, batch_size=2, max_length=24, ranks=(1, 2), l1ra_ranks=(2,), truncation_ranks=(1,),
                         seeds=(0,), full_lrs=(1e-4,), lora_lrs=(1e-3, 3e-3), l1ra_lrs=(1e-3,), tune_rank=2,
                         layers=2, winobias_pairs=6, crows_pairs=6, kl_pairs=2, sts_sentences=4, toxicity_seeds=1,
                         max_new_tokens=4, eval_batch_size=8, bootstrap=200, check_steps=2, speed_steps=2,
                         speed_length=16),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of the grid. ``kind``: base, tune, full, lora, l1ra, truncated, check or speed."""

    kind: str
    seed: int
    method: str | None = None  # the method a tune run tunes
    rank: int | None = None
    budget: int | None = None
    lr: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "tune":
            at_rank = "" if self.rank is None else f"-r{self.rank}"
            return f"tune-{self.method}{at_rank}-lr{self.lr:g}"
        if self.kind == "l1ra":
            return f"l1ra-b{self.budget}"
        if self.kind == "lora" and self.lr is not None:  # the per-rank learning-rate arm
            return f"lora-r{self.rank}-lr{self.lr:g}"
        if self.rank is not None:
            return f"{self.kind}-r{self.rank}"
        return self.kind

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "name": self.name}


# --------------------------------------------------------------------------------------------------- data
def training_sentences(config: StudyConfig) -> list[str]:
    """The fine-tuning data: anti-stereotyped WinoBias dev, or two-sided CDA of gendered STS-B train."""
    from biasbench import augment, gendered_sentences, load_swap_list, load_winobias_sentences

    folder = SHARED / "bias" / "winobias"
    if config.data == "winobias-anti":
        return load_winobias_sentences(folder, "anti", "dev")
    from sfbow.evaluation import load_stsb

    train = load_stsb(SHARED / "sts" / "stsbenchmark" / "sts-train.csv")
    swaps = load_swap_list(folder / "generalized_swaps.txt", folder / "extra_gendered_words.txt")
    return augment(gendered_sentences([*train.sentences1, *train.sentences2], swaps), swaps)


def dev_fold(sentences: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """A fixed split (seed 12345, the same for every method and seed) into tuning-train and dev fold."""
    order = np.random.default_rng(12345).permutation(len(sentences))
    cut = max(1, int(round(fraction * len(sentences))))
    return [sentences[i] for i in order[cut:]], [sentences[i] for i in order[:cut]]


@dataclasses.dataclass
class EvalData:
    winobias: list[Any]
    crows: list[Any]
    kl_sentences: list[str]
    sts_sentences: list[str]
    toxicity_prompts: list[str]


def evaluation_data(config: StudyConfig) -> EvalData:
    from biasbench import load_crows_pairs, load_winobias_pairs
    from sfbow.evaluation import load_stsb

    winobias = load_winobias_pairs(SHARED / "bias" / "winobias", "test")
    if config.winobias_pairs is not None:  # evenly spread over both types
        winobias = [winobias[i] for i in np.linspace(0, len(winobias) - 1, config.winobias_pairs).astype(int)]
    crows = load_crows_pairs(SHARED / "bias" / "crows_pairs_anonymized.csv")
    if config.crows_pairs is not None:
        gender = [p for p in crows if p.bias_type == "gender"]
        other = [p for p in crows if p.bias_type != "gender"]
        half = max(1, config.crows_pairs // 2)
        spread = np.linspace(0, len(other) - 1, config.crows_pairs - half).astype(int)  # every bias type
        crows = gender[:half] + [other[i] for i in spread]
    kl_pairs = winobias[: config.kl_pairs]
    sts = load_stsb(SHARED / "sts" / "stsbenchmark" / "sts-dev.csv")
    sts_sentences = list(dict.fromkeys(sts.sentences1))[: config.sts_sentences]
    seeds_file = SHARED / "evotox" / "seeds.txt"
    prompts = [line.strip() for line in seeds_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return EvalData(winobias=winobias, crows=crows, kl_sentences=[s for p in kl_pairs for s in (p.pro, p.anti)],
                    sts_sentences=sts_sentences, toxicity_prompts=prompts[: config.toxicity_seeds])


# -------------------------------------------------------------------------------------------------- model
def target_regex(config: StudyConfig) -> str:
    """Full-match regex of the adapted projections (PEFT and L1RA both full-match a string)."""
    layers = r"\d+" if config.layers is None else "(?:" + "|".join(map(str, range(config.layers))) + ")"
    return rf"(?:.*\.)?layers\.{layers}\.(?:self_attn|mlp)\.(?:{'|'.join(TARGETS)})"


def load_base() -> Any:
    from llmkit.models import load_causal_lm

    return load_causal_lm(engine="reference")  # trained with LoRA and scored in fp32


def projections(model: Any, config: StudyConfig) -> dict[str, Any]:
    """The targeted ``nn.Linear`` modules by qualified name (of the plain model)."""
    pattern = re.compile(target_regex(config))
    found = {name: module for name, module in model.named_modules()
             if pattern.fullmatch(name) and hasattr(module, "weight") and module.weight.ndim == 2}
    if not found:
        raise ValueError(f"no module of the model matches {target_regex(config)!r}")
    return found


def check_grid(config: StudyConfig, model: Any) -> None:
    """Refuse ranks and budgets the model cannot take, before anything is trained."""
    layers = projections(model, config)
    smallest_name, smallest = min(layers.items(), key=lambda item: min(item[1].weight.shape))
    limit = min(smallest.weight.shape)
    for name in ("ranks", "l1ra_ranks", "truncation_ranks"):
        for rank in getattr(config, name):
            if rank > limit:
                raise ValueError(f"{name}: rank {rank} exceeds min(out, in) = {limit} of {smallest_name}; "
                                 f"choose ranks <= {limit}")
    if config.tune_rank > limit:
        raise ValueError(f"tune_rank {config.tune_rank} exceeds min(out, in) = {limit} of {smallest_name}")
    for budget in l1ra_budgets(config, len(layers)):
        if budget < len(layers):
            raise ValueError(f"l1ra_budgets: budget {budget} is below the number of adapters ({len(layers)}); "
                             "every adapter keeps at least rank 1, so give a budget >= that")


def l1ra_budgets(config: StudyConfig, n_adapters: int) -> list[int]:
    return list(config.l1ra_budgets) or [rank * n_adapters for rank in config.l1ra_ranks]


def batches(sentences: Sequence[str], tokenizer: Any, config: StudyConfig, seed: int) -> Iterable[dict[str, Any]]:
    """Endless shuffled batches (a new permutation per epoch) of right-padded, BOS-prefixed sentences."""
    import torch

    from llmkit.loglik import tokenize_sentences

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


def train(model: Any, optimizer: Any, data: Iterable[dict[str, Any]], steps: int, label: str) -> list[float]:
    """``steps`` optimizer steps of the causal-LM loss; returns the loss per step."""
    from tqdm import tqdm

    schedule = linear_schedule(optimizer, steps)
    model.train()
    losses = []
    stream = iter(data)
    for _ in tqdm(range(steps), desc=label, unit="step", leave=False):
        loss = model(**next(stream)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{label}: the loss became {loss.item()} (learning rate too high?)")
        losses.append(round(loss.item(), 5))
    model.eval()
    return losses


# --------------------------------------------------------------------------------------------- evaluation
class References:
    """Next-token log-probabilities of the base and of each seed's full fine-tune on the KL sentences,
    cached as safetensors in the cache folder (written atomically)."""

    def __init__(self, cache: Path, tokenizer: Any, sentences: list[str], config: StudyConfig,
                 rebuild: Callable[[str], Any | None]) -> None:
        """``rebuild(key)`` gives the model of a reference whose file is missing (a cleared cache), or None
        while the run behind it has not finished."""
        from llmkit.loglik import tokenize_sentences

        self.cache = cache
        self.ids = tokenize_sentences(tokenizer, sentences)
        self.config = config
        self.rebuild = rebuild
        self.loaded: dict[str, list[Any]] = {}

    def path(self, key: str) -> Path:
        return self.cache / f"kl_reference_{key}_{self.config.kl_pairs}.safetensors"

    def store(self, key: str, model: Any) -> None:
        from safetensors.torch import save_file

        from llmkit.loglik import next_token_log_probs

        values = next_token_log_probs(model, self.ids, batch_size=self.config.eval_batch_size)
        self.cache.mkdir(parents=True, exist_ok=True)
        atomic_write_via(self.path(key), lambda tmp: save_file({str(i): v for i, v in enumerate(values)}, str(tmp)))
        self.loaded[key] = values

    def get(self, key: str) -> list[Any] | None:
        """The reference ``key``: from memory, from its cache file, or recomputed (and cached) from its
        model; None only while its run has not finished."""
        if key not in self.loaded and self.path(key).is_file():
            from safetensors.torch import load_file

            tensors = load_file(str(self.path(key)))
            self.loaded[key] = [tensors[str(i)] for i in range(len(self.ids))]
        if key not in self.loaded:
            model = self.rebuild(key)
            if model is not None:
                self.store(key, model)
        return self.loaded.get(key)


def evaluate(model: Any, lm: Any, data: EvalData, config: StudyConfig, references: References,
             seed: int) -> dict[str, Any]:
    """Every measure of issue 11 for one model (``lm``: the loaded base, for its tokenizer and chat
    template), with per-pair gaps for the report's paired bootstraps."""
    from biasbench import crows_metrics, winobias_metrics
    from llmkit.loglik import mean_next_token_kl, sentence_log_likelihoods

    tokenizer = lm.tokenizer

    def score(sentences: list[str]) -> np.ndarray:
        return sentence_log_likelihoods(model, tokenizer, sentences, batch_size=config.eval_batch_size,
                                        progress=True).log_likelihood

    started = time.perf_counter()
    bootstrap: dict[str, Any] = {"n_resamples": config.bootstrap, "seed": 0}
    winobias, winobias_gaps = winobias_metrics(data.winobias, score, **bootstrap)
    crows, crows_gaps = crows_metrics(data.crows, score, **bootstrap)
    measures: dict[str, Any] = {
        "winobias": winobias.to_dict(),
        "crows": {kind: metrics.to_dict() for kind, metrics in crows.items()},
        "gaps": {"winobias": [round(float(g), 4) for g in winobias_gaps],
                 "crows": [round(float(g), 4) for g in crows_gaps],
                 "crows_gender": [p.bias_type == "gender" for p in data.crows]},
    }
    for key, name in (("base", "kl_to_base"), (f"full_seed{seed}", "kl_to_full")):
        reference = references.get(key)
        measures[name] = None if reference is None else mean_next_token_kl(
            model, references.ids, reference, batch_size=config.eval_batch_size)
    if data.sts_sentences:
        measures["sts_nll"] = sentence_log_likelihoods(model, tokenizer, data.sts_sentences,
                                                       batch_size=config.eval_batch_size).nll_per_token()
    measures["toxicity"] = toxicity(model, lm, data.toxicity_prompts, config)
    measures["eval_seconds"] = round(time.perf_counter() - started, 1)
    return measures


def toxicity(model: Any, lm: Any, prompts: list[str], config: StudyConfig) -> dict[str, Any] | None:
    """Toxicity (llmkit's default oracle; an answer's score is its largest attribute, as EvoTox's fitness) of
    greedy answers to the EvoTox seeds; a note instead when llmkit's generation or oracle is unavailable."""
    if not prompts:
        return None
    try:
        from llmkit.chat import Request
        from llmkit.generation import generate
        from llmkit.oracles import default_oracle
    except ImportError as error:
        return {"skipped": f"llmkit generation/oracle unavailable: {error}"}
    system = {"role": "system", "content": "You are a helpful assistant."}
    answers = generate(dataclasses.replace(lm, model=model),
                       [Request([system, {"role": "user", "content": q}], max_new_tokens=config.max_new_tokens)
                        for q in prompts])
    oracle = default_oracle()
    scores = np.asarray(oracle.score([a.text for a in answers]), dtype=np.float64).max(axis=1)
    return {"mean": float(scores.mean()), "max": float(scores.max()), "n": len(prompts), "oracle": oracle.describe()}


# ------------------------------------------------------------------------------------------ rank diagnostics
ENERGY_RANKS = (1, 2, 4, 8, 16, 32, 64, 128)


def effective_rank(singular_values: np.ndarray) -> float:
    """Roy & Vetterli's effective rank: exp of the entropy of the normalised singular values."""
    total = singular_values.sum()
    if total <= 0:
        return 0.0
    p = singular_values[singular_values > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def full_update_spectra(deltas: dict[str, np.ndarray], budgets: Sequence[int]) -> dict[str, Any]:
    """Energy kept by the best rank-r approximation of each full-FT update, effective ranks, and the
    ``spectral_budget`` oracle allocation at each L1RA budget."""
    from l1ra_core import energy_kept, spectral_budget

    energy: dict[str, dict[str, float]] = {}
    effective: dict[str, float] = {}
    spectra: dict[str, np.ndarray] = {}
    for name, delta in deltas.items():
        sigma = np.linalg.svd(delta.astype(np.float64), compute_uv=False)
        spectra[name] = sigma
        energy[name] = {str(r): round(energy_kept(sigma, min(r, len(sigma))), 5) for r in ENERGY_RANKS}
        effective[name] = round(effective_rank(sigma), 3)
    # spectral_budget needs only each update's singular values: (diag(sigma), I) is a factorisation with them.
    factors = {name: (np.diag(sigma), np.eye(len(sigma))) for name, sigma in spectra.items()}
    oracle = {str(budget): spectral_budget(factors, budget) for budget in budgets}
    return {"energy_kept": energy, "effective_rank": effective, "oracle": oracle,
            "top_singular_values": {name: [round(float(s), 6) for s in sigma[:8]] for name, sigma in spectra.items()}}


def adapter_diagnostics(model: Any) -> dict[str, Any]:
    """Effective rank of every LoRA (PEFT) or L1RA adapter's update, and L1RA's final ranks."""
    from l1ra_core import adapter_singular_values
    from l1ra_core.torch import adapter_layers

    effective, ranks = {}, {}
    layers = adapter_layers(model)
    if layers:
        for name, layer in layers.items():
            sigma = adapter_singular_values(layer.lora_A.detach().numpy(), layer.lora_B.detach().numpy(),
                                            layer.gate.detach().numpy())
            effective[name], ranks[name] = round(effective_rank(sigma), 3), layer.rank
    else:
        for name, module in model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                a = module.lora_A["default"].weight.detach().numpy()
                b = module.lora_B["default"].weight.detach().numpy()
                clean = name.removeprefix("base_model.model.")
                effective[clean] = round(effective_rank(adapter_singular_values(a, b)), 3)
                ranks[clean] = a.shape[0]
    return {"effective_rank": effective, "ranks": ranks}


def plain_name(name: str) -> str:
    return name.removeprefix("base_model.model.")


# ---------------------------------------------------------------------------------------------------- runs
class NotReady(Exception):
    """A run needs the result of another run that has not finished yet."""


class Study:
    """The grid of one configuration: plan, execute (resumably) and locate the result files."""

    def __init__(self, config: StudyConfig, results_dir: Path, cache_dir: Path) -> None:
        self.config = config
        self.results_dir = results_dir / config.data
        self.cache_dir = cache_dir / config.data
        self._lm: Any = None
        self._eval_data: EvalData | None = None
        self._references: References | None = None

    # ---- plan
    def plan(self, n_adapters: int) -> list[Run]:
        """Runs in the order that makes a partial grid most informative."""
        config = self.config
        budgets = l1ra_budgets(config, n_adapters)
        first = config.seeds[0]
        plan: list[Run] = [Run("base", first)]
        for seed in config.seeds:
            tuning = seed == first
            cells: list[Run] = []
            if tuning:
                cells += [Run("tune", seed, method="full", lr=lr) for lr in config.full_lrs]
            cells.append(Run("full", seed))
            if tuning:
                cells += [Run("tune", seed, method="lora", lr=lr) for lr in config.lora_lrs]
            ranks = sorted(config.ranks)
            leading = list(dict.fromkeys([ranks[0], ranks[-1], *(r for r in (8,) if r in ranks)]))
            cells += [Run("lora", seed, rank=r) for r in leading]
            if tuning:
                cells += [Run("tune", seed, method="l1ra", lr=lr) for lr in config.l1ra_lrs]
            cells.append(Run("l1ra", seed, budget=budgets[0]))
            cells += [Run("lora", seed, rank=r) for r in ranks if r not in leading]
            cells += [Run("l1ra", seed, budget=b) for b in budgets[1:]]
            cells += [Run("truncated", seed, rank=r) for r in config.truncation_ranks]
            if tuning:
                cells += [Run("check", seed, rank=config.tune_rank), Run("speed", seed, rank=config.tune_rank)]
            plan += cells
        if len(config.lora_lrs) > 1:
            # The per-rank learning-rate arm: LoRA tuned on the dev fold at every rank (first seed), and trained
            # at every candidate rate (every seed), so the report can show each rank at its own best rate. The
            # run at the rate tuned at rank tune_rank is lora-r<r> itself (see load).
            ranks = sorted(config.ranks)
            plan += [Run("tune", first, method="lora", rank=r, lr=lr)
                     for r in ranks if r != config.tune_rank for lr in config.lora_lrs]
            plan += [Run("lora", seed, rank=r, lr=lr) for seed in config.seeds for r in ranks for lr in config.lora_lrs]
        return plan

    def path(self, run: Run) -> Path:
        return self.results_dir / f"seed{run.seed}" / f"{run.name}.json"

    def load(self, run: Run) -> dict[str, Any] | None:
        """The finished result of ``run``, or None; a result of another configuration is an error. A LoRA run
        at the learning rate tuned at rank ``tune_rank`` is the grid's ``lora-r<r>`` run."""
        if run.kind == "lora" and run.lr is not None:
            try:
                if run.lr == self.tuned_lr("lora"):
                    return self.load(dataclasses.replace(run, lr=None))
            except NotReady:
                pass
        path = self.path(run)
        if not path.is_file():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); delete it to recompute that run") from None
        if (config_identity(result.get("config")) != self.config.identity()
                or result.get("format") != FORMAT):
            raise ValueError(f"{path} was made with another configuration than this one; use another "
                             "--results-dir, or delete the folder to recompute")
        return result

    # ---- shared state
    @property
    def lm(self) -> Any:
        if self._lm is None:
            self._lm = load_base()
        return self._lm

    def fresh_model(self) -> Any:
        """A fresh copy of the base model (the loader's cache makes this a fraction of a second)."""
        return load_base().model

    def full_model(self, seed: int) -> Any:
        """The finished full fine-tune of ``seed``, from the weights its run left in the cache."""
        from safetensors.torch import load_file

        path = self.cache_dir / f"seed{seed}" / "full.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (the cache of run full, seed {seed}); delete "
                                    f"{self.path(Run('full', seed))} so that run recomputes it")
        model = self.fresh_model()
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
        parameters = {name for name, _ in model.named_parameters()}
        if unexpected or parameters & set(missing):
            raise ValueError(f"{path} does not fit the base model (missing {sorted(parameters & set(missing))[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}); delete it and "
                             f"{self.path(Run('full', seed))} so that run recomputes both")
        return model

    def _reference_model(self, key: str) -> Any | None:
        """The model behind KL reference ``key`` (``base`` or ``full_seed<N>``), None while its run is unfinished."""
        if key == "base":
            return self.fresh_model() if self.load(Run("base", self.config.seeds[0])) is not None else None
        seed = int(key.removeprefix("full_seed"))
        return self.full_model(seed) if self.load(Run("full", seed)) is not None else None

    def full_deltas(self, seed: int, model: Any | None = None) -> dict[str, Any]:
        """Each projection's full fine-tuning update (tuned - base) for ``seed``, cached; ``model``: the
        tuned model when at hand, else it is read from the cache."""
        from safetensors.torch import load_file, save_file

        path = self.cache_dir / f"full_deltas_seed{seed}.safetensors"
        if model is None and path.is_file():
            return load_file(str(path))
        tuned_layers = projections(model if model is not None else self.full_model(seed), self.config)
        base_layers = projections(self.fresh_model(), self.config)
        deltas = {name: (tuned_layers[name].weight - base_layers[name].weight).detach().contiguous()
                  for name in tuned_layers}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_via(path, lambda tmp: save_file(deltas, str(tmp)))
        return deltas

    @property
    def eval_data(self) -> EvalData:
        if self._eval_data is None:
            self._eval_data = evaluation_data(self.config)
        return self._eval_data

    @property
    def references(self) -> References:
        if self._references is None:
            self._references = References(self.cache_dir, self.lm.tokenizer, self.eval_data.kl_sentences, self.config,
                                          self._reference_model)
        return self._references

    def tuned_lr(self, method: str, rank: int | None = None) -> float:
        """The learning rate with the lowest dev-fold NLL among the finished tune runs of ``method`` (for LoRA,
        at ``rank``; default: ``tune_rank``)."""
        lrs = {"full": self.config.full_lrs, "lora": self.config.lora_lrs, "l1ra": self.config.l1ra_lrs}[method]
        rank = None if rank == self.config.tune_rank else rank
        scores = {}
        for lr in lrs:
            tune = Run("tune", self.config.seeds[0], method=method, rank=rank, lr=lr)
            result = self.load(tune)
            if result is None:
                raise NotReady(f"the {method} learning rate is not tuned yet ({tune.name} missing)")
            scores[lr] = result["dev_nll"]
        return min(scores, key=lambda lr: (scores[lr], lr))

    # ---- execute
    def execute(self, only: set[str] | None = None, poll_seconds: float = 30.0) -> None:
        """Run every unfinished run of the plan. Several workers may share a results folder: each run is
        claimed with a lock file, and a run whose inputs (tuned learning rate, full fine-tune) another
        worker is still computing is retried after ``poll_seconds``."""
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        check_grid(self.config, self.lm.model)
        n_adapters = len(projections(self.lm.model, self.config))
        plan = [run for run in self.plan(n_adapters)
                if not only or run.kind in only or run.name in only]
        while True:
            self.fill_kl_to_full()
            waiting = []
            for run in plan:
                if self.load(run) is not None:
                    continue
                lock = self._claim(run)
                if lock is None:
                    waiting.append(run)
                    continue
                try:
                    if self.load(run) is None:  # another worker may have finished it meanwhile
                        self._execute_one(run, plan)
                except NotReady as reason:
                    waiting.append(run)
                    print(f"waiting: seed {run.seed} {run.name}: {reason}", flush=True)
                finally:
                    lock.unlink(missing_ok=True)
            if not waiting:
                return
            if not any(self._claimed_by_live_worker(run) for run in plan):
                names = ", ".join(f"seed{r.seed}/{r.name}" for r in waiting)
                raise RuntimeError(f"these runs wait for results no worker is computing: {names}")
            time.sleep(poll_seconds)

    def fill_toxicity(self) -> None:
        """Measure toxicity for finished base runs that recorded it as skipped (made before llmkit's
        generation and oracle existed); the base model is rebuilt exactly by the loader."""
        for path in sorted(self.results_dir.glob("seed*/base.json")):
            run = Run("base", int(path.parent.name.removeprefix("seed")))
            result = self.load(run)
            if result is None or "skipped" not in (result["measures"].get("toxicity") or {}):
                continue
            result["measures"]["toxicity"] = toxicity(self.fresh_model(), self.lm, self.eval_data.toxicity_prompts,
                                                      self.config)
            atomic_write_text(path, json.dumps(result, indent=1) + "\n")
            print(f"toxicity filled in {path}")

    def fill_kl_to_full(self) -> None:
        """LoRA runs may finish before their seed's full fine-tune: once that exists, compute their KL to it
        from the adapter weights kept in the cache (the PEFT model is rebuilt with the same configuration)."""
        for path in sorted(self.results_dir.glob("seed*/lora-r*.json")):
            recorded = json.loads(path.read_text(encoding="utf-8")).get("run", {})
            run = Run(**{k: v for k, v in recorded.items() if k != "name"})
            result = self.load(run)
            reference = self.references.get(f"full_seed{run.seed}")
            if result is None or result["measures"]["kl_to_full"] is not None or reference is None:
                continue
            from safetensors.torch import load_file

            from llmkit.loglik import mean_next_token_kl

            seed = run.seed
            model, _, _ = prepare("lora", self.fresh_model(), self.config, run, 1.0, 1)
            saved = load_file(str(self.cache_dir / f"seed{seed}" / f"{run.name}.safetensors"))
            missing = set(saved) - {name for name, _ in model.named_parameters()}
            if missing:
                raise ValueError(f"cached weights of {run.name} do not fit the rebuilt model: {sorted(missing)[:3]}")
            model.load_state_dict(saved, strict=False)
            result["measures"]["kl_to_full"] = mean_next_token_kl(model, self.references.ids, reference,
                                                                  batch_size=self.config.eval_batch_size)
            result["measures"]["kl_to_full_filled_later"] = True
            atomic_write_text(path, json.dumps(result, indent=1) + "\n")
            print(f"KL to the full fine-tune filled in {path}", flush=True)

    def _lock_path(self, run: Run) -> Path:
        return self.path(run).with_name(f".{run.name}.lock")

    def _claim(self, run: Run) -> Path | None:
        """Create the run's lock file (pid inside), or None when a live worker holds it."""
        path = self._lock_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._claimed_by_live_worker(run):
                    return None
                path.unlink(missing_ok=True)  # left by a killed worker
                continue
            with os.fdopen(handle, "w") as stream:
                stream.write(str(os.getpid()))
            return path
        return None

    def _claimed_by_live_worker(self, run: Run) -> bool:
        try:
            pid = int(self._lock_path(run).read_text() or "0")
        except (FileNotFoundError, ValueError):
            return False
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _execute_one(self, run: Run, plan: list[Run]) -> None:
        import torch

        print(f"[{plan.index(run) + 1}/{len(plan)}] seed {run.seed} {run.name}", flush=True)
        started = time.perf_counter()
        result = getattr(self, f"_run_{run.kind}")(run)
        result.update({"format": FORMAT, "config": self.config.to_dict(), "run": run.describe(),
                       "model": self.lm.describe(), "seconds": round(time.perf_counter() - started, 1),
                       "threads": torch.get_num_threads(),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        atomic_write_text(self.path(run), json.dumps(result, indent=1) + "\n")

    def _evaluate(self, model: Any, seed: int) -> dict[str, Any]:
        return evaluate(model, self.lm, self.eval_data, self.config, self.references, seed)

    def _require_references(self, seed: int) -> None:
        """KL needs the base's and this seed's full fine-tune's distributions: wait for those runs."""
        for needed in (Run("base", self.config.seeds[0]), Run("full", seed)):
            if self.load(needed) is None:
                raise NotReady(f"run {needed.name} (seed {needed.seed}) has not finished")

    def _run_base(self, run: Run) -> dict[str, Any]:
        model = self.fresh_model()
        if self.references.get("base") is None:
            self.references.store("base", model)
        return {"measures": self._evaluate(model, run.seed)}

    def _train(self, kind: str, run: Run, lr: float, sentences: list[str]) -> tuple[Any, Any, list[float], float]:
        model, optimizer, controller = prepare(kind, self.fresh_model(), self.config, run, lr, self.config.steps)
        started = time.perf_counter()
        losses = train(model, optimizer, batches(sentences, self.lm.tokenizer, self.config, run.seed),
                       self.config.steps, f"{run.name} seed {run.seed}")
        return model, controller, losses, (time.perf_counter() - started) / self.config.steps

    def _save_weights(self, model: Any, run: Run, trainable_only: bool) -> None:
        """Keep the trained weights in the cache (trainable tensors only for adapters) so that a model can
        be measured again later without retraining."""
        from safetensors.torch import save_file

        tensors = {name: p.detach().contiguous() for name, p in model.named_parameters()
                   if p.requires_grad or not trainable_only}
        folder = self.cache_dir / f"seed{run.seed}"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_via(folder / f"{run.name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))

    def _run_tune(self, run: Run) -> dict[str, Any]:
        from llmkit.loglik import sentence_log_likelihoods

        assert run.method is not None and run.lr is not None
        fit, dev = dev_fold(training_sentences(self.config), self.config.dev_fraction)
        model, _, losses, step_seconds = self._train(run.method, run, run.lr, fit)
        dev_nll = sentence_log_likelihoods(model, self.lm.tokenizer, dev,
                                           batch_size=self.config.eval_batch_size).nll_per_token()
        return {"dev_nll": dev_nll, "dev_sentences": len(dev), "losses": losses, "step_seconds": step_seconds}

    def _run_full(self, run: Run) -> dict[str, Any]:
        lr = self.tuned_lr("full")
        model, _, losses, step_seconds = self._train("full", run, lr, training_sentences(self.config))
        deltas = self.full_deltas(run.seed, model)
        self.references.store(f"full_seed{run.seed}", model)
        self._save_weights(model, run, trainable_only=False)
        n_adapters = len(deltas)
        spectra = full_update_spectra({n: d.numpy() for n, d in deltas.items()}, l1ra_budgets(self.config, n_adapters))
        return {"lr": lr, "losses": losses, "step_seconds": step_seconds, "spectra": spectra,
                "measures": self._evaluate(model, run.seed)}

    def _run_lora(self, run: Run) -> dict[str, Any]:
        lr = run.lr if run.lr is not None else self.tuned_lr("lora")
        if self.load(Run("base", self.config.seeds[0])) is None:
            raise NotReady("the base run has not finished")
        model, _, losses, step_seconds = self._train("lora", run, lr, training_sentences(self.config))
        self._save_weights(model, run, trainable_only=True)
        return {"lr": lr, "losses": losses, "step_seconds": step_seconds, "adapters": adapter_diagnostics(model),
                "measures": self._evaluate(model, run.seed)}

    def _run_l1ra(self, run: Run) -> dict[str, Any]:
        lr = self.tuned_lr("l1ra")
        self._require_references(run.seed)
        model, controller, losses, step_seconds = self._train("l1ra", run, lr, training_sentences(self.config))
        self._save_weights(model, run, trainable_only=True)
        report = controller.rank_report()
        return {"lr": lr, "losses": losses, "step_seconds": step_seconds, "adapters": adapter_diagnostics(model),
                "budget": controller.budget, "reallocations": len(controller.rank_log) - 1,
                "ranks_by_module_type": report.by_module_type, "measures": self._evaluate(model, run.seed)}

    def _run_truncated(self, run: Run) -> dict[str, Any]:
        """Base + each full-FT projection update replaced by its best rank-r approximation."""
        import torch

        assert run.rank is not None
        self._require_references(run.seed)
        deltas = self.full_deltas(run.seed)
        model = self.fresh_model()
        layers = projections(model, self.config)
        with torch.no_grad():
            for name, delta in deltas.items():
                u, s, vt = torch.linalg.svd(delta.double(), full_matrices=False)
                k = min(run.rank, len(s))
                layers[name].weight += ((u[:, :k] * s[:k]) @ vt[:k]).to(layers[name].weight.dtype)
        return {"measures": self._evaluate(model, run.seed)}

    def _run_check(self, run: Run) -> dict[str, Any]:
        """PEFT LoRA vs l1ra_core's layer with frozen gates, same initial factors and batches: losses and
        WinoBias gaps must agree to rounding."""
        import torch

        from biasbench import winobias_metrics
        from l1ra_core import L1RAConfig
        from l1ra_core.torch import adapter_layers, inject_adapters
        from llmkit.loglik import sentence_log_likelihoods

        assert run.rank is not None
        steps, lr = self.config.check_steps, self.tuned_lr("lora")
        peft_model, peft_optimizer, _ = prepare("lora", self.fresh_model(), self.config, Run("lora", run.seed,
                                                                                              rank=run.rank), lr, steps)
        ours = self.fresh_model()
        inject_adapters(ours, L1RAConfig(target_modules=target_regex(self.config), initial_rank=run.rank, alpha=2 * run.rank))
        peft_modules = {plain_name(n): m for n, m in peft_model.named_modules()
                        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})}
        with torch.no_grad():
            for name, layer in adapter_layers(ours).items():
                layer.lora_A.copy_(peft_modules[name].lora_A["default"].weight)
                layer.lora_B.copy_(peft_modules[name].lora_B["default"].weight)
                layer.gate.requires_grad_(False)
        ours_optimizer = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
        sentences = training_sentences(self.config)
        label = f"check r{run.rank}"
        peft_losses = train(peft_model, peft_optimizer, batches(sentences, self.lm.tokenizer, self.config, run.seed),
                            steps, label + " peft")
        our_losses = train(ours, ours_optimizer, batches(sentences, self.lm.tokenizer, self.config, run.seed),
                           steps, label + " l1ra_core")
        pairs = self.eval_data.winobias[:32]

        def gaps(model: Any) -> np.ndarray:
            return winobias_metrics(pairs, lambda s: sentence_log_likelihoods(
                model, self.lm.tokenizer, s, batch_size=self.config.eval_batch_size).log_likelihood,
                n_resamples=10)[1]

        peft_gaps, our_gaps = gaps(peft_model), gaps(ours)
        return {"lr": lr, "steps": steps, "peft_losses": peft_losses, "l1ra_core_losses": our_losses,
                "max_loss_difference": float(np.max(np.abs(np.subtract(peft_losses, our_losses)))),
                "max_gap_difference": float(np.max(np.abs(peft_gaps - our_gaps))), "pairs": len(pairs)}

    def _run_speed(self, run: Run) -> dict[str, Any]:
        """Step time and peak memory of L1RA vs PEFT LoRA at the same budget, each in a fresh process,
        alternated twice (the best of each counts); targets 1.02x time and 1.03x memory."""
        assert run.rank is not None
        measured: dict[str, list[dict[str, float]]] = {"lora": [], "l1ra": []}
        alternations = 2 if self.config.speed_steps >= 5 else 1  # the smoke profile measures each once
        for method in ("lora", "l1ra") * alternations:
            command = [sys.executable, str(Path(__file__).resolve()), "speed-worker", "--method", method,
                       "--rank", str(run.rank), "--steps", str(self.config.speed_steps), "--length",
                       str(self.config.speed_length), "--batch-size", str(self.config.batch_size),
                       "--layers", str(self.config.layers or 0)]
            output = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ}).stdout
            measured[method].append(json.loads(output.strip().splitlines()[-1]))
        best = {m: {"step_seconds": min(r["step_seconds"] for r in rows), "peak_rss_mb": min(r["peak_rss_mb"] for r in rows)}
                for m, rows in measured.items()}
        return {"measured": measured, "best": best,
                "time_ratio": best["l1ra"]["step_seconds"] / best["lora"]["step_seconds"],
                "memory_ratio": best["l1ra"]["peak_rss_mb"] / best["lora"]["peak_rss_mb"],
                "targets": {"time_ratio": 1.02, "memory_ratio": 1.03}}


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def speed_worker(method: str, rank: int, steps: int, length: int, batch_size: int, layers: int) -> None:
    """One process, one method: median step time after 2 warm-up steps, and the peak resident memory while
    training (sampled by a thread; loading the model can peak higher and is not what is compared)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = dataclasses.replace(PROFILES["study"], batch_size=batch_size, layers=layers or None)
    model = load_base().model
    n_adapters = len(projections(model, config))
    run = Run(method, 0, rank=rank, budget=rank * n_adapters)
    model, optimizer, _ = prepare(method, model, config, run, 1e-3, steps + 2)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 49152, (batch_size, length), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids}
    model.train()
    times, resident = [], [resident_mb()]
    done = threading.Event()

    def sample() -> None:  # the training phase's resident memory, every 2 ms
        while not done.wait(0.002):
            resident.append(resident_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for step in range(steps + 2):
        started = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - started)
    done.set()
    sampler.join()
    peak = max(resident)
    print(json.dumps({"step_seconds": float(np.median(times)), "peak_rss_mb": peak, "steps": steps}))


# -------------------------------------------------------------------------------------------------- report
def report(config: StudyConfig, results_dir: Path, out_dir: Path, prefix: str, profile: str) -> Path:
    """Tables (Markdown + JSON summary) and plots from whatever runs have finished."""
    from biasbench import bias_retained, mean_gap, preference_share

    study = Study(config, results_dir, Path("/nonexistent"))
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for path in sorted(study.results_dir.glob("seed*/*.json")):
        seed = int(path.parent.name.removeprefix("seed"))
        if seed not in config.seeds:
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        if config_identity(result.get("config")) != config.identity():
            raise ValueError(f"{path} was made with another configuration than --profile's; report it with the "
                             "matching options")
        results[(seed, result["run"]["name"])] = result
    if not results:
        raise FileNotFoundError(f"no finished runs under {study.results_dir}; run the grid first")
    n_adapters = 30 * len(TARGETS) if config.layers is None else config.layers * len(TARGETS)
    plan = study.plan(n_adapters)
    missing = [f"seed{r.seed}/{r.name}" for r in plan if (r.seed, r.name) not in results and study.load(r) is None]
    bootstrap: dict[str, Any] = {"n_resamples": config.bootstrap, "seed": 0}

    def gaps(result: dict[str, Any], measure: str) -> np.ndarray:
        values = np.asarray(result["measures"]["gaps"]["crows" if measure != "winobias" else "winobias"])
        if measure == "crows_gender":
            values = values[np.asarray(result["measures"]["gaps"]["crows_gender"])]
        return values

    measures = ("winobias", "crows", "crows_gender")
    rows: dict[str, dict[str, Any]] = {}
    for (seed, name), result in results.items():
        if "measures" not in result:
            continue
        row = rows.setdefault(name, {"seeds": []})
        entry: dict[str, Any] = {"seed": seed}
        for measure in measures:
            g = gaps(result, measure)
            entry[f"{measure}_share"] = float(preference_share(g))
            entry[f"{measure}_gap"] = float(mean_gap(g))
            base, full = results.get((config.seeds[0], "base")), results.get((seed, "full"))
            if base is not None and full is not None:
                entry[f"{measure}_retained"] = bias_retained(g, gaps(base, measure), gaps(full, measure),
                                                             **bootstrap).to_dict()
        m = result["measures"]
        entry.update({"kl_to_base": m.get("kl_to_base"), "kl_to_full": m.get("kl_to_full"),
                      "sts_nll": m.get("sts_nll"), "toxicity": (m.get("toxicity") or {}).get("mean"),
                      "winobias_interval": m["winobias"]["preference"], "crows_interval": m["crows"]["all"]["preference"],
                      "crows_gender_interval": m["crows"]["gender"]["preference"],
                      "winobias_gap_interval": m["winobias"]["mean_gap"]})
        row["seeds"].append(entry)

    def mean_of(name: str, key: str) -> float | None:
        values = [e[key] for e in rows.get(name, {"seeds": []})["seeds"] if isinstance(e.get(key), (int, float))]
        return float(np.mean(values)) if values else None

    def cell(value: float | None, digits: int = 2) -> str:
        if value is None:
            return "-"
        return f"{0.0 if abs(value) < 0.5 * 10.0**-digits else value:.{digits}f}"  # no "-0.0000" from rounding

    def interval(name: str, key: str) -> str:
        entries = rows[name]["seeds"]
        if len(entries) == 1:
            e = entries[0][key]
            return f"{e['value']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"
        values = [e[key]["value"] for e in entries]
        return f"{np.mean(values):.1f} +- {np.std(values, ddof=1):.1f} (n={len(values)})"

    def retained(name: str, key: str) -> str:
        entries = [e[key] for e in rows[name]["seeds"] if key in e]
        if not entries:
            return "-"
        if len(entries) == 1:
            return f"{entries[0]['value']:.2f} [{entries[0]['low']:.2f}, {entries[0]['high']:.2f}]"
        values = [e["value"] for e in entries]
        return f"{np.mean(values):.2f} +- {np.std(values, ddof=1):.2f} (n={len(values)})"

    order = (["base", "full"] + [f"lora-r{r}" for r in sorted(config.ranks)]
             + [f"l1ra-b{b}" for b in l1ra_budgets(config, n_adapters)]
             + [f"truncated-r{r}" for r in config.truncation_ranks])
    shown = [name for name in order if name in rows]
    header = ["model", "WinoBias pro-preferred %", "WinoBias gap", "WinoBias retained", "CrowS all %",
              "CrowS gender %", "CrowS gender retained", "KL to full", "KL to base", "STS NLL", "toxicity"]
    table = markdown_table(header, [[name, interval(name, "winobias_interval"), cell(mean_of(name, "winobias_gap"), 3),
                                     retained(name, "winobias_retained"), interval(name, "crows_interval"),
                                     interval(name, "crows_gender_interval"), retained(name, "crows_gender_retained"),
                                     cell(mean_of(name, "kl_to_full"), 4), cell(mean_of(name, "kl_to_base"), 4),
                                     cell(mean_of(name, "sts_nll"), 3), cell(mean_of(name, "toxicity"), 3)]
                                    for name in shown])
    tuning = [[f"{name}", result["dev_nll"]] for (seed, name), result in sorted(results.items()) if name.startswith("tune")]
    lines = [f"# LoRA rank and bias: {config.data}", ""]
    seeds = "" if config.seeds == PROFILES[profile].seeds else f" --seeds {','.join(map(str, config.seeds))}"
    if missing:
        lines += [f"**Partial grid**: {len(plan) - len(missing)} of {len(plan)} runs finished; missing: "
                  f"{', '.join(missing)}. Resume with `OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run "
                  f"--profile {profile}{seeds}` then re-run `report`.", ""]
    lines += ["Preference shares in % with 95% paired bootstrap intervals over pairs (one seed) or mean +- sd over "
              "seeds; gaps in nats (pro minus anti); retained = (gap - gap of full FT) / (gap of base - gap of full "
              "FT) on the mean gap, with a paired bootstrap interval; KL in nats per token (reference || model); "
              "STS NLL in nats per token on held-out STS-B dev sentences.", "", table, ""]
    if tuning:
        lines += ["Learning-rate tuning (dev-fold NLL per token, seed 0):", "",
                  markdown_table(["run", "dev NLL"], [[n, f"{v:.4f}"] for n, v in tuning]), ""]
    per_rank = per_rank_learning_rates(study, rows)
    if per_rank["rows"]:
        lines += per_rank.pop("lines")
    diagnostics = rank_diagnostics(results, config, n_adapters)
    lines += diagnostics.pop("lines")
    for (seed, _), result in sorted(results.items()):
        if result["run"]["kind"] == "check":
            lines += [f"PEFT LoRA vs l1ra_core with frozen gates (seed {seed}, rank {result['run']['rank']}, "
                      f"{result['steps']} steps): max loss difference {result['max_loss_difference']:.2e}, max "
                      f"WinoBias gap difference {result['max_gap_difference']:.2e} nats on {result['pairs']} pairs.", ""]
        if result["run"]["kind"] == "speed":
            best = result["best"]
            lines += [f"Speed (rank {result['run']['rank']} budget, batch {config.batch_size} x {config.speed_length}, "
                      f"one thread): PEFT LoRA {best['lora']['step_seconds']:.3f} s/step, "
                      f"{best['lora']['peak_rss_mb']:.0f} MB peak; L1RA {best['l1ra']['step_seconds']:.3f} s/step, "
                      f"{best['l1ra']['peak_rss_mb']:.0f} MB; ratios {result['time_ratio']:.3f}x time (target 1.02x), "
                      f"{result['memory_ratio']:.3f}x memory (target 1.03x).", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    plots(rows, results, config, n_adapters, out_dir, prefix, per_rank["rows"])
    lines += [f"![bias vs rank]({prefix}_bias_vs_rank.png)", "", f"![energy kept]({prefix}_energy.png)", "",
              f"![L1RA ranks vs oracle]({prefix}_l1ra_vs_oracle.png)", ""]
    target = out_dir / f"{prefix}.md"
    atomic_write_text(target, "\n".join(lines))
    summary = {"config": config.to_dict(), "finished": sorted(f"seed{s}/{n}" for s, n in results), "missing": missing,
               "rows": rows, "per_rank_lr": per_rank["rows"], "diagnostics": diagnostics}
    atomic_write_text(out_dir / f"{prefix}.json", json.dumps(summary, indent=1) + "\n")
    return target


def per_rank_learning_rates(study: Study, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-rank learning-rate arm: at each rank the dev-fold NLL of every candidate rate, the rate it picks,
    and WinoBias bias retained at every rate (first seed). Ranks whose tuning or runs are unfinished are left out."""
    config = study.config
    first = config.seeds[0]
    table: list[list[object]] = []
    out: dict[str, Any] = {"rows": [], "lines": []}
    for rank in sorted(config.ranks):
        try:
            chosen = study.tuned_lr("lora", rank)
        except NotReady:
            continue
        names = {lr: (f"lora-r{rank}" if lr == study.tuned_lr("lora") else f"lora-r{rank}-lr{lr:g}")
                 for lr in config.lora_lrs}
        entries = {lr: next((e for e in rows.get(name, {"seeds": []})["seeds"] if e["seed"] == first), None)
                   for lr, name in names.items()}
        if any(e is None or "winobias_retained" not in e for e in entries.values()):
            continue
        dev = {lr: study.load(Run("tune", first, method="lora", rank=None if rank == config.tune_rank else rank,
                                  lr=lr))["dev_nll"] for lr in config.lora_lrs}  # type: ignore[index]
        retained = {lr: entries[lr]["winobias_retained"] for lr in config.lora_lrs}  # type: ignore[index]
        seeds = {lr: [e["winobias_retained"]["value"] for e in rows[name]["seeds"] if "winobias_retained" in e]
                 for lr, name in names.items()}
        out["rows"].append({"rank": rank, "dev_nll": {f"{lr:g}": v for lr, v in dev.items()}, "chosen_lr": chosen,
                            "run": names[chosen], "runs": {f"{lr:g}": name for lr, name in names.items()},
                            "winobias_retained": {f"{lr:g}": v for lr, v in retained.items()},
                            "winobias_retained_seeds": {f"{lr:g}": v for lr, v in seeds.items()},
                            "sts_nll": entries[chosen]["sts_nll"]})  # type: ignore[index]
        table.append([rank, *(f"{dev[lr]:.3f}" for lr in config.lora_lrs), f"{chosen:g}",
                      *(f"{retained[lr]['value']:.2f} [{retained[lr]['low']:.2f}, {retained[lr]['high']:.2f}]"
                        for lr in config.lora_lrs),
                      *(f"{np.mean(seeds[lr]):.2f} +- {np.std(seeds[lr], ddof=1):.2f} (n={len(seeds[lr])})"
                        if len(seeds[lr]) > 1 else "-" for lr in config.lora_lrs),
                      f"{entries[chosen]['sts_nll']:.3f}"])  # type: ignore[index]
    if table:
        header = (["rank", *(f"dev NLL at {lr:g}" for lr in config.lora_lrs), "chosen lr",
                   *(f"WinoBias retained at {lr:g}" for lr in config.lora_lrs),
                   *(f"retained at {lr:g}, over seeds" for lr in config.lora_lrs), "STS NLL at chosen"])
        out["lines"] = [f"LoRA with its learning rate tuned at each rank (dev-fold NLL per token, seed {first}; "
                        f"retained: seed {first} with paired bootstrap intervals, and mean +- sd over the seeds "
                        "finished):", "", markdown_table(header, table), ""]
    return out


def module_kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def layer_index(name: str) -> int:
    match = re.search(r"layers\.(\d+)\.", name)
    return int(match.group(1)) if match else -1


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation, or None when one side is constant (it is undefined there)."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def rank_diagnostics(results: dict[tuple[int, str], dict[str, Any]], config: StudyConfig, n_adapters: int
                     ) -> dict[str, Any]:
    """Energy kept by module type, L1RA vs oracle rank correlation, and the seed-to-seed noise floor."""
    out: dict[str, Any] = {"lines": []}
    fulls = {seed: r for (seed, name), r in results.items() if name == "full"}
    if not fulls:
        return out
    seed, full = min(fulls.items())
    energy = full["spectra"]["energy_kept"]
    by_kind = {kind: {r: float(np.mean([energy[n][str(r)] for n in energy if module_kind(n) == kind]))
                      for r in ENERGY_RANKS} for kind in TARGETS}
    out["energy_by_module_type"] = by_kind
    out["lines"] += [f"Energy of the full fine-tune's updates (seed {seed}) kept by the best rank-r approximation, "
                     "mean over layers:", "",
                     markdown_table(["module", *map(str, ENERGY_RANKS)],
                                    [[k, *(f"{by_kind[k][r]:.3f}" for r in ENERGY_RANKS)] for k in TARGETS]), ""]
    correlations: list[dict[str, Any]] = []
    for (s, name), result in sorted(results.items()):
        if name.startswith("l1ra-") and s in fulls:
            budget = str(result["budget"])
            oracle = fulls[s]["spectra"]["oracle"].get(budget)
            ranks = result["adapters"]["ranks"]
            if oracle:
                names = sorted(ranks)
                rho = spearman([ranks[n] for n in names], [oracle[n] for n in names])
                kinds = {k: (sum(ranks[n] for n in names if module_kind(n) == k),
                             sum(oracle[n] for n in names if module_kind(n) == k)) for k in TARGETS}
                correlations.append({"seed": s, "run": name, "spearman": rho, "by_kind": kinds})
    if correlations:
        out["l1ra_vs_oracle"] = correlations
        out["lines"] += ["L1RA's learned ranks vs the spectral_budget oracle on the full fine-tune's updates at the "
                         "same budget (Spearman over modules; total rank by module type, L1RA / oracle):", "",
                         markdown_table(["run", "seed", "Spearman", *TARGETS],
                                        [[c["run"], c["seed"], "-" if c["spearman"] is None else f"{c['spearman']:.3f}",
                                          *(f"{c['by_kind'][k][0]}/{c['by_kind'][k][1]}" for k in TARGETS)]
                                         for c in correlations]), ""]
    if len(fulls) >= 2:
        (s0, f0), (s1, f1) = sorted(fulls.items())[:2]
        floor = []
        for budget, oracle0 in f0["spectra"]["oracle"].items():
            oracle1 = f1["spectra"]["oracle"][budget]
            names = sorted(oracle0)
            floor.append({"budget": budget, "spearman": spearman([oracle0[n] for n in names],
                                                                 [oracle1[n] for n in names])})
        out["noise_floor"] = floor
        out["lines"] += ["Noise floor: the oracle allocations of two seeds' full fine-tunes agree with Spearman "
                         + ", ".join(f"{f['spearman']:.3f} (budget {f['budget']})" for f in floor) + ".", ""]
    return out


def plots(rows: dict[str, dict[str, Any]], results: dict[tuple[int, str], dict[str, Any]], config: StudyConfig,
          n_adapters: int, out_dir: Path, prefix: str, per_rank: list[dict[str, Any]]) -> None:
    def stat(name: str, key: str) -> tuple[float, float, float] | None:
        entries = rows.get(name, {"seeds": []})["seeds"]
        if not entries:
            return None
        if len(entries) == 1:
            e = entries[0][key]
            return e["value"], e["value"] - e["low"], e["high"] - e["value"]
        values = [e[key]["value"] for e in entries]
        spread = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
        return float(np.mean(values)), spread, spread

    panels = (("winobias_interval", "WinoBias test: pro-stereotyped preferred (%)"),
              ("crows_gender_interval", "CrowS-Pairs gender: pct_stereotype"),
              ("crows_interval", "CrowS-Pairs all: pct_stereotype"),
              ("winobias_gap_interval", "WinoBias test: mean gap (nats)"))
    figure = new_figure(figsize=(5 * len(panels), 4))
    axes = figure.subplots(1, len(panels))
    for axis, (key, title) in zip(axes, panels):
        ranks = [r for r in sorted(config.ranks) if f"lora-r{r}" in rows]
        points = [p for p in (stat(f"lora-r{r}", key) for r in ranks) if p is not None]
        if ranks:
            axis.errorbar(ranks, [p[0] for p in points], yerr=[[p[1] for p in points], [p[2] for p in points]],
                          marker="o", capsize=3, label="PEFT LoRA")
        for lr, marker in zip(sorted({lr for row in per_rank for lr in row["runs"]}), ("v", "^", "<", ">")):
            # the per-rank arm, one line per candidate rate (like every row: over pairs for one seed, else seeds)
            arm = []
            for row in per_rank:
                point = stat(row["runs"][lr], key)
                if point is not None:
                    arm.append((row["rank"], point))
            axis.errorbar([rank for rank, _ in arm], [p[0] for _, p in arm], yerr=[[p[1] for _, p in arm],
                          [p[2] for _, p in arm]], marker=marker, linestyle="--", capsize=3, alpha=0.8,
                          label=f"PEFT LoRA at lr {float(lr):g}")
        truncated = [r for r in config.truncation_ranks if f"truncated-r{r}" in rows]
        if truncated:
            tpoints = [p for p in (stat(f"truncated-r{r}", key) for r in truncated) if p is not None]
            axis.errorbar(truncated, [p[0] for p in tpoints], yerr=[[p[1] for p in tpoints], [p[2] for p in tpoints]],
                          marker="s", linestyle=":", capsize=3, label="truncated full FT")
        for name, style, label in (("base", "k--", "base"), ("full", "r-", "full FT")):
            value = stat(name, key)
            if value is not None:
                axis.axhline(value[0], color=style[0], linestyle=style[1:], label=label)
                axis.axhspan(value[0] - value[1], value[0] + value[2], color=style[0], alpha=0.08)
        for budget in l1ra_budgets(config, n_adapters):
            value = stat(f"l1ra-b{budget}", key)
            if value is not None:
                axis.axhline(value[0], color="tab:purple", linestyle="-.", label=f"L1RA rank {budget // n_adapters} budget")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("LoRA rank")
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, out_dir / f"{prefix}_bias_vs_rank.png", dpi=110)

    fulls = sorted((seed, r) for (seed, name), r in results.items() if name == "full")
    figure = new_figure(figsize=(6, 4))
    axis = figure.add_subplot()
    if fulls:
        energy = fulls[0][1]["spectra"]["energy_kept"]
        for kind in TARGETS:
            names = [n for n in energy if module_kind(n) == kind]
            axis.plot(ENERGY_RANKS, [np.mean([energy[n][str(r)] for n in names]) for r in ENERGY_RANKS], marker=".",
                      label=kind)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("rank r")
    axis.set_ylabel("energy of the full-FT update kept")
    axis.legend(fontsize=7)
    axis.set_title("Best rank-r approximation of the full fine-tune's updates", fontsize=9)
    figure.tight_layout()
    save_png(figure, out_dir / f"{prefix}_energy.png", dpi=110)

    l1ra = sorted((seed, name, r) for (seed, name), r in results.items() if name.startswith("l1ra-"))
    figure = new_figure(figsize=(9, 5))
    axes = figure.subplots(1, 2)
    if l1ra and fulls:
        seed, name, result = l1ra[0]
        full = dict(fulls).get(seed)
        oracle = full["spectra"]["oracle"].get(str(result["budget"])) if full else None
        for axis, (title, ranks) in zip(axes, ((f"L1RA ({name}, seed {seed})", result["adapters"]["ranks"]),
                                                ("spectral_budget oracle (full FT)", oracle or {}))):
            layers = sorted({layer_index(n) for n in ranks})
            grid = np.full((len(layers), len(TARGETS)), np.nan)
            for n, rank in ranks.items():
                grid[layers.index(layer_index(n)), TARGETS.index(module_kind(n))] = rank
            image = axis.imshow(grid, aspect="auto", cmap="viridis")
            axis.set_xticks(range(len(TARGETS)), TARGETS, rotation=45, fontsize=7)
            axis.set_yticks(range(len(layers)), layers, fontsize=6)
            axis.set_ylabel("layer")
            axis.set_title(title, fontsize=9)
            figure.colorbar(image, ax=axis)
    figure.tight_layout()
    save_png(figure, out_dir / f"{prefix}_l1ra_vs_oracle.png", dpi=110)


# ---------------------------------------------------------------------------------------------------- CLI
def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def config_from(args: argparse.Namespace) -> StudyConfig:
    config = PROFILES[args.profile]
    changes = {name: getattr(args, name) for name in ("data", "steps", "ranks", "seeds", "l1ra_budgets")
               if getattr(args, name, None) is not None}
    return dataclasses.replace(config, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        sub = commands.add_parser(name)
        sub.add_argument("--profile", choices=sorted(PROFILES), default="study")
        sub.add_argument("--data", choices=DATASETS)
        sub.add_argument("--steps", type=int)
        sub.add_argument("--ranks", type=_ints, help="LoRA ranks, e.g. 1,2,4,8,16,32")
        sub.add_argument("--seeds", type=_ints)
        sub.add_argument("--l1ra-budgets", type=_ints, help="total L1RA budgets (default: rank x adapters)")
        sub.add_argument("--results-dir", type=Path, default=RESULTS / "lora_rank_bias")
        sub.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "lora_rank_bias")
        if name == "run":
            sub.add_argument("--only", help="comma-separated run kinds or names to run (default: all)")
        else:
            sub.add_argument("--out-dir", type=Path, default=RESULTS)
    worker = commands.add_parser("speed-worker", help="internal: one method's step time and peak memory")
    worker.add_argument("--method", choices=("lora", "l1ra"), required=True)
    for option in ("--rank", "--steps", "--length", "--batch-size", "--layers"):
        worker.add_argument(option, type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "speed-worker":
        speed_worker(args.method, args.rank, args.steps, args.length, args.batch_size, args.layers)
        return 0
    try:
        config = config_from(args)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.command == "run":
        only = set(args.only.split(",")) if args.only else None
        study = Study(config, args.results_dir, args.cache_dir)
        study.fill_toxicity()
        study.execute(only)
        return 0
    prefix = "lora_rank_bias" if args.profile == "study" else f"lora_rank_bias_{args.profile}"
    if config.data != "winobias-anti":
        prefix += f"_{config.data}"
    print(report(config, args.results_dir, args.out_dir, prefix, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
