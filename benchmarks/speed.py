"""Encoding speed of sfbow against its peers, from raw Python strings to an (n, dim) array.

Every encoder gets the same sentences (STS-B train sentences, repeated), the same GloVe 6B 50d
vocabulary and the same tokenisation rule (lower-case, ``\\w+|[^\\w\\s]``). Runs alternate between
encoders and the median is reported, so a busy machine slows all of them alike. Also measured:
thread scaling and the GIL-bound share of ``encode``, peak memory while streaming a large input (in a fresh process), the membership
table variants (float32, float16, on-the-fly), and cold/warm start (first encode in a new process
with an empty / a filled Numba cache).

Peers (one process, one thread):

* ``python``: the plain-Python baseline, ``sfbow.tokenization.tokenize`` + dict look-up (ids only).
* ``fse-sif``: fse 1.0.0 ``SIF`` ``infer`` (Cython), fitted on the same sentences; tokenisation
  with ``sfbow.tokenization.tokenize`` is included in the timing.
* ``model2vec``: ``StaticModel.encode`` (one process) over a word-level ``tokenizers`` tokenizer
  built from the GloVe vocabulary (lower-case normaliser, the same regex as pre-tokeniser) and
  the GloVe matrix.

A peer that cannot be imported is reported as skipped, with the reason. ``TOKENIZERS_PARALLELISM``
is set to ``false`` (unless set already): the comparison is one thread each, and the idle Rust
thread pool of ``tokenizers`` otherwise slowed the other encoders in the same process (sfbow ran
at 650,000 instead of 1,050,000 sentences/s after a model2vec run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared_utils.atomic import atomic_write_text

SETUP = """\
setup (peers live in their own virtual environment, outside the repository):
  python -m venv /work/bench-venv
  /work/bench-venv/bin/pip install -e /work/main model2vec tokenizers psutil \\
      cython setuptools gensim requests wordfreq scikit-learn
  # fse 1.0.0 ships C files that predate Python 3.11 and a setup.py that fails under pip;
  # keep the unpacked source (--no-clean), patch one line, drop the C files, build from .pyx:
  /work/bench-venv/bin/pip download --no-deps --no-binary :all: --no-build-isolation --no-clean fse==1.0.0
  #   (metadata generation fails; copy the unpacked source from /tmp/pip-download-*/fse_*/)
  sed -i 's/__builtins__.__NUMPY_SETUP__ = False/import builtins; builtins.__NUMPY_SETUP__ = False/' fse-1.0.0/setup.py
  find fse-1.0.0 -name '*.c' -delete
  /work/bench-venv/bin/pip install --no-build-isolation --no-deps ./fse-1.0.0
run:
  /work/bench-venv/bin/python benchmarks/speed.py
