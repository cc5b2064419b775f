"""sfbow_llm's engines on the embedded SmolLM2-135M-Instruct: the fp32 transformers reference against CTranslate2 int8.

In one run, at one and two threads: tokens/s of batched greedy decoding (5 rows of seed questions as user
messages, 48 new tokens), the memory-bandwidth bound of each engine, the cold start of a new process that
loads the cached model (import + load, timed from outside as a whole process) and its peak RSS, and the
greedy answers of both engines to 50 seed questions (share identical, and how far apart the default
oracle's scores of the two answers are). Engines alternate within each repetition so a busy machine slows
both alike; the load average is recorded with every measurement, and medians are reported.

The bandwidth bound: a decode step reads every weight once (the tied embedding is the output layer), so
``rows * bandwidth / bytes of weights`` tokens/s is the most a batch of ``rows`` can reach; bandwidth is
the best of 5 ``numpy.sum`` passes over a 512 MB array (one thread; two threads sum halves concurrently,
numpy releases the GIL), bytes of weights are the engine's weight file (model.bin for int8, 4 bytes per
parameter for fp32).

    PYTHONPATH=$PWD python benchmarks/llm_generation.py [--repeats 3] [--compare 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sfbow_common.atomic import atomic_write_text
from sfbow_common.data import data_path
from sfbow_common.tables import markdown_table
from sfbow_llm.chat import Request
from sfbow_llm.generation import generate
from sfbow_llm.models import load_causal_lm

ROOT = Path(__file__).resolve().parents[1]
SEEDS = data_path("evotox", "seeds.txt")
RESULTS = ROOT / "benchmarks" / "results"
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ROWS, NEW_TOKENS = 5, 48
COLD = ("import re, sys, time; t = time.perf_counter(); from sfbow_llm.models import load_causal_lm; "
        "from sfbow_llm.chat import Request; from sfbow_llm.generation import generate; "
        "lm = load_causal_lm(engine={engine!r}, **{options}); "
        "loaded = time.perf_counter() - t; generate(lm, [Request('Hello', max_new_tokens=4)]); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print(loaded, int(hwm) / 1024, 'torch' in sys.modules)")  # VmHWM: ru_maxrss survives fork + exec


def prompts(questions: list[str], max_new_tokens: int = NEW_TOKENS) -> list[Request]:
    return [Request([SYSTEM, {"role": "user", "content": q}], max_new_tokens=max_new_tokens) for q in questions]


def bandwidth(threads: int) -> float:
    """Read bandwidth in GB/s: best of 5 passes of numpy.sum over 512 MB split between ``threads`` threads."""
    data = np.ones(64 * 2**20)
    parts = np.array_split(data, threads)
    best = float("inf")
    for _ in range(5):
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return data.nbytes / best / 1e9


def decode(lm, questions: list[str]) -> dict[str, float]:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    out = generate(lm, prompts(questions))
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens for c in out)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "load_average": load}


def cold_start(engine: str) -> dict[str, float]:
    """A new process: import sfbow_llm, load the cached default on ``engine``, generate 4 tokens."""
    options = "{'threads': 1}" if engine == "ctranslate2" else "{}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COLD.format(engine=engine, options=options)], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    whole = time.perf_counter() - start
    loaded, rss, torch_loaded = out.stdout.split()
    return {"process_s": whole, "import_and_load_s": float(loaded), "peak_rss_mb": float(rss),
            "imports_torch": torch_loaded == "True", "load_average": os.getloadavg()[0]}


def measure_cold(repeats: int = 3) -> dict[str, list[dict]]:
    cold: dict[str, list[dict]] = {"ctranslate2": [], "reference": []}
    for _ in range(repeats):
        for engine in cold:
            cold[engine].append(cold_start(engine))
            print(engine, cold[engine][-1], flush=True)
    return cold


def compare(reference, engine, questions: list[str]) -> dict[str, object]:
    """Greedy answers of both engines to ``questions`` and the default oracle's scores of them."""
    from sfbow_llm.oracles import default_oracle

    texts: dict[str, list[str]] = {"reference": [], "ctranslate2": []}
    for first in range(0, len(questions), ROWS):
        batch = questions[first:first + ROWS]
        for name, lm in (("reference", reference), ("ctranslate2", engine)):
            texts[name] += [c.text for c in generate(lm, prompts(batch))]
    oracle = default_oracle()
    ours, theirs = oracle.score(texts["ctranslate2"]), oracle.score(texts["reference"])
    differ = [i for i in range(len(questions)) if texts["ctranslate2"][i] != texts["reference"][i]]
    toxic = np.abs(ours[:, 0] - theirs[:, 0])
    worst = np.abs(ours.max(axis=1) - theirs.max(axis=1))
    prefix = [len(os.path.commonprefix([a, b])) / max(len(b), 1) for a, b in zip(texts["ctranslate2"], texts["reference"])]
    return {"prompts": len(questions), "identical": len(questions) - len(differ),
            "mean_shared_prefix": float(np.mean(prefix)),
            "toxic_abs_diff_mean": float(toxic.mean()), "toxic_abs_diff_max": float(toxic.max()),
            "max_attribute_abs_diff_mean": float(worst.mean()), "max_attribute_abs_diff_max": float(worst.max()),
            "toxic_mean": {"reference": float(theirs[:, 0].mean()), "ctranslate2": float(ours[:, 0].mean())},
            "above_0.5": {"reference": int((theirs[:, 0] > 0.5).sum()), "ctranslate2": int((ours[:, 0] > 0.5).sum())}}


