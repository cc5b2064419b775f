"""EvoTox on the embedded SmolLM2-135M-Instruct: the four variants against random search, the seeds as they
are and jailbreak prefixes; plus the two timing targets.

    python benchmarks/evotox_smollm2.py            # start, or resume where a killed run stopped
    python benchmarks/evotox_smollm2.py --seeds 25 &                  # or two processes on two cores:
    python benchmarks/evotox_smollm2.py --seeds 25 --first-seed 25    # the first 25 seeds and the rest

Default model as SUT and generator (on the fastest engine installed), the Jigsaw oracle, the 50 seed prompts
shipped with evotox, 5 iterations, lambda = 5, all seven methods. The run is recorded in
``benchmarks/results/evotox_smollm2_run.jsonl`` (local only: it holds every generated text); running the
script again resumes it. ``--first-seed K`` runs seeds K, K+1, ... into a run file of its own
(``evotox_smollm2_run.from<K>.jsonl``; the batching timing is left to the main run), and the report pools
every run file of the benchmark. It writes ``evotox_smollm2.md`` / ``.csv`` / ``.png`` (the report) and
``evotox_smollm2.json`` (the timing figures and every session's framework share) beside it. A new run
file starts a new summary; the summary it replaces is kept in it under ``earlier_run``, so the report
can set the two runs' wall times side by side.

Timing targets (measured once, before the run):
- batched iteration time / one-call-at-a-time iteration time for the same requests (target <= 0.5);
- the framework's own share of the wall time: everything but model and oracle calls (target < 2 %).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from evotox.archive import RunFile, read_run
from evotox.backends.local import LocalBackend
from evotox.config import METHODS, SearchConfig
from evotox.prompts import generator_request, sut_request
from evotox.report import Report, build_report, write_report
from evotox.runner import RunSpec, build_oracle, read_seeds, resume_run, start_run
from sfbow_common.atomic import atomic_write_text
from sfbow_common.data import data_path

ROOT = Path(__file__).resolve().parents[1]
SEEDS_FILE = data_path("evotox", "seeds.txt")
RESULTS = ROOT / "benchmarks" / "results"
COMMAND = "python benchmarks/evotox_smollm2.py"


def config(iterations: int) -> SearchConfig:
    return SearchConfig(methods=METHODS, iterations=iterations, sut_max_new_tokens=48, generator_max_new_tokens=40)


def measure_batching(seed: str, search: SearchConfig, repeats: int) -> dict[str, float]:
    """One vanilla iteration (lambda generator requests, then lambda SUT requests, then the oracle) made
    as two batches, and the same requests made one call at a time."""
    backend, oracle = LocalBackend(), build_oracle({"kind": "jigsaw"})
    rewrites = [generator_request(seed, c, None, max_new_tokens=search.generator_max_new_tokens,
                                  temperature=search.generator_temperature, seed=i)
                for i, c in enumerate(search.categories)]
    batched, sequential = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        replies = backend.generate(rewrites)
        asks = [sut_request(r.text.strip() or seed, search.system_prompt, max_new_tokens=search.sut_max_new_tokens,
                            temperature=0.0, seed=0) for r in replies]
        oracle.score([a.text for a in backend.generate(asks)])
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        for request in rewrites:
            backend.generate([request])
        for request in asks:
            oracle.score([backend.generate([request])[0].text])
        sequential.append(time.perf_counter() - start)
    return {"batched_seconds": min(batched), "sequential_seconds": min(sequential),
            "batched_over_sequential": min(batched) / min(sequential), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (0-based), in a run file of its own, e.g. for a second process")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--timing-repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the report and summary from the run file (e.g. after a killed run)")
    args = parser.parse_args()
    if args.first_seed < 0:
        parser.error(f"--first-seed must be >= 0, not {args.first_seed}")
    suffix = f".from{args.first_seed}" if args.first_seed else ""
    run_file = args.results / f"evotox_smollm2_run{suffix}.jsonl"
    summary_file = args.results / "evotox_smollm2.json"
    summary = read_summary(summary_file, run_files(args.results))
    if args.report_only:
        write_summary(run_files(args.results), summary, summary_file)
        return
    search = config(args.iterations)
    seeds = read_seeds(SEEDS_FILE)[args.first_seed:args.first_seed + args.seeds]
    if not seeds:
        parser.error(f"--first-seed {args.first_seed} is past the last of the seeds in {SEEDS_FILE}")
    if "batching" not in summary and not args.first_seed:
        summary["batching"] = measure_batching(seeds[0], search, args.timing_repeats)
        atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
        print("batching:", summary["batching"], flush=True)
    if run_file.exists():
        session = resume_run(run_file)
    else:
        session = start_run(RunSpec(seeds=seeds, search=search, seeds_file=str(SEEDS_FILE)), run_file)
    summary = read_summary(summary_file, run_files(args.results))  # as another process may have left it
    summary["sessions"].append({"wall_seconds": session.wall_seconds, "model_seconds": session.model_seconds,
                                "oracle_seconds": session.oracle_seconds, "new_calls": session.new_calls,
                                "replayed_calls": session.replayed_calls,
                                "framework_share": 1 - (session.model_seconds + session.oracle_seconds)
                                / session.wall_seconds})
    write_summary(run_files(args.results), summary, summary_file)


def run_files(results: Path) -> list[Path]:
    """Every run file of this benchmark in ``results`` (the main one and any ``--first-seed`` ones)."""
    return sorted(results.glob("evotox_smollm2_run*.jsonl"))


def read_summary(summary_file: Path, runs: list[Path]) -> dict[str, Any]:
    """The summary of the run in ``runs``; with no run file yet, a fresh one that keeps the summary it
    replaces (another run's) under ``earlier_run``, without that run's own earlier run."""
    old: dict[str, Any] = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if runs and old:
        return old
    fresh: dict[str, Any] = {"command": COMMAND, "sessions": []}
    if old.get("sessions"):
        old.pop("earlier_run", None)
        old.pop("report", None)
        fresh["earlier_run"] = old
    return fresh


def engine_line(runs: list[RunFile]) -> str:
    """The SUT's model and engine as the run files' heads record them (one line per distinct one)."""
    lines = list(dict.fromkeys(_engine(run.header.get("models", {}).get("sut", {})) for run in runs))
    return "; ".join(lines)


def _engine(sut: dict[str, Any]) -> str:
    engine = sut.get("engine") or {}
    if isinstance(engine, dict) and engine:
        return f"{sut.get('name', '?')} on {engine.get('name')} {engine.get('version')} ({engine.get('quantization')})"
    return f"{sut.get('name', '?')} ({sut.get('dtype', 'engine not recorded')})"


def framework_share_of_steps(runs: list[RunFile]) -> dict[str, float]:
    """The framework's share of the wall time of every search iteration made (not replayed) in the runs:
    1 - (model + oracle seconds) / wall seconds, summed over those iterations."""
    steps = [r for run in runs for r in run.records
             if r["type"] == "step" and r["iteration"] > 0 and r["replayed_calls"] == 0]
    wall = sum(r["wall_seconds"] for r in steps)
    model = sum(r["model_seconds"] for r in steps)
    oracle = sum(r["oracle_seconds"] for r in steps)
    return {"iterations": len(steps), "wall_seconds": wall, "model_seconds": model, "oracle_seconds": oracle,
            "framework_share": 1 - (model + oracle) / wall if wall else float("nan")}


def completed_seeds(report: Report) -> int:
    """How many seeds of the report have every method's search complete."""
    methods = {s.method for s in report.searches}
    finished: dict[tuple[int, int], set[str]] = {}
    for search in report.searches:
        if search.complete:
            finished.setdefault((search.run, search.seed_index), set()).add(search.method)
    return sum(done == methods for done in finished.values())


def batching_line(batching: dict[str, float] | None) -> str:
    """The report's line on batched against one-call-at-a-time iterations (none until the main run measured it)."""
    if not batching:
        return ""
    return ("- batched iteration / the same iteration one call at a time: "
            f"**{batching['batched_over_sequential']:.3f}** "
            f"(target <= 0.5; {batching['batched_seconds']:.1f} s vs {batching['sequential_seconds']:.1f} s)\n")


def write_summary(runs: list[Path], summary: dict[str, Any], summary_file: Path) -> None:
    """The report files and the JSON summary, from whatever the run file holds."""
    sessions = summary["sessions"]
    wall = sum(s["wall_seconds"] for s in sessions)
    busy = sum(s["model_seconds"] + s["oracle_seconds"] for s in sessions)
    summary["framework_share_of_sessions"] = 1 - busy / wall if wall else None
    read = [read_run(run) for run in runs]  # once each: the files are validated line by line
    summary["iterations"] = framework_share_of_steps(read)
    share = summary["iterations"]["framework_share"]
    report = build_report(runs)
    earlier = summary.get("earlier_run", {}).get("sessions", [])
    earlier_line = ""
    if earlier:
        earlier_wall = sum(s["wall_seconds"] for s in earlier)
        earlier_calls = sum(s["new_calls"] for s in earlier)
        records = [r for run in read for r in run.records]  # a killed session leaves no session entry
        steps_wall = sum(r["wall_seconds"] for r in records if r["type"] == "step")
        calls = sum(r["type"] == "call" for r in records)
        earlier_line = ("- wall time of the searches (summed over processes): "
                        f"**{steps_wall:,.0f} s for {calls:,} model calls** "
                        f"({steps_wall / max(calls, 1):.2f} s a call); "
                        f"the run it replaced: {earlier_wall:,.0f} s for {earlier_calls:,} calls "
                        f"({earlier_wall / max(earlier_calls, 1):.2f} s a call)\n")
    head = (f"# EvoTox on SmolLM2-135M-Instruct (`{COMMAND}`)\n\nSUT and generator: {engine_line(read)}; "
            "oracle: Jigsaw BiLSTM; fitness: max over its six attributes; "
            f"{completed_seeds(report)} seed prompts (those shipped with evotox, in order, with every search "
            "complete); "
            "5 iterations, lambda = 5; SUT answers <= 48 tokens (greedy), rewrites <= 40 tokens (temperature 0.7)."
            "\n\n"
            + earlier_line + batching_line(summary.get("batching")) +
            f"- framework's own share of the wall time of {summary['iterations']['iterations']} search iterations: "
            f"**{100 * share:.2f} %** (target < 2 %)\n\n")
    report.markdown = head + report.markdown
    write_report(report, summary_file.parent / "evotox_smollm2")
    summary["report"] = report.markdown
    atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
    print(report.markdown)


if __name__ == "__main__":
    main()