"""

ROOT = Path(__file__).resolve().parents[1]
STSB_TRAIN = ROOT.parent / "shared" / "sts" / "stsbenchmark" / "sts-train.csv"
RESULTS = ROOT / "benchmarks" / "results"


def load_sentences(path: Path, n: int) -> list[str]:
    """The STS-B train sentences (tab-separated fields 6 and 7), repeated to ``n`` sentences."""
    lines = path.read_text(encoding="utf-8").splitlines()
    base = [s for line in lines for s in line.split("\t")[5:7]]
    return (base * (n // len(base) + 1))[:n]


# -- encoders ---------------------------------------------------------------------------------------

Encoder = Callable[[Sequence[str]], Any]


def sfbow_encoder(n_threads: int) -> Encoder:
    import sfbow

    model = sfbow.default_model()
    return lambda sentences: model.encode(sentences, n_threads=n_threads, show_progress=False)


def python_encoder() -> Encoder:
    import sfbow
    from sfbow.tokenization import tokenize

    index = sfbow.default_model().vectors.index

    def ids(sentences: Sequence[str]) -> list[list[int]]:
        return [[index[t] for t in tokenize(s) if t in index] for s in sentences]

    return ids


def fse_encoder(train: Sequence[str]) -> Encoder:
    from fse import SIF, IndexedList
    from gensim.models import KeyedVectors

    import sfbow
    from sfbow.tokenization import tokenize

    vectors = sfbow.default_model().vectors
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.matrix)
    model = SIF(keyed, workers=1, lang_freq="en")
    model.train(IndexedList([tokenize(s) for s in train]))

    def infer(sentences: Sequence[str]) -> np.ndarray:
        return model.infer(IndexedList([tokenize(s) for s in sentences]))

    return infer


def model2vec_encoder() -> Encoder:
    from model2vec import StaticModel
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    import sfbow
    from sfbow.tokenization import TOKEN_PATTERN

    vectors = sfbow.default_model().vectors
    vocab = dict(vectors.index)
    vocab["[UNK]"] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated"),
    ])
    matrix = np.vstack([vectors.matrix, np.zeros((1, vectors.dim), np.float32)])
    model = StaticModel(matrix, tokenizer, normalize=False)
    return lambda sentences: model.encode(list(sentences), use_multiprocessing=False)


def build_peers(train: Sequence[str]) -> tuple[dict[str, Encoder], dict[str, str]]:
    """The encoders that can be built here, and the reason for each one that cannot."""
    builders: dict[str, Callable[[], Encoder]] = {
        "sfbow": lambda: sfbow_encoder(1),
        "python": python_encoder,
        "fse-sif": lambda: fse_encoder(train),
        "model2vec": model2vec_encoder,
    }
    encoders, skipped = {}, {}
    for name, build in builders.items():
        try:
            encoders[name] = build()
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return encoders, skipped


def alternate(encoders: dict[str, Encoder], sentences: Sequence[str], repeats: int) -> dict[str, dict[str, float]]:
    """Median sentences/s of each encoder; the encoders take turns, ``repeats`` rounds (after a warm-up).

    Per encoder: ``wall`` (sentences per wall-clock second, the figure that counts), ``cpu``
    (per second of this process's CPU time, all threads: less sensitive to other processes on a
    shared machine) and ``cores`` (CPU time / wall time: the parallelism actually obtained).
    """
    for encode in encoders.values():
        encode(sentences[:1000])
    wall: dict[str, list[float]] = {name: [] for name in encoders}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(repeats):
        for name, encode in encoders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            encode(sentences)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    n = len(sentences)
    return {name: {"wall": n / statistics.median(wall[name]), "cpu": n / statistics.median(cpu[name]),
                   "cores": statistics.median(c / w for c, w in zip(cpu[name], wall[name]))}
            for name in encoders}


def serial_share(sentences: Sequence[str], repeats: int) -> dict[str, float]:
    """Share of one-thread encode time spent outside the Numba kernels, in Python under the GIL.

    That part (joining and encoding strings, lengths, input checks, the Python fallback) of one
    chunk cannot overlap the same part of another; the kernels release the GIL and run side by
    side. So with ``t`` threads the speed-up is at most ``min(t, 1 / s)``. Measured in CPU time,
    by wrapping the kernels.
    """
    import numba

    import sfbow
    from sfbow import _kernels, _native_tokenizer

    model = sfbow.default_model()
    wrapped = [(_native_tokenizer, "_token_ids"), (_kernels, "max_pool"), (_kernels, "max_pool_half")]
    originals = [getattr(module, name) for module, name in wrapped]
    in_kernels = [0.0]

    def timed(kernel: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            start = time.process_time()
            try:
                return kernel(*args)
            finally:
                in_kernels[0] += time.process_time() - start
        return call

    shares = []
    try:
        for (module, name), kernel in zip(wrapped, originals):
            setattr(module, name, timed(kernel))
        numba.set_num_threads(1)
        for _ in range(repeats):
            in_kernels[0] = 0.0
            start = time.process_time()
            model.encode(sentences, n_threads=1, show_progress=False)
            shares.append(1 - in_kernels[0] / (time.process_time() - start))
    finally:
        for (module, name), kernel in zip(wrapped, originals):
            setattr(module, name, kernel)
    share = statistics.median(shares)
    return {"serial_share": share, "gil_bound": 1 / share}


# -- memory, table variants and start-up (each in a fresh process) ----------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_during(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``work``; return its result, its wall time and the peak RSS (MB) sampled every 2 ms."""
    peak = rss_mb()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        result = work()
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    return result, elapsed, max(peak, rss_mb())


def child_memory(memberships: str, n: int) -> dict[str, float]:
    """In this (fresh) process: build the model, then encode ``n`` sentences, watching RSS."""
    import sfbow

    sentences = load_sentences(STSB_TRAIN, n)
    model = sfbow.SFBoW(memberships=memberships) if memberships != "float32" else sfbow.default_model()
    model.encode(sentences[:1000])  # compile / load the kernels, build the hash table
    before = rss_mb()
    out, seconds, peak = peak_during(lambda: model.encode(sentences, n_threads=1, show_progress=False))
    table = getattr(model, "table", None)
    return {
        "sentences": n,
        "sentences_per_s": n / seconds,
        "table_mb": 0.0 if table is None else table.nbytes / 2**20,
        "output_mb": out.nbytes / 2**20,
        "rss_before_encode_mb": before,
        "peak_rss_mb": peak,
        "peak_over_before_mb": peak - before,
        "peak_over_output_mb": peak - before - out.nbytes / 2**20,
    }


def child_start() -> dict[str, float]:
    """In this (fresh) process: seconds to import sfbow, build the default model, encode once."""
    start = time.perf_counter()
    import sfbow

    imported = time.perf_counter()
    model = sfbow.default_model()
    built = time.perf_counter()
    model.encode(["A man is playing a guitar."])
    first = time.perf_counter()
    model.encode(["A man is playing a guitar."])
    second = time.perf_counter()
    return {"import_s": imported - start, "model_s": built - imported, "first_encode_s": first - built,
            "second_encode_s": second - first}


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_times() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        return {"cold": run_child(["--child-start"], env), "warm": run_child(["--child-start"], env)}


