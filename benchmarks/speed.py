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

from sfbow_common.atomic import atomic_write_text
from sfbow_common.data import data_path
from sfbow_common.tables import markdown_table

SETUP = """\
setup (peers live in their own virtual environment, outside the repository):
  python -m venv /work/bench-venv
  /work/bench-venv/bin/pip install -e "/work/main[distill,minilm]" model2vec tokenizers psutil \\
      cython "setuptools>=70" wheel gensim requests wordfreq scikit-learn
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
STSB_TRAIN = data_path("sts", "stsbenchmark", "sts-train.csv")
RESULTS = ROOT / "benchmarks" / "results"


def load_sentences(path: Path, n: int) -> list[str]:
    """The STS-B train sentences (tab-separated fields 6 and 7), repeated to ``n`` sentences."""
    lines = path.read_text(encoding="utf-8").splitlines()
    base = [s for line in lines for s in line.split("\t")[5:7]]
    return (base * (n // len(base) + 1))[:n]


# -- encoders ---------------------------------------------------------------------------------------

Encoder = Callable[[Sequence[str]], Any]


def one_thread(model: Any) -> Encoder:
    """``model.encode`` on one thread, no progress bar."""
    return lambda sentences: model.encode(sentences, n_threads=1, show_progress=False)


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


def distilled_model() -> Any:
    """The ``"minilm"`` model (distilled from all-MiniLM-L6-v2), from the cache or built once."""
    from sfbow.distill import pretrained

    return pretrained("minilm")


def distilled_encoders() -> tuple[dict[str, Encoder], dict[str, Any]]:
    """sfbow on the distilled vectors (several table settings) and model2vec on the very same vectors.

    ``model2vec``: ``StaticModel.encode`` over the model's own WordPiece tokenizer (a ``tokenizers``
    tokenizer from the same vocabulary and options) and the same piece vectors, mean pooling.
    Also returns each sfbow variant's table size in MB.
    """
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    from sfbow import SFBoW
    from sfbow.subword import SubwordVectors, frequent_multipiece_words

    model = distilled_model()
    vectors = model.vectors
    pieces = SubwordVectors(vectors.wordpiece, vectors.matrix)

    def with_table(n_words: int) -> SubwordVectors:
        return SubwordVectors(vectors.wordpiece, vectors.matrix, frequent_multipiece_words(vectors.wordpiece, n_words))

    variants = {
        "sfbow minilm (float16, pieces only; the default)": SFBoW.from_parts(
            pieces, model.universe, normalize=model.normalize, memberships="float16"),
        "sfbow minilm (float32, pieces only)": SFBoW.from_parts(
            pieces, model.universe, normalize=model.normalize, memberships="float32"),
        "sfbow minilm (float16, 100k-word table)": SFBoW.from_parts(
            with_table(100_000), model.universe, normalize=model.normalize, memberships="float16"),
        "sfbow minilm (float16, 400k-word table)": SFBoW.from_parts(
            with_table(400_000), model.universe, normalize=model.normalize, memberships="float16"),
    }
    encoders: dict[str, Encoder] = {name: one_thread(m) for name, m in variants.items()}
    tokenizer = Tokenizer.from_str(json.dumps(vectors.wordpiece.to_json()))
    static = StaticModel(vectors.matrix, tokenizer, normalize=True)
    encoders["model2vec (same vectors)"] = lambda sentences: static.encode(list(sentences), use_multiprocessing=False)
    info = {name: {"table_mb": m.table.nbytes / 2**20, "table_rows": int(m.table.shape[0]), "k": m.dim}
            for name, m in variants.items()}
    return encoders, info


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


def alternate(encoders: dict[str, Encoder], sentences: Sequence[str], repeats: int,
              back_to_back: bool = False) -> dict[str, dict[str, float]]:
    """Median sentences/s of each encoder; the encoders take turns, ``repeats`` rounds (after a warm-up),
    or with ``back_to_back`` each runs ``repeats`` times in a row (after a full-size warm-up): the steady
    state of a process that keeps encoding and reuses the memory it just freed.

    Per encoder: ``wall`` (sentences per wall-clock second, the figure that counts), ``cpu``
    (per second of this process's CPU time, all threads: less sensitive to other processes on a
    shared machine) and ``cores`` (CPU time / wall time: the parallelism actually obtained).
    """
    for encode in encoders.values():
        encode(sentences[:1000])
    wall: dict[str, list[float]] = {name: [] for name in encoders}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    schedule = ([name for name in encoders for _ in range(repeats + 1)] if back_to_back
                else [name for _ in range(repeats) for name in encoders])
    for i, name in enumerate(schedule):
        start, start_cpu = time.perf_counter(), time.process_time()
        encoders[name](sentences)
        if back_to_back and (i == 0 or schedule[i - 1] != name):
            continue  # the warm-up of this encoder's streak
        wall[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)
    n = len(sentences)
    return {name: {"wall": n / statistics.median(wall[name]), "cpu": n / statistics.median(cpu[name]),
                   "cores": statistics.median(c / w for c, w in zip(cpu[name], wall[name]))}
            for name in encoders}


def fresh_memory_cost(n_bytes: int, idle_seconds: float = 4.0, repeats: int = 3) -> dict[str, float]:
    """Milliseconds to allocate and fill ``n_bytes`` (one encode's output) right after the same block was
    freed, and after ``idle_seconds`` of idling. On a virtual machine that hands freed memory back to its
    host (free page reporting), the first write to it after a pause costs far more: that is what an
    encoder whose output is large against its compute pays in the alternating runs."""
    def fill() -> float:
        start = time.perf_counter()
        block = np.empty(n_bytes, np.uint8)
        block[:] = 1
        return (time.perf_counter() - start) * 1000

    fill()
    immediate = statistics.median(fill() for _ in range(repeats))
    after_idle = []
    for _ in range(repeats):
        time.sleep(idle_seconds)
        after_idle.append(fill())
    return {"mb": n_bytes / 1e6, "idle_seconds": idle_seconds, "immediate_ms": immediate,
            "after_idle_ms": statistics.median(after_idle)}


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
    wrapped = [(_native_tokenizer, "_token_ids"), (_native_tokenizer, "_pool_tokens"), (_kernels, "max_pool"),
               (_kernels, "max_pool_half"), (_kernels, "widen_half")]
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
    model = sfbow.SFBoW(memberships=memberships)
    model.encode(sentences[:1000])  # compile / load the kernels, build the hash table
    before = rss_mb()
    out, seconds, peak = peak_during(lambda: model.encode(sentences, n_threads=1, show_progress=False))
    output_bytes = out.nbytes
    del out  # the second encode's output lands on the memory the first one just freed
    start = time.perf_counter()
    model.encode(sentences, n_threads=1, show_progress=False)
    again = time.perf_counter() - start
    table = getattr(model, "table", None)
    return {
        "sentences": n,
        "sentences_per_s": n / seconds,
        "second_sentences_per_s": n / again,
        "table_mb": 0.0 if table is None else table.nbytes / 2**20,
        "output_mb": output_bytes / 2**20,
        "rss_before_encode_mb": before,
        "peak_rss_mb": peak,
        "peak_over_before_mb": peak - before,
        "peak_over_output_mb": peak - before - output_bytes / 2**20,
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
# One formatter per table, shared by the results file (speed.md) and the docs (benchmarks/render_docs.py).

#: Row labels of the peers.
LABELS = {
    "sfbow": "**sfbow** (`SFBoW.encode`, `n_threads=1`)",
    "python": "plain Python: `tokenize` + dict look-up (ids only, no vectors)",
    "fse-sif": "fse 1.0.0 SIF `infer` (+ `tokenize`)",
    "model2vec": "model2vec `StaticModel.encode` (one process)",
}
#: How many times faster than a peer sfbow must be (wall clock, one thread each).
#: Issue 12 raised the fse target from 5x to 10x.
TARGETS = {"fse-sif": 10.0, "model2vec": 8.0}
#: The distilled model against model2vec on the same vectors.
DISTILLED_TARGET = 8.0
#: The two-thread speed-up sfbow must reach.
THREADS_TARGET = 1.7
MEMBERSHIP_LABELS = {"float32": '`"float32"`', "float16": '`"float16"` (the default `"auto"` picks it here)',
                     "on-the-fly": '`"on-the-fly"` (no table; per-batch memberships)'}
START_LABELS = {"cold": "cold: empty Numba cache (compiles)", "warm": "warm: cache on disk (`cache=True`)"}


def throughput_table(results: dict[str, Any]) -> str:
    """Sentences/s of every encoder, sfbow's ratio to each (wall and CPU time), and the targets: alternating
    runs, and back-to-back runs (the steady state) where measured."""
    sf = results["throughput"]["sfbow"]
    steady = results.get("steady", {})
    rows: list[list[object]] = []
    for name, rate in results["throughput"].items():
        ratio = sf["wall"] / rate["wall"]
        target = TARGETS.get(name)
        row: list[object] = [LABELS.get(name, name), f"{rate['wall']:,.0f}", f"{ratio:.2f}",
                             f"{sf['cpu'] / rate['cpu']:.2f}"]
        verdicts = [] if target is None else [f"alternating {'met' if ratio >= target else 'missed'}"]
        if steady:
            steady_ratio = steady["sfbow"]["wall"] / steady[name]["wall"]
            row += [f"{steady[name]['wall']:,.0f}", f"{steady_ratio:.2f}"]
            if target is not None:
                verdicts.append(f"back-to-back {'met' if steady_ratio >= target else 'missed'}")
        rows.append([*row, "" if target is None else f">= {target:g}x: {', '.join(verdicts)}"])
    blank = ["", "", ""] + (["", ""] if steady else [])
    rows += [[LABELS.get(name, name), f"skipped: {reason}", *blank] for name, reason in results["skipped"].items()]
    header = ["encoder (one thread)", "sentences/s", "sfbow is x times faster", "per CPU second"]
    if steady:
        header += ["back-to-back sentences/s", "x (back-to-back)"]
    table = markdown_table([*header, "target"], rows, align="lrrr" + ("rr" if steady else "") + "l")
    fresh = results.get("fresh_memory")
    if fresh:
        table += (f"\n\nWriting a fresh {fresh['mb']:.0f} MB block (sfbow's output here) took "
                  f"{fresh['immediate_ms']:.0f} ms right after freeing one and {fresh['after_idle_ms']:.0f} ms after "
                  f"{fresh['idle_seconds']:g} s idle on this machine: in the alternating runs each encoder writes "
                  "memory that others freed seconds before, and sfbow's output is large against its compute.")
    return table


def threads_table(results: dict[str, Any]) -> str:
    """sfbow's sentences/s by thread count, the speed-up against the target, and the GIL bound."""
    one = results["threads"]["1"]["wall"]
    rows = [[threads, f"{rate['wall']:,.0f}", f"{rate['wall'] / one:.2f}", f"{rate['cores']:.2f}"]
            for threads, rate in results["threads"].items()]
    table = markdown_table([f"sfbow threads ({results['sentences']:,} sentences)", "sentences/s", "speed-up",
                            "cores obtained (CPU s / wall s)"], rows, align="rrrr")
    two = results["threads"]["2"]["wall"] / one
    serial = results["serial"]
    return (f"{table}\n\nWith 2 threads: {two:.2f}x (target {THREADS_TARGET:g}x: "
            f"{'met' if two >= THREADS_TARGET else 'missed'} in this run). One-thread encode spends "
            f"{serial['serial_share']:.0%} of its CPU time in Python under the GIL (outside the kernels); chunks "
            f"take turns on the GIL and run their kernels side by side, so {serial['gil_bound']:.1f}x is the most "
            "any number of threads could give.")


def memory_table(results: dict[str, Any]) -> str:
    """Speed, table and output size, and peak memory of each membership kind (fresh processes)."""
    rows: list[list[object]] = []
    sentences = 0
    for kind, m in results["memory"].items():
        if "error" in m:
            rows.append([MEMBERSHIP_LABELS.get(kind, kind), f"error: {m['error']}", "", "", "", "", ""])
            continue
        sentences = m["sentences"]
        second = m.get("second_sentences_per_s")  # absent from results of before 2026-12-04
        rows.append([MEMBERSHIP_LABELS.get(kind, kind), f"{m['sentences_per_s']:,.0f}",
                     "" if second is None else f"{second:,.0f}", f"{m['table_mb']:.0f}",
                     f"{m['output_mb']:.0f}", f"{m['peak_over_before_mb']:.0f}", f"{m['peak_over_output_mb']:.0f}"])
    table = markdown_table([f"memberships (1 thread, {sentences:,} sentences, fresh process)",
                            "first encode, sentences/s", "second encode", "table MB", "output MB",
                            "peak RSS growth while encoding, MB", "beyond the output, MB"], rows)
    return (f"{table}\n\nThe first encode writes its output on memory this process has never touched, which on "
            "a virtual machine can cost more than the encoding itself (see the fresh-block figures above); how "
            "much memory the process freed before shifts it (building a float16 table frees its float32 "
            "temporary, which the output then reuses). The second encode writes on the block the first just "
            "freed: it compares the kinds themselves.")


def start_table(results: dict[str, Any]) -> str:
    """Import, model build, first and second encode times of a new process, cold and warm cache."""
    rows: list[list[object]] = []
    for kind, t in results["start"].items():
        if "error" in t:
            rows.append([START_LABELS.get(kind, kind), f"error: {t['error']}", "", "", ""])
            continue
        rows.append([START_LABELS.get(kind, kind), f"{t['import_s']:.2f} s", f"{t['model_s']:.2f} s",
                     f"{t['first_encode_s']:.2f} s", f"{t['second_encode_s']:.4f} s"])
    return markdown_table(["start (default model, new process)", "import", "build model",
                           "first encode (1 sentence)", "second encode"], rows)


def distilled_table(results: dict[str, Any]) -> str:
    """The distilled model's variants against model2vec on the same vectors, with their table sizes."""
    rates, tables = results["distilled"]["throughput"], results["distilled"]["tables"]
    peer = rates["model2vec (same vectors)"]["wall"]
    rows: list[list[object]] = []
    for name, rate in rates.items():
        table = tables.get(name)
        ratio = rate["wall"] / peer
        verdict = "" if table is None else f">= {DISTILLED_TARGET:g}x: {'met' if ratio >= DISTILLED_TARGET else 'missed'}"
        rows.append([name, f"{rate['wall']:,.0f}", f"{ratio:.2f}", "" if table is None else f"{table['table_rows']:,}",
                     "" if table is None else f"{table['table_mb']:.0f}", verdict])
    return markdown_table(["distilled all-MiniLM-L6-v2 vectors, K=160 (one thread)", "sentences/s", "x model2vec",
                           "table rows", "table MB", "target"], rows, align="lrrrrl")


def markdown(results: dict[str, Any]) -> str:
    """The results file ``speed.md``: the run's conditions, then every table."""
    parts = [f"# sfbow encode speed ({results['machine']})",
             f"{results['sentences']:,} STS-B train sentences (repeated), GloVe 6B 50d, K={results['k']}, "
             f"median of {results['repeats']} alternating runs; load average {results['loadavg']} at the start, "
             f"{results['loadavg_end']} after the throughput runs.",
             throughput_table(results), threads_table(results)]
    if results.get("distilled"):
        parts.append(distilled_table(results))
    if results.get("memory"):
        parts.append(memory_table(results))
    if results.get("start"):
        parts.append(start_table(results))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, epilog=SETUP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=200_000, help="sentences per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds; the median is kept")
    parser.add_argument("--memory-sentences", type=int, default=2_000_000,
                        help="sentences of the streaming-memory run (0: skip)")
    parser.add_argument("--no-start", action="store_true", help="skip the cold/warm start measurement")
    parser.add_argument("--no-distilled", action="store_true",
                        help="skip the distilled model (sfbow.distill.pretrained('minilm')) against model2vec")
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
    results["steady"] = alternate(encoders, sentences, args.repeats, back_to_back=True)
    results["fresh_memory"] = fresh_memory_cost(len(sentences) * results["k"] * 4)
    thread_counts = sorted({1, 2, numba.config.NUMBA_NUM_THREADS})
    scaling = alternate({str(t): sfbow_encoder(t) for t in thread_counts}, sentences, args.repeats)
    results["threads"] = scaling
    if not args.no_distilled:
        try:
            distilled, tables = distilled_encoders()
        except ImportError as exc:  # the distill extra (model2vec, transformers) is missing
            skipped["distilled"] = f"{type(exc).__name__}: {exc}"
        else:
            results["distilled"] = {"throughput": alternate(distilled, sentences, args.repeats), "tables": tables}
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
