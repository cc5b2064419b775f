"""Rank diagnostics: spectra of the full fine-tune's updates (energy kept, effective rank, the
``spectral_budget`` oracle), adapters' effective ranks, and the report's L1RA-vs-oracle section."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sfbow_common.tables import markdown_table

from .config import TARGETS, StudyConfig

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

