"""The report: Markdown tables and a JSON summary (and the plots) from whatever runs have finished, read
through :class:`.store.Results` (the report never trains, loads a model or touches the cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.atomic import atomic_write_text
from sfbow_common.tables import markdown_table

from .config import PROFILES, TARGETS, Run, StudyConfig
from .crows_types import CrowsSelection, select
from .detox_report import detox_lines, detox_rows
from .diagnostics import rank_diagnostics
from .guard import FLAT_DROP, MAX_RETRIES, RULE, WINDOW, flatness
from .model import l1ra_budgets
from .plan import NotReady
from .plots import loss_curves, plots
from .stats import FOOTNOTE, describe
from .store import Results, diverged
from .tuning import Tuning


def report(config: StudyConfig, results_dir: Path, out_dir: Path, prefix: str, profile: str) -> Path:
    """Tables (Markdown + JSON summary) and plots from whatever runs have finished."""
    study = Results(config, results_dir)
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for path in sorted(study.results_dir.glob("seed*/*.json")):
        seed = int(path.parent.name.removeprefix("seed"))
        if seed in config.seeds:
            result = study.read(path)
            results[(seed, result["run"]["name"])] = result
    if not results:
        raise FileNotFoundError(f"no finished runs under {study.results_dir}; run the grid first")
    n_adapters = 30 * len(TARGETS) if config.layers is None else config.layers * len(TARGETS)
    plan = study.plan(n_adapters)
    missing = [f"seed{r.seed}/{r.name}" for r in plan if (r.seed, r.name) not in results and study.load(r) is None]
    crows = select(results.get((config.seeds[0], "base")), config.seeds[0])
    rows = measure_rows(study, results, crows)

    def values(name: str, key: str) -> list[float]:
        found = [e.get(key) for e in rows.get(name, {"seeds": []})["seeds"]]
        return [float(v["value"] if isinstance(v, dict) else v) for v in found if isinstance(v, (int, float, dict))]

    def interval(name: str, key: str, digits: int = 1) -> str:
        """Over seeds a t interval; one seed: its paired bootstrap interval over pairs."""
        entries = [e[key] for e in rows[name]["seeds"] if key in e]
        if len(entries) == 1:
            e = entries[0]
            return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}] (1 seed, over pairs)"
        return describe(values(name, key), digits)

    order = (["base", "full"] + [f"lora-r{r}" for r in sorted(config.ranks)]
             + [f"l1ra-b{b}" for b in l1ra_budgets(config, n_adapters)]
             + [f"truncated-r{r}" for r in config.truncation_ranks])
    shown = [name for name in order if name in rows]
    crows_columns = [] if crows is None else crows.headline_columns()  # CrowS only where the base is biased
    header = ["model", "WinoBias pro-preferred %", "WinoBias gap", "WinoBias retained",
              *(column for column, _, _ in crows_columns), "KL to full", "KL to base", "STS NLL",
              "forgetting (plain NLL - base)", "toxicity"]
    table = markdown_table(header, [[name, interval(name, "winobias_interval"), describe(values(name, "winobias_gap"), 3),
                                     interval(name, "winobias_retained", 2),
                                     *(interval(name, key, digits) for _, key, digits in crows_columns),
                                     describe(values(name, "kl_to_full"), 4), describe(values(name, "kl_to_base"), 4),
                                     describe(values(name, "sts_nll"), 3), describe(values(name, "forgetting"), 3),
                                     describe(values(name, "toxicity"), 3)]
                                    for name in shown])
    lines = [f"# LoRA rank and bias: {config.data}", ""]
    seeds = "" if config.seeds == PROFILES[profile].seeds else f" --seeds {','.join(map(str, config.seeds))}"
    if missing:
        lines += [f"**Partial grid**: {len(plan) - len(missing)} of {len(plan)} runs finished; missing: "
                  f"{', '.join(missing)}. Resume with `OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run "
                  f"--profile {profile}{seeds}` then re-run `report`.", ""]
    old = sorted(f"seed{s}/{n}" for (s, n), r in results.items() if r.get("format") == 1)
    if old:
        lines += [f"{len(old)} of {len(results)} runs are of run-file format 1 (made before issue 20): their "
                  "divergence verdicts are computed here from their recorded loss curves, their learning-rate grids "
                  "were never extended, and they have no plain-text forgetting (`-`); earlier reports gave mean +- sd "
                  "over seeds where these give t intervals.", ""]
    lines += ["Preference shares in %; gaps in nats (pro minus anti); retained = (gap - gap of full FT) / (gap of "
              "base - gap of full FT) on the mean gap; KL in nats per token (reference || model); STS NLL in nats per "
              "token on held-out STS-B dev sentences after the chat-turn token (the tokenizer's BOS); forgetting: the "
              "same sentences as plain text (after `<|endoftext|>`), minus the base's. Diverged runs are left out "
              "(see below). " + FOOTNOTE, "", table, ""]
    if crows is not None:
        lines += crows.lines(shown, interval)
    toxicity_rows = detox_rows(study, results) if config.data == "detox" else {}
    lines += detox_lines(toxicity_rows, order)
    diverged_lines, diverged_rows = divergence_section(study, results)
    lines += diverged_lines + tuning_section(study, n_adapters)
    per_rank = per_rank_learning_rates(study, rows)
    if per_rank["rows"]:
        lines += per_rank.pop("lines")
    curves = curve_section(results, shown)
    lines += curves.pop("lines")
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
    loss_curves(results, out_dir, prefix)
    lines += [f"![bias vs rank]({prefix}_bias_vs_rank.png)", "", f"![energy kept]({prefix}_energy.png)", "",
              f"![L1RA ranks vs oracle]({prefix}_l1ra_vs_oracle.png)", "", f"![training loss]({prefix}_loss.png)", ""]
    target = out_dir / f"{prefix}.md"
    atomic_write_text(target, "\n".join(lines))
    summary = {"config": config.to_dict(), "finished": sorted(f"seed{s}/{n}" for s, n in results), "missing": missing,
               "rows": rows, "per_rank_lr": per_rank["rows"], "diagnostics": diagnostics, "diverged": diverged_rows,
               "curves": curves["rows"], "format_1_runs": old,
               "crows_selection": None if crows is None else crows.to_dict(),
               "tuning": {label: state.to_dict() for label, state in searches(study).items()}}
    if toxicity_rows:
        summary["detox"] = toxicity_rows
    atomic_write_text(out_dir / f"{prefix}.json", json.dumps(summary, indent=1) + "\n")
    return target


def measure_rows(study: Results, results: dict[tuple[int, str], dict[str, Any]],
                 crows: CrowsSelection | None = None) -> dict[str, dict[str, Any]]:
    """Per run name, one entry per seed of every measured, non-diverged run: preference shares, gaps, bias
    retained against the base and that seed's full fine-tune (its re-run if it diverged) on WinoBias and on
    the CrowS types ``crows`` selected (pooled; none if it selected none), KL, STS NLL, forgetting against
    the base, toxicity, and the bootstrap intervals the run recorded."""
    from biasbench import bias_retained, mean_gap, paired_bootstrap, preference_share

    config = study.config
    bootstrap: dict[str, Any] = {"n_resamples": config.bootstrap, "seed": 0}

    def gaps(result: dict[str, Any], measure: str) -> np.ndarray:
        values = np.asarray(result["measures"]["gaps"]["crows" if measure != "winobias" else "winobias"])
        if measure == "crows_gender":
            values = values[np.asarray(result["measures"]["gaps"]["crows_gender"])]
        if measure == "crows_selected" and crows is not None:
            values = values[crows.mask(result)]
        return values

    base = results.get((config.seeds[0], "base"))
    fulls = {}
    for seed in config.seeds:
        final = study.final(Run("full", seed))
        if final is not None and not diverged(final[1]):
            fulls[seed] = final[1]
    rows: dict[str, dict[str, Any]] = {}
    for (seed, name), result in results.items():
        if result.get("measures") is None or diverged(result):
            continue
        entry: dict[str, Any] = {"seed": seed}
        selected = ["crows_selected"] if crows is not None and crows.selected else []
        for measure in ("winobias", "crows", "crows_gender", *selected):
            g = gaps(result, measure)
            entry[f"{measure}_share"] = float(preference_share(g))
            entry[f"{measure}_gap"] = float(mean_gap(g))
            if measure == "crows_selected":
                entry["crows_selected_interval"] = paired_bootstrap(preference_share, g, **bootstrap).to_dict()
            if measure in ("winobias", "crows_selected") and base is not None and seed in fulls:
                entry[f"{measure}_retained"] = bias_retained(g, gaps(base, measure), gaps(fulls[seed], measure),
                                                             **bootstrap).to_dict()
        m = result["measures"]
        plain, base_plain = m.get("plain_nll"), (base or {}).get("measures", {}).get("plain_nll")
        entry.update({"kl_to_base": m.get("kl_to_base"), "kl_to_full": m.get("kl_to_full"),
                      "sts_nll": m.get("sts_nll"), "plain_nll": plain, "toxicity": (m.get("toxicity") or {}).get("mean"),
                      "forgetting": None if plain is None or base_plain is None else plain - base_plain,
                      "winobias_interval": m["winobias"]["preference"], "crows_interval": m["crows"]["all"]["preference"],
                      "crows_gender_interval": m["crows"]["gender"]["preference"],
                      "winobias_gap_interval": m["winobias"]["mean_gap"]})
        rows.setdefault(name, {"seeds": []})["seeds"].append(entry)
    for row in rows.values():
        row["seeds"].sort(key=lambda e: e["seed"])
    return rows


def divergence_section(study: Results, results: dict[tuple[int, str], dict[str, Any]]
                       ) -> tuple[list[str], list[dict[str, Any]]]:
    """Every diverged run beside its re-run at the next rate down (both reported, neither averaged in for
    the diverged one)."""
    found = []
    for (seed, name), result in sorted(results.items()):
        if not diverged(result):
            continue
        run = Run(**{k: v for k, v in result["run"].items() if k != "name"})
        retry = study.retry_of(run)
        redo = None if retry is None else study.load(retry)
        verdict = result["divergence"]
        found.append({"seed": seed, "run": name, "lr": result.get("lr", run.lr), "step": verdict["step"],
                      "reason": verdict["reason"], "last10": last_mean(result.get("losses")),
                      "rerun": None if retry is None else retry.name,
                      "rerun_last10": None if redo is None else last_mean(redo.get("losses")),
                      "rerun_diverged": None if redo is None else diverged(redo)})
    if not found:
        return [f"Divergence guard (`guard.py`: a non-finite loss, a {RULE['blowup_factor']:g}x blow-up, or a "
                f"{RULE['spike_factor']:g}x spike after which the last-{RULE['window']} mean stays above "
                f"{RULE['recovery']:g}x the first-{RULE['window']} mean): no run diverged.", ""], found
    table = [[f["run"], f["seed"], "-" if f["lr"] is None else f"{f['lr']:g}", f["step"], f["reason"],
              "-" if f["last10"] is None else f"{f['last10']:.2f}", f["rerun"] or "- (tune runs are not re-run)",
              "not run yet" if f["rerun"] and f["rerun_last10"] is None and f["rerun_diverged"] is None
              else "-" if f["rerun_last10"] is None else f"{f['rerun_last10']:.2f}"
              + (" (diverged too)" if f["rerun_diverged"] else "")]
             for f in found]
    return [f"Diverged runs (`guard.py`), left out of every mean; each training run is re-run at the next rate "
            f"down (up to {MAX_RETRIES} times), which stands in the per-rank table under its own rate; a diverged "
            "tune rate cannot win:", "",
            markdown_table(["run", "seed", "lr", "step", "why", "last-10 loss", "re-run", "re-run last-10 loss"], table),
            ""], found


def searches(study: Results) -> dict[str, Tuning]:
    """Every learning-rate search of the grid (full, LoRA at each rank, L1RA), replayed from the tune runs."""
    config = study.config
    out = {"full": study.tuning("full"), f"lora (rank {config.tune_rank})": study.tuning("lora")}
    out.update({f"lora at rank {r}": study.tuning("lora", r) for r in sorted(config.ranks) if r != config.tune_rank
                and (len(config.lora_lrs) > 1 or config.lr_extensions > 0)})
    out["l1ra"] = study.tuning("l1ra")
    return out


def tuning_section(study: Results, n_adapters: int) -> list[str]:
    """The learning-rate grids: each rate's dev-fold NLL, the winner, whether it is still at an edge."""
    table = []
    for label, state in searches(study).items():
        scores = ", ".join(f"{lr:g}: " + ("missing" if lr in state.missing else "diverged" if state.scores[lr] is None
                                          else f"{state.scores[lr]:.4f}") for lr in state.rates)
        where = ("not tuned yet" if state.winner is None else "inside the grid" if state.at_edge is None
                 else f"at the {state.at_edge} edge (no extension left)")
        table.append([label, scores, "-" if state.winner is None else f"{state.winner:g}", where,
                      ", ".join(f"{lr:g}" for lr in state.extensions) or "-"])
    return [f"Learning-rate tuning (dev-fold NLL per token, seed {study.config.seeds[0]}; a winner at an edge "
            f"extends its grid x3 or /3, at most {study.config.lr_extensions} times):", "",
            markdown_table(["method", "dev NLL by rate", "winner", "winner is", "extensions"], table), ""]


