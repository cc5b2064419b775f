"""sfbow on Dask: throughput on a two-process LocalCluster against single-process encode, and the cost of
getting the model to the workers.

Input: STS-B train sentences repeated to ``--sentences`` rows, written as ``--files`` text files (one
sentence per line) that the workers read themselves (``dask.bag.read_text``), as a large job would read
its corpus from storage. Model: the default GloVe 6B 50d model (K = 100), saved with ``SFBoW.save``.

Measured (median of ``--repeats`` runs, the variants taking turns):

* ``single``: one process reads the files and calls ``SFBoW.encode`` (1 thread, and all threads);
* ``cluster``: ``LocalCluster(n_workers=2, threads_per_worker=1)`` encoding through ``sfbow.dask``, with
  three ends: ``reduce`` (a column sum on the workers: the encode itself, nothing shipped), ``zarr``
  (workers write their chunks to a zarr store, the streaming path: with zarr's default zstd and
  uncompressed) and ``gather`` (all vectors shipped to the client, 400 bytes a row);
* the model's delivery: hashing the file on the client, the first :func:`sfbow.dask.prepare_model` on
  fresh workers (each loads the file once), a second one (cache hit), and the scatter alternative's
  transfer (the file's bytes broadcast to the workers, before any load).

Writes ``benchmarks/results/dask_encode.json`` and ``.md``. Stages already in the JSON are kept unless
``--fresh`` (the run is resumable). Run: ``python benchmarks/dask_encode.py`` (about 12 minutes on two busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfbow_common.atomic import atomic_write_text
from sfbow_common.data import data_path
from sfbow_common.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
STSB_TRAIN = data_path("sts", "stsbenchmark", "sts-train.csv")
RESULTS = ROOT / "benchmarks" / "results"
JSON_PATH = RESULTS / "dask_encode.json"


def write_corpus(folder: Path, n: int, files: int) -> list[str]:
    """STS-B train sentences repeated to ``n`` lines, split over ``files`` text files; returns the lines."""
    from sfbow.evaluation import load_stsb

    train = load_stsb(STSB_TRAIN)
    base = train.sentences1 + train.sentences2
    lines = (base * (n // len(base) + 1))[:n]
    per_file = -(-n // files)
    for i in range(files):
        chunk = lines[i * per_file : (i + 1) * per_file]
        atomic_write_text(folder / f"part{i:03d}.txt", "".join(line + "\n" for line in chunk))
    return lines


def _strip_newlines(partition: list[str]) -> list[str]:
    return [line.rstrip("\n") for line in partition]


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_rates(variants: dict[str, Callable[[], Any]], rows: int, repeats: int,
                 cpu_seconds: Callable[[], float] = time.process_time) -> dict[str, dict[str, float]]:
    """Per variant, median of ``repeats`` turns (the variants alternate): ``wall``, rows per second, and
    ``cpu``, rows per CPU second of the processes doing the work (``cpu_seconds``: their CPU time so far),
    the figure that a machine shared with other jobs disturbs less."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start_cpu = cpu_seconds()
            wall[name].append(timed(run))
            cpu[name].append(cpu_seconds() - start_cpu)
    return {name: {"wall": rows / statistics.median(wall[name]), "cpu": rows / statistics.median(cpu[name])}
            for name in variants}


def single_process(folder: Path, model_path: Path, rows: int, repeats: int) -> dict[str, float]:
    from sfbow import SFBoW

    model = SFBoW.load(model_path)
    model.encode(["warm up"], n_threads=1)
    files = sorted(folder.glob("part*.txt"))

    def read() -> list[str]:
        return [line for path in files for line in path.read_text(encoding="utf-8").splitlines()]

    lines = read()
    return median_rates({
        "single, encode only (1 thread)": lambda: model.encode(lines, n_threads=1),
        "single, read + encode (1 thread)": lambda: model.encode(read(), n_threads=1),
        f"single, read + encode ({os.cpu_count()} threads)": lambda: model.encode(read(), n_threads=None),
    }, rows, repeats)