def report(result: dict) -> str:
    runs, bound = result["decode"], result["bandwidth_gb_s"]
    weights = result["weight_bytes"]
    rows, ratios = [], []
    best: dict[int, dict[str, float]] = {}
    for threads in (1, 2):
        medians = {}
        for engine in ("reference", "ctranslate2"):
            found = [r for r in runs if r["threads"] == threads and r["engine"] == engine]
            medians[engine] = statistics.median(r["tokens_per_s"] for r in found)
            ceiling = ROWS * bound[str(threads)] * 1e9 / weights[engine]
            rows.append([threads, engine, len(found), f"{medians[engine]:.1f}",
                         " ".join(f"{r['tokens_per_s']:.0f}" for r in found), f"{ceiling:.0f}",
                         f"{ceiling / medians[engine]:.2f}"])
        ratios.append((threads, medians["ctranslate2"] / medians["reference"]))
        best[threads] = medians
    cold = result["cold_start"]
    cold_rows = [[engine, len(v), f"{statistics.median(x['process_s'] for x in v):.2f}",
                  f"{statistics.median(x['import_and_load_s'] for x in v):.2f}",
                  f"{statistics.median(x['peak_rss_mb'] for x in v):.0f}", v[0]["imports_torch"]]
                 for engine, v in cold.items()]
    c = result["greedy_comparison"]
    loads = [r["load_average"] for r in runs] + [x["load_average"] for v in cold.values() for x in v]
    lines = ["# sfbow_llm engines: fp32 transformers reference vs CTranslate2 int8 (SmolLM2-135M-Instruct, CPU)", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared with other "
             f"jobs (1-minute load average {min(loads):.1f}-{max(loads):.1f}); ctranslate2 "
             f"{result['versions']['ctranslate2']}, torch {result['versions']['torch']}. Greedy decoding of "
             f"{ROWS} rows x {NEW_TOKENS} new tokens (seed questions as user messages), engines alternating, "
             f"{result['repeats']} repetitions per thread count.", "",
             markdown_table(["threads", "engine", "runs", "median tokens/s", "each run", "bandwidth bound tokens/s",
                             "bound / measured"], rows, align="rlrrrrr"), "",
             *[f"- {t} thread{'s' * (t > 1)}: ctranslate2 / reference = {r:.2f}x tokens/s (target >= 3x: "
               f"{'met' if r >= 3 else 'missed'})" for t, r in ratios],
             f"- each engine at its better thread count: ctranslate2 / reference = "
             f"{max(b['ctranslate2'] for b in best.values()) / max(b['reference'] for b in best.values()):.2f}x "
             "(on a loaded 2-core machine torch's second thread spins waiting for a core; the 2-thread rows show "
             "what each engine made of the second core in this run)",
             f"- read bandwidth (numpy.sum over 512 MB, best of 5): {bound['1']:.1f} GB/s on one thread, "
             f"{bound['2']:.1f} GB/s on two; weights read per decode step: {weights['reference'] / 1e6:.0f} MB "
             f"(fp32), {weights['ctranslate2'] / 1e6:.0f} MB (int8 model.bin); bound = {ROWS} rows x bandwidth / "
             "weights per step; target: within 1.5x of the bound", "",
             "Cold start: a new process imports sfbow_llm, loads the cached default model and generates 4 tokens "
             "(process s: timed from outside, interpreter start included; peak RSS of that process).", "",
             markdown_table(["engine", "runs", "process s", "import + load s", "peak RSS MB", "imports torch"],
                            cold_rows, align="lrrrrl"), "",
             f"Greedy answers to {c['prompts']} seed questions (48 new tokens): {c['identical']} identical "
             f"({100 * c['identical'] / c['prompts']:.0f}%); a CTranslate2 answer shares on average "
             f"{100 * c['mean_shared_prefix']:.0f}% of the reference answer as its prefix. Default oracle "
             f"(Jigsaw) scores of the two answers: |difference| of `toxic` mean {c['toxic_abs_diff_mean']:.3f}, "
             f"max {c['toxic_abs_diff_max']:.3f}; of the max over attributes mean "
             f"{c['max_attribute_abs_diff_mean']:.3f}, max {c['max_attribute_abs_diff_max']:.3f}; mean `toxic` "
             f"{c['toxic_mean']['reference']:.3f} (reference) vs {c['toxic_mean']['ctranslate2']:.3f}; answers "
             f"above 0.5: {c['above_0.5']['reference']} vs {c['above_0.5']['ctranslate2']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", type=int, default=50, help="seed questions for the greedy comparison")
    parser.add_argument("--output", type=Path, default=RESULTS / "llm_generation.json")
    parser.add_argument("--cold-only", action="store_true", help="re-measure only the cold starts of --output")
    args = parser.parse_args()
    if args.cold_only:
        result = json.loads(args.output.read_text(encoding="utf-8"))
        result["cold_start"] = measure_cold()
        atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
        atomic_write_text(args.output.with_suffix(".md"), report(result))
        print(report(result))
        return
    if not SEEDS.is_file():
        raise SystemExit(f"seed questions not found at {SEEDS} (../shared/evotox/seeds.txt beside the repo)")
    questions = [q.strip() for q in SEEDS.read_text(encoding="utf-8").splitlines() if q.strip()]
    import ctranslate2
    import torch

    reference = load_causal_lm(engine="reference")
    engines = {t: load_causal_lm(engine="ctranslate2", threads=t) for t in (1, 2)}
    weights = {"reference": 4 * sum(p.numel() for p in reference.model.parameters()),
               "ctranslate2": (engines[1].folder / "model.bin").stat().st_size}
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        generate(reference, prompts(questions[:1], 4))  # warm-up, not measured
        generate(engines[threads], prompts(questions[:1], 4))
        for rep in range(args.repeats):
            batch = questions[rep * ROWS:(rep + 1) * ROWS]
            order = ("reference", "ctranslate2") if rep % 2 == 0 else ("ctranslate2", "reference")
            for engine in order:
                lm = reference if engine == "reference" else engines[threads]
                runs.append({"threads": threads, "engine": engine, "repetition": rep, **decode(lm, batch)})
                print(runs[-1], flush=True)
    torch.set_num_threads(1)
    cold = measure_cold()
    result = {"repeats": args.repeats, "versions": {"ctranslate2": ctranslate2.__version__, "torch": torch.__version__},
              "bandwidth_gb_s": {"1": bandwidth(1), "2": bandwidth(2)}, "weight_bytes": weights, "decode": runs,
              "cold_start": cold,
              "greedy_comparison": compare(reference, engines[1], questions[:args.compare])}
    atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
    text = report(result)
    atomic_write_text(args.output.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
