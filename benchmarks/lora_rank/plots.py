"""The report's figures: bias by LoRA rank (with the per-rank learning-rate arm), energy kept by rank,
and L1RA's learned ranks beside the oracle's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.figures import new_figure, save_png

from .config import TARGETS, StudyConfig
from .diagnostics import ENERGY_RANKS, layer_index, module_kind
from .guard import divergence
from .model import l1ra_budgets
from .stats import t_interval


def plots(rows: dict[str, dict[str, Any]], results: dict[tuple[int, str], dict[str, Any]], config: StudyConfig,
          n_adapters: int, out_dir: Path, prefix: str, per_rank: list[dict[str, Any]]) -> None:
    def stat(name: str, key: str) -> tuple[float, float, float] | None:
        entries = rows.get(name, {"seeds": []})["seeds"]
        if not entries:
            return None
        if len(entries) == 1:
            e = entries[0][key]
            return e["value"], e["value"] - e["low"], e["high"] - e["value"]
        interval = t_interval([e[key]["value"] for e in entries])  # over seeds: t, n - 1 dof
        assert interval is not None and interval.half_width is not None
        return interval.mean, interval.half_width, interval.half_width

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




def loss_curves(results: dict[tuple[int, str], dict[str, Any]], out_dir: Path, prefix: str) -> None:
    """Training-loss curves of every training run (not the tune runs): one panel each for full FT, LoRA
    (by rank) and L1RA; every seed drawn, diverged runs dashed in red."""
    panels = {"full": "full fine-tuning", "lora": "PEFT LoRA (colour: rank)", "l1ra": "L1RA (colour: budget)"}
    figure = new_figure(figsize=(5 * len(panels), 4))
    axes = dict(zip(panels, figure.subplots(1, len(panels))))
    colours: dict[str, Any] = {}
    for (seed, name), result in sorted(results.items()):
        kind, losses = result["run"]["kind"], result.get("losses")
        if kind not in panels or not isinstance(losses, list) or not losses:
            continue
        verdict = result.get("divergence") or divergence(losses)
        group = f"{kind}-r{result['run']['rank']}" if kind == "lora" else f"{kind}-b{result['run'].get('budget')}"
        curve = [np.nan if v is None else v for v in losses]
        if verdict["diverged"]:
            axes[kind].plot(range(1, len(curve) + 1), curve, color="red", linestyle="--", linewidth=1,
                            label=f"diverged: {name} seed {seed}")
            continue
        line = axes[kind].plot(range(1, len(curve) + 1), curve, linewidth=0.7, alpha=0.6, color=colours.get(group),
                               label=None if group in colours else (group if kind != "full" else "full"))
        colours.setdefault(group, line[0].get_color())
    for kind, axis in axes.items():
        axis.set_xlabel("step")
        axis.set_ylabel("training loss (nats per token)")
        axis.set_title(panels[kind], fontsize=9)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6)
    figure.tight_layout()
    save_png(figure, out_dir / f"{prefix}_loss.png", dpi=110)