def last_mean(losses: Any) -> float | None:
    finite = [v for v in losses or [] if isinstance(v, (int, float))]
    return float(np.mean(finite[-WINDOW:])) if finite else None


def curve_section(results: dict[tuple[int, str], dict[str, Any]], shown: list[str]) -> dict[str, Any]:
    """Has training flattened? Per model row, over seeds: the last-10 loss and the fitted drop across the
    curve's last third (:func:`.guard.flatness`)."""
    rows, table = [], []
    for name in shown:
        found = [(s, r) for (s, n), r in sorted(results.items())
                 if n == name and isinstance(r.get("losses"), list) and not diverged(r)]
        checks: list[tuple[int, dict[str, Any], float | None]] = []
        for s, r in found:
            check = flatness(r["losses"])
            if check is not None:
                checks.append((s, check, last_mean(r["losses"])))
        if not checks:
            continue
        flat = sum(f["flattened"] for _, f, _ in checks)
        rows.append({"run": name, "seeds": [s for s, _, _ in checks], "flattened": flat,
                     "relative_drop": [f["relative_drop"] for _, f, _ in checks], "last10": [m for _, _, m in checks]})
        table.append([name, describe([m for _, _, m in checks if m is not None], 3),
                      describe([100 * f["relative_drop"] for _, f, _ in checks], 1),
                      f"{flat} of {len(checks)}"])
    if not table:
        return {"rows": rows, "lines": []}
    return {"rows": rows, "lines": [
        f"Training curves (see the loss plot): the last-{RULE['window']} training loss, and the drop of a line "
        f"fitted to the last third of the curve across that third, in % of its mean loss; flattened: a drop under "
        f"{100 * FLAT_DROP:g} %.", "",
        markdown_table(["model", "last-10 loss", "drop over the last third %", "flattened"], table), ""]}


