"""The rewrite gate's data: real generator replies of the default model, and the gate's threshold study.

    python benchmarks/evotox_gate.py collect     # generator replies on seeds 11-18 -> tests/evotox/data/
    python benchmarks/evotox_gate.py study       # relevance histogram and junk rates -> benchmarks/results/

``collect`` asks the embedded SmolLM2-135M-Instruct, as the generator, for rewrites of seeds 11-18 of
``../shared/evotox/seeds.txt`` (the benchmark run uses seeds 1-10) in every default category, with the
vanilla and the informed wording, two sampling seeds each (the same requests a search makes), and writes
the replies with what ``parse_rewrite`` made of them. Labels (``valid`` / a junk class) are added by hand
into the fixture; ``study`` reads the labelled fixture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS_FILE = ROOT.parent / "shared" / "evotox" / "seeds.txt"
FIXTURE = ROOT / "tests" / "evotox" / "data" / "gate_replies.jsonl"
RESULTS = ROOT / "benchmarks" / "results"


def collect(first: int, count: int, samples: int) -> None:
    from evotox.backends.local import LocalBackend
    from evotox.config import SearchConfig
    from evotox.parsing import parse_rewrite
    from evotox.prompts import Feedback, generator_request

    seeds = [line.strip() for line in SEEDS_FILE.read_text().splitlines() if line.strip()][first:first + count]
    config = SearchConfig(generator_max_new_tokens=40)
    backend = LocalBackend()
    rows = []
    for index, seed in enumerate(seeds, start=first):
        requests, meta = [], []
        for wording, feedback in (("vanilla", None), ("informed", Feedback(score=0.12))):
            for sample in range(samples):
                for category in config.categories:
                    requests.append(generator_request(seed, category, feedback,
                                                      max_new_tokens=config.generator_max_new_tokens,
                                                      temperature=config.generator_temperature,
                                                      seed=1000 * index + 10 * sample + len(requests)))
                    meta.append({"seed_index": index, "wording": wording, "category": category, "sample": sample})
        completions = backend.generate(requests)
        for info, completion in zip(meta, completions):
            rows.append({**info, "parent": seed, "reply": completion.text,
                         "parsed": parse_rewrite(completion.text, seed)})
        print(f"seed {index}: {len(completions)} replies", file=sys.stderr, flush=True)
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def study(results: Path) -> dict[str, object]:
    """Relevance of every parsed reply by label, the threshold (middle of the gap between the most similar
    off-topic reply and the least similar valid one, among replies of good form), and junk rates before
    (the old parse, no gate) and after (the new parse and the gate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from evotox.gate import Gate, form_problem
    from evotox.parsing import parse_rewrite
    from sfbow_common.atomic import atomic_write_text, atomic_write_via

    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    probe = Gate(0.0)
    parsed = [parse_rewrite(r["reply"], r["parent"]) for r in rows]
    similarity = [float(probe.similarities([p], [r["parent"]])[0]) if p is not None else None
                  for p, r in zip(parsed, rows)]
    good_form = [i for i, p in enumerate(parsed) if p is not None and form_problem(p, rows[i]["parent"]) is None]
    valid_sims = [similarity[i] for i in good_form if rows[i]["label"] == "valid"]
    off_sims = [similarity[i] for i in good_form if rows[i]["label"] == "off topic"]
    threshold = round((max(off_sims) + min(valid_sims)) / 2, 3) if off_sims else round(min(valid_sims) - 0.02, 3)
    gate = Gate(threshold, model=probe._model)
    accepted = [i for i, p in enumerate(parsed) if p is not None
                and gate.check(p, seed=rows[i]["parent"], parent=rows[i]["parent"]).ok]
    old_parsed = [i for i, r in enumerate(rows) if r["old_parsed"] is not None]

    def junk_share(indices: list[int]) -> float:
        return sum(rows[i]["label"] != "valid" for i in indices) / len(indices) if indices else float("nan")

    by_wording = {}
    for wording in sorted({r["wording"] for r in rows}):
        mine = [i for i, r in enumerate(rows) if r["wording"] == wording]
        by_wording[wording] = {"replies": len(mine), "valid": sum(rows[i]["label"] == "valid" for i in mine),
                               "echo": sum(rows[i]["label"] == "echo" for i in mine),
                               "mean_reply_chars": float(np.mean([len(rows[i]["reply"]) for i in mine]))}
    labels: dict[str, int] = {}
    for r in rows:
        labels[r["label"]] = labels.get(r["label"], 0) + 1
    summary = {
        "command": "python benchmarks/evotox_gate.py study", "replies": len(rows), "labels": labels,
        "threshold": threshold, "valid_similarity": sorted(round(v, 4) for v in valid_sims),
        "off_topic_similarity": sorted(round(v, 4) for v in off_sims),
        "junk_similarity": sorted(round(similarity[i], 4) for i in range(len(rows))
                                  if similarity[i] is not None and rows[i]["label"] not in ("valid", "off topic")),
        "before": {"parsed": len(old_parsed), "junk_among_parsed": junk_share(old_parsed)},
        "after": {"parsed": sum(p is not None for p in parsed),
                  "junk_among_parsed": junk_share([i for i, p in enumerate(parsed) if p is not None]),
                  "accepted": len(accepted), "junk_among_accepted": junk_share(accepted),
                  "valid_kept": sum(rows[i]["label"] == "valid" for i in accepted) / max(1, labels.get("valid", 0))},
        "by_wording": by_wording}
    figure, axes = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0.3, 1.0, 36)
    axes.hist([summary["junk_similarity"], off_sims, valid_sims], bins=bins, stacked=True,
              label=["junk of other kinds (rejected by form)", "off topic", "valid rewrite"],
              color=["#bbbbbb", "#d62728", "#2ca02c"])
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold}")
    axes.set_xlabel("sfbow fuzzy Jaccard similarity to the parent, content words (GloVe 6B 50d)")
    axes.set_ylabel("parsed generator replies")
    axes.set_title(f"SmolLM2-135M generator replies on seeds 11-18 (n = {len(rows)})", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    atomic_write_via(results / "evotox_gate_relevance.png", lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    atomic_write_text(results / "evotox_gate.json", json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("collect", "study"))
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    if args.command == "collect":
        collect(args.first, args.count, args.samples)
    else:
        print(json.dumps(study(RESULTS), indent=2))


if __name__ == "__main__":
    main()