def cluster_runs(folder: Path, model_path: Path, rows: int, repeats: int, workers: int) -> dict[str, Any]:
    import dask.bag as db
    from distributed import Client, LocalCluster

    from sfbow import dask as sfbow_dask

    out: dict[str, Any] = {}
    out["client hash s"] = timed(lambda: sfbow_dask.file_sha256(model_path))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers, timeout=120)
        out["prepare, fresh workers s"] = timed(lambda: sfbow_dask.prepare_model(model_path))
        out["prepare, cached s"] = timed(lambda: sfbow_dask.prepare_model(model_path))
        payload = model_path.read_bytes()
        out["model file MB"] = len(payload) / 1e6
        start = time.perf_counter()
        scattered = client.scatter(payload, broadcast=True, hash=False)
        out["scatter model bytes s"] = time.perf_counter() - start
        client.cancel(scattered)
        reference = sfbow_dask.prepare_model(model_path)
        bag = db.read_text(str(folder / "part*.txt"), blocksize=None).map_partitions(_strip_newlines)

        def vectors():
            return sfbow_dask.encode_bag(bag, reference)

        store = folder / "vectors.zarr"
        counted = sfbow_dask.encode_bag(bag, reference, lengths=True)  # to_zarr needs known chunks

        def cpu_seconds() -> float:  # the workers' and this process's (client and scheduler) CPU time
            return sum(client.run(time.process_time).values()) + time.process_time()

        rates = median_rates({
            f"cluster {workers}x1, reduce on workers": lambda: vectors().sum(axis=0).compute(),
            f"cluster {workers}x1, write zarr (zstd, zarr's default)": lambda: counted.to_zarr(str(store), overwrite=True),
            f"cluster {workers}x1, write zarr (uncompressed)":
                lambda: counted.to_zarr(str(store), overwrite=True, compressors=None),
            f"cluster {workers}x1, gather to client": lambda: vectors().compute(),
        }, rows, repeats, cpu_seconds)
        out["rates"] = rates
        loads = client.run(sfbow_dask.worker_cache_info)
        out["loads per worker"] = sorted(sum(info["loads"].values()) for info in loads.values())
    return out


def report(results: dict[str, Any]) -> str:
    rates = {**results["single"], **results["cluster"]["rates"]}
    base = results["single"]["single, read + encode (1 thread)"]
    rows = [[name, f"{rate['wall']:,.0f}", f"{rate['wall'] / base['wall']:.2f}", f"{rate['cpu']:,.0f}"]
            for name, rate in rates.items()]
    cluster = results["cluster"]
    costs = [
        ["hash the model file on the client", f"{cluster['client hash s']:.2f}"],
        ["prepare_model, fresh workers (each loads the file once)", f"{cluster['prepare, fresh workers s']:.2f}"],
        ["prepare_model again (cache hit on every worker)", f"{cluster['prepare, cached s']:.2f}"],
        [f"scatter the file's {cluster['model file MB']:.0f} MB to {results['workers']} workers (transfer only)",
         f"{cluster['scatter model bytes s']:.2f}"],
    ]
    return "\n".join([
        f"# sfbow on Dask ({results['machine']})",
        "",
        f"{results['sentences']:,} STS-B train sentences (repeated) in {results['files']} text files, GloVe 6B 50d, "
        f"K = 100, median of {results['repeats']} alternating runs; load average {results['loadavg']} at the start, "
        f"{results.get('loadavg_end', '?')} at the end. CPU seconds count the client, scheduler and worker "
        "processes. "
        f"Model loads per worker over the whole run: {cluster['loads per worker']}.",
        "",
        markdown_table(["run", "sentences/s (wall)", "x single read + encode", "sentences/CPU-s"], rows,
                       align="lrrr"),
        "",
        markdown_table(["model delivery", "seconds"], costs, align="lr"),
        "",
        "Reproduce: `python benchmarks/dask_encode.py --fresh` (scaling model: docs/scaling.md).",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="recompute every stage")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict[str, Any] = {} if args.fresh or not JSON_PATH.exists() else json.loads(JSON_PATH.read_text())
    settings = {"sentences": args.sentences, "files": args.files, "workers": args.workers, "repeats": args.repeats}
    if any(results.get(key) != value for key, value in settings.items()):
        results = {}
    results.update(settings, machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    results.setdefault("loadavg", " ".join(f"{x:.2f}" for x in os.getloadavg()))

    from sfbow import SFBoW

    with tempfile.TemporaryDirectory(prefix="sfbow-dask-bench-") as scratch:
        folder = Path(scratch)
        write_corpus(folder, args.sentences, args.files)
        model_path = folder / "model.npz"
        SFBoW().save(model_path)
        stages: dict[str, Callable[[], Any]] = {
            "single": lambda: single_process(folder, model_path, args.sentences, args.repeats),
            "cluster": lambda: cluster_runs(folder, model_path, args.sentences, args.repeats, args.workers),
        }
        for stage, run in stages.items():
            if stage in results:
                print(f"{stage}: kept from {JSON_PATH.name}")
                continue
            results[stage] = run()
            atomic_write_text(JSON_PATH, json.dumps(results, indent=2))
            print(f"{stage}: done")
    results.setdefault("loadavg_end", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    atomic_write_text(JSON_PATH, json.dumps(results, indent=2))
    atomic_write_text(RESULTS / "dask_encode.md", report(results))
    print(report(results))


if __name__ == "__main__":
    main()