def per_rank_learning_rates(study: Results, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-rank learning-rate arm: at each rank the rate its dev-fold search picks, and WinoBias bias
    retained at that rate and at every configured rate, over seeds (t intervals; diverged runs left out).
    Ranks whose tuning or first-seed runs are unfinished are left out."""
    config = study.config
    first = config.seeds[0]
    table: list[list[object]] = []
    out: dict[str, Any] = {"rows": [], "lines": []}
    try:
        global_lr = study.tuned_lr("lora")
    except NotReady:
        return out
    for rank in sorted(config.ranks):
        state = study.tuning("lora", rank)
        chosen = state.winner
        if chosen is None:
            continue
        rates = list(dict.fromkeys([*config.lora_lrs, chosen]))
        names = {lr: (f"lora-r{rank}" if lr == global_lr else f"lora-r{rank}-lr{lr:g}") for lr in rates}
        entries = {lr: next((e for e in rows.get(name, {"seeds": []})["seeds"] if e["seed"] == first), None)
                   for lr, name in names.items()}
        if entries[chosen] is None or "winobias_retained" not in entries[chosen]:  # type: ignore[operator]
            continue
        seeds = {lr: [e["winobias_retained"]["value"] for e in rows.get(name, {"seeds": []})["seeds"]
                      if "winobias_retained" in e] for lr, name in names.items()}
        chosen_entry: dict[str, Any] = entries[chosen]  # type: ignore[assignment]
        out["rows"].append({"rank": rank, "dev_nll": {f"{lr:g}": v for lr, v in state.scores.items()},
                            "chosen_lr": chosen, "at_edge": state.at_edge, "run": names[chosen],
                            "runs": {f"{lr:g}": names[lr] for lr in config.lora_lrs},
                            "winobias_retained_seeds": {f"{lr:g}": v for lr, v in seeds.items()},
                            "sts_nll": chosen_entry["sts_nll"], "forgetting": chosen_entry.get("forgetting")})
        edge = "" if state.at_edge is None else f" ({state.at_edge} edge)"
        table.append([rank, ", ".join(f"{lr:g}: " + ("diverged" if s is None else f"{s:.3f}")
                                      for lr, s in sorted(state.scores.items())),
                      f"{chosen:g}{edge}", describe(seeds[chosen]), *(describe(seeds[lr]) for lr in config.lora_lrs),
                      f"{chosen_entry['sts_nll']:.3f}"])
    if table:
        header = (["rank", "dev NLL by rate", "chosen lr", "WinoBias retained at chosen",
                   *(f"retained at {lr:g}" for lr in config.lora_lrs), f"STS NLL at chosen (seed {first})"])
        out["lines"] = [f"LoRA with its learning rate tuned at each rank (dev-fold NLL per token, seed {first}; "
                        "WinoBias retained over the seeds finished, t intervals):", "", markdown_table(header, table), ""]
    return out