# -- report -----------------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    lines = [f"# sfbow encode speed ({results['machine']})", "",
             f"{results['sentences']:,} STS-B train sentences (repeated), GloVe 6B 50d, K={results['k']}, "
             f"median of {results['repeats']} alternating runs; load average {results['loadavg']} at the start, "
             f"{results['loadavg_end']} after the throughput runs.", "",
             "| encoder | sentences/s (wall) | sfbow is x times faster | sentences/CPU-s | x (CPU) |",
             "|---|---:|---:|---:|---:|"]
    sf = results["throughput"]["sfbow"]
    for name, rate in results["throughput"].items():
        lines.append(f"| {name} | {rate['wall']:,.0f} | {sf['wall'] / rate['wall']:.2f} | {rate['cpu']:,.0f} | "
                     f"{sf['cpu'] / rate['cpu']:.2f} |")
    for name, reason in results["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} | | | |")
    lines += ["", "| sfbow threads | sentences/s (wall) | speed-up | cores obtained (CPU s / wall s) |",
              "|---:|---:|---:|---:|"]
    one = results["threads"]["1"]["wall"]
    for threads, rate in results["threads"].items():
        lines.append(f"| {threads} | {rate['wall']:,.0f} | {rate['wall'] / one:.2f} | {rate['cores']:.2f} |")
    serial = results["serial"]
    lines += ["", f"One-thread encode spends {serial['serial_share']:.0%} of its CPU time in Python under the GIL "
              f"(outside the kernels); chunks take turns on the GIL and run their kernels side by side, so "
              f"{serial['gil_bound']:.1f}x is the most any number of threads could give."]
    if results.get("memory"):
        lines += ["", "| memberships | sentences | sentences/s (1 thread) | table MB | output MB | "
                  "peak RSS over start MB | of which beyond output MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for kind, m in results["memory"].items():
            if "error" in m:
                lines.append(f"| {kind} | error: {m['error']} | | | | | |")
                continue
            lines.append(f"| {kind} | {m['sentences']:,} | {m['sentences_per_s']:,.0f} | {m['table_mb']:.0f} | "
                         f"{m['output_mb']:.0f} | {m['peak_over_before_mb']:.0f} | {m['peak_over_output_mb']:.0f} |")
    if results.get("start"):
        lines += ["", "| start | import s | model s | first encode s | second encode s |", "|---|---:|---:|---:|---:|"]
        for kind, s in results["start"].items():
            if "error" in s:
                lines.append(f"| {kind} | error: {s['error']} | | | |")
                continue
            lines.append(f"| {kind} | {s['import_s']:.2f} | {s['model_s']:.2f} | {s['first_encode_s']:.3f} | "
                         f"{s['second_encode_s']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, epilog=SETUP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=200_000, help="sentences per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds; the median is kept")
    parser.add_argument("--memory-sentences", type=int, default=2_000_000,
                        help="sentences of the streaming-memory run (0: skip)")
    parser.add_argument("--no-start", action="store_true", help="skip the cold/warm start measurement")
    parser.add_argument("--output", type=Path, default=RESULTS / "speed.json",
                        help="JSON figures; a Markdown table goes beside it (.md)")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--child-start", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, args.memory_sentences)))
        return
    if args.child_start:
        print(json.dumps(child_start()))
        return

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numba

    import sfbow

    sentences = load_sentences(STSB_TRAIN, args.sentences)
    encoders, skipped = build_peers(sentences[:20_000])
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "sentences": args.sentences, "repeats": args.repeats, "k": sfbow.default_model().dim,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "skipped": skipped,
        "tokenizers_parallelism": os.environ["TOKENIZERS_PARALLELISM"],
    }
    print(f"load average {results['loadavg']} on {os.cpu_count()} CPUs", flush=True)
    results["throughput"] = alternate(encoders, sentences, args.repeats)
    thread_counts = sorted({1, 2, numba.config.NUMBA_NUM_THREADS})
    scaling = alternate({str(t): sfbow_encoder(t) for t in thread_counts}, sentences, args.repeats)
    results["threads"] = scaling
    results["serial"] = serial_share(sentences, args.repeats)
    results["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.memory_sentences:
        results["memory"] = {kind: run_child(["--child-memory", kind, "--memory-sentences", str(args.memory_sentences)])
                             for kind in ("float32", "float16", "on-the-fly")}
    if not args.no_start:
        results["start"] = start_times()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    atomic_write_text(args.output.with_suffix(".md"), report)
    print(report)


if __name__ == "__main__":
    main()
