"""The report: Markdown tables and a JSON summary (and the plots) from whatever runs have finished, read
through :class:`.store.Results` (the report never trains, loads a model or touches the cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shared_utils.atomic import atomic_write_text
from shared_utils.tables import markdown_table

from .config import PROFILES, TARGETS, Run, StudyConfig, config_identity
from .detox_report import detox_lines, detox_rows
from .diagnostics import rank_diagnostics
from .model import l1ra_budgets
from .plan import NotReady
from .plots import plots
from .store import Results


def report(config: StudyConfig, results_dir: Path, out_dir: Path, prefix: str, profile: str) -> Path:
    """Tables (Markdown + JSON summary) and plots from whatever runs have finished."""
    from biasbench import bias_retained, mean_gap, preference_share

    study = Results(config, results_dir)
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
    toxicity_rows = detox_rows(results, config.seeds[0], bootstrap) if config.data == "detox" else {}
    lines += detox_lines(toxicity_rows, order)
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
    if toxicity_rows:
        summary["detox"] = toxicity_rows
    atomic_write_text(out_dir / f"{prefix}.json", json.dumps(summary, indent=1) + "\n")
    return target


def per_rank_learning_rates(study: Results, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
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


