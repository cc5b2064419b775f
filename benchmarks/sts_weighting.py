"""Weighting inside the fuzzy bag: every idea measured on the tuning sets, with its encoding speed.

    python benchmarks/sts_weighting.py [--data DIR] [--quick]

Each row is one way to make informative words count more in a sentence's memberships (see
sfbow/weighting.py and docs/sts.md), for the GloVe default (pca K=100) and the distilled MiniLM model
(pca K=160, normalised). Scores are Spearman x 100 of fuzzy Jaccard on the tuning sets only (STS-B
train/dev, SICK train/trial) and their mean, the tuning score every choice is made on; no test set is
read. Rows built from a weight array go through ``SFBoW(weighting=...)`` (the table, so the native
kernel's speed); soft max-pooling (p-norm) and the membership shift are computed here in NumPy over the
models' id arrays, to judge their accuracy before any kernel would be written for them. Round 2 (the
distilled model's gap to weighted means): the universe size and normalisation with the piece weights,
a k-means universe, sharper memberships (a power or a shifted ReLU), whole-word rows of their own and
per-element IDF-like weights; each of these is a transform of the table (a monotone map of each column
commutes with the max), so it too would cost the kernel nothing.

Speed: ``SFBoW.encode`` (one thread) of each chosen default against ``weighting="none"``, the runs
alternating in one process (order swapped every round), so a loaded machine slows both alike; the ratio
of best CPU times is the least noisy figure. Writes ``benchmarks/results/sts_weighting.json`` and ``.md``; ``python benchmarks/render_docs.py``
puts the tables into docs/sts.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from sfbow import SFBoW, _kernels
from sfbow.baselines import wordfreq_frequency
from sfbow.evaluation import STSDataset
from sfbow.model import unit_rows
from sfbow.similarities import paired_fuzzy_jaccard
from sfbow.sts_benchmark import DATA_FILES, TUNING_DATASETS, tuning_score
from sfbow.subword import SubwordVectors, frequent_multipiece_words
from sfbow.universe import kmeans
from sfbow.vectors import WordVectors, default_vectors
from sfbow.weighting import idf_weights, piece_weights, reference_piece_weights, zipf_weights
from sfbow_common.atomic import atomic_write_text
from sfbow_common.tables import markdown_table

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results"
DATA = REPOSITORY.parent / "shared" / "sts"

Pooled = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def tuning_sets(root: Path) -> dict[str, STSDataset]:
    """The tuning datasets (and nothing else) under ``root``, by their benchmark names."""
    found = {}
    for name in TUNING_DATASETS:
        relatives, loader = DATA_FILES[name]
        path = next((root / r for r in relatives if (root / r).exists()), None)
        if path is None:
            raise FileNotFoundError(f"tuning set {name!r} not found under {root} (looked for {', '.join(relatives)})")
        found[name] = loader(path)  # type: ignore[assignment]
    return found


def max_pool(table: np.ndarray, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The kernel's max-pool of ``table`` rows per sentence (as ``SFBoW`` encodes)."""
    out = np.empty((len(offsets) - 1, table.shape[1]), np.float32)
    _kernels.max_pool(np.ascontiguousarray(table, np.float32), ids, offsets, out)
    return out


def p_norm_pool(p: float) -> Pooled:
    """Soft max-pooling: ``(sum over words of mu^p)^(1/p)`` per universe element (p -> inf: the max)."""
    def pool(table: np.ndarray, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        powered = table[ids].astype(np.float64) ** p
        sums = np.zeros((len(offsets) - 1, table.shape[1]))
        filled = offsets[1:] > offsets[:-1]
        sums[filled] = np.add.reduceat(powered, offsets[:-1][filled], axis=0)
        return (sums ** (1 / p)).astype(np.float32)
    return pool


class Scorer:
    """Tuning scores of membership tables over one model's vocabulary (id arrays computed once)."""

    def __init__(self, model: SFBoW, datasets: dict[str, STSDataset], word_rows: bool = False) -> None:
        self.datasets = datasets
        self.ids = {name: (self._ids(model, d.sentences1, word_rows), self._ids(model, d.sentences2, word_rows))
                    for name, d in datasets.items()}

    @staticmethod
    def _ids(model: SFBoW, sentences: list[str], word_rows: bool) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(model.vectors, SubwordVectors):  # word_rows: the table words' rows after the pieces'
            return model.vectors.token_ids(sentences, word_rows=word_rows)
        from sfbow._lookup import token_ids

        return token_ids(sentences, model.vectors, model.tokenizer)

    def score(self, table: np.ndarray, pool: Pooled = max_pool) -> dict[str, float]:
        scores = {}
        for name, dataset in self.datasets.items():
            (ids1, offsets1), (ids2, offsets2) = self.ids[name]
            similarity = paired_fuzzy_jaccard(pool(table, ids1, offsets1), pool(table, ids2, offsets2))
            scores[name] = 100 * float(spearmanr(similarity, dataset.scores).statistic)
        return scores


def piece_table(model: SFBoW) -> np.ndarray:
    """A model's table without word rows (subword models: pieces only), as float32."""
    assert model.table is not None
    return np.asarray(model.table[:len(model.vectors)], np.float32)


def common_component_removed(vectors: WordVectors, n_words: int = 100_000) -> WordVectors:
    """The unit word vectors minus their first (uncentred) principal direction, fitted on the ``n_words``
    most frequent, as SIF + PC removes it from sentence vectors (here: before the memberships)."""
    unit = unit_rows(vectors.matrix)
    _, _, vt = np.linalg.svd(unit[:n_words].astype(np.float64), full_matrices=False)
    direction = vt[0].astype(np.float32)
    matrix = unit - np.outer(unit @ direction, direction)
    if isinstance(vectors, SubwordVectors):
        return SubwordVectors(vectors.wordpiece, matrix)
    return WordVectors(vectors.words, matrix)


def shifted(table: np.ndarray, n_words: int = 1000) -> np.ndarray:
    """Memberships minus their mean over the ``n_words`` most frequent words, clipped at 0 (max commutes
    with the shift, so this too would live in the table): the common component in membership space."""
    return np.maximum(table - table[:n_words].mean(axis=0), 0)


def sharpened(table: np.ndarray, power: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """``max(mu - shift, 0) ** power`` of unweighted memberships: how much near-neighbour mass counts."""
    return np.maximum(table - shift, 0) ** power


def element_idf(table: np.ndarray, beta: float, probability: np.ndarray) -> np.ndarray:
    """Each universe element's column times ``(m_k / mean m) ** -beta``, ``m_k`` its membership expected
    under the word distribution ``probability`` (from the vocabulary: Zipf from rank, or uniform): an
    element high for every sentence counts less. Scaling column k by ``w_k`` makes the fuzzy Jaccard
    ``sum w_k min / sum w_k max``, a per-element weighted Jaccard, with the same fixed-size sets."""
    expected = probability @ table / probability.sum()
    return table * (expected / expected.mean()) ** -beta


def zipf_probability(n: int) -> np.ndarray:
    """Zipf's ``p(r)`` of ranks 1..n, as :func:`sfbow.weighting.zipf_weights` estimates it."""
    return 1.0 / (np.arange(1, n + 1) * math.log(1.78 * n))


def glove_rows(datasets: dict[str, STSDataset], quick: bool) -> list[dict[str, Any]]:
    """Every GloVe idea's tuning scores."""
    vectors = default_vectors()
    none = SFBoW(weighting="none")
    scorer = Scorer(none, datasets)
    n = len(vectors)
    rows: list[dict[str, Any]] = []

    def add(idea: str, setting: str, table: np.ndarray, pool: Pooled = max_pool, native: bool = True) -> None:
        rows.append({"model": "GloVe", "idea": idea, "setting": setting, "native": native,
                     "scores": scorer.score(table, pool)})

    def weighted(weights: Any) -> np.ndarray:
        table = SFBoW(weighting=weights).table
        assert table is not None
        return table

    add("none (pre-weighting sfbow)", "unweighted max", piece_table(none))
    for a in ([3e-3] if quick else [1e-4, 1e-3, 3e-3, 1e-2]):
        add("SIF weights, Zipf from rank", f"a={a:g}", weighted(zipf_weights(n, a)))
    if not quick:
        p = np.array([wordfreq_frequency(w) for w in vectors.words])
        for a in (1e-3, 3e-3):
            add("SIF weights, wordfreq", f"a={a:g}", weighted(a / (a + p)))
        corpus = [s for d in datasets.values() for s in (*d.sentences1, *d.sentences2)]
        add("IDF of a corpus (the tuning sentences)", "missing words: largest IDF", weighted(idf_weights(corpus)))
        for q in (4, 8):
            add("soft max-pooling (p-norm)", f"p={q}", piece_table(none), p_norm_pool(q), native=False)
            add("soft max-pooling (p-norm) + Zipf SIF", f"p={q}, a=3e-3", weighted("zipf"), p_norm_pool(q),
                native=False)
    removed = common_component_removed(vectors)
    add("common component removed before memberships", "1st PC of 100k words", piece_table(
        SFBoW(removed, weighting="none")))
    add("common component removed + Zipf SIF", "a=3e-3", piece_table(SFBoW(removed)))
    add("membership shift (mean of top-1000 words) + Zipf SIF", "a=3e-3", shifted(weighted("zipf")))
    if not quick:  # round 2
        zipf, plain = weighted("zipf"), piece_table(none)
        for beta in (0.5, 0.75):
            add("per-element IDF (Zipf-expected membership) + Zipf SIF", f"beta={beta}",
                element_idf(zipf, beta, zipf_probability(n)))
        add("per-element IDF (uniform over the vocabulary) + Zipf SIF", "beta=0.5", element_idf(zipf, 0.5, np.ones(n)))
        for power, shift in ((1.5, 0.0), (1.0, 0.05)):
            add("sharper memberships + Zipf SIF", f"power {power:g}, shift {shift:g}",
                sharpened(plain, power, shift) * zipf_weights(n)[:, None])
    return rows


def minilm_rows(datasets: dict[str, STSDataset], quick: bool) -> list[dict[str, Any]]:
    """Every distilled-MiniLM idea's tuning scores (pieces: the word rows are a speed-up only)."""
    from sfbow.distill import pretrained

    none = pretrained("minilm", weighting="none", memberships="float32")
    vectors = none.vectors
    assert isinstance(vectors, SubwordVectors)
    scorer = Scorer(none, datasets)
    rows: list[dict[str, Any]] = []

    def add(idea: str, setting: str, table: np.ndarray, pool: Pooled = max_pool, native: bool = True) -> None:
        rows.append({"model": "MiniLM", "idea": idea, "setting": setting, "native": native,
                     "scores": scorer.score(table, pool)})

    def weighted(weights: Any, **options: Any) -> np.ndarray:
        model = SFBoW.from_parts(vectors, none.universe, strategy="pca", weighting=weights, **options)
        return piece_table(model)

    base = piece_table(none)
    add("none (pre-weighting sfbow)", "unweighted max over pieces", base)
    for c in ([0.5] if quick else [0.3, 0.5, 0.8]):
        add("piece pooling: continuation pieces down-weighted", f"##-pieces x{c}", weighted(piece_weights(vectors.words, c)))
    if not quick:
        add("SIF weights, Zipf from piece id", "a=1e-2", weighted(zipf_weights(len(vectors), 1e-2)))
        stems = [w[2:] if w.startswith("##") else w for w in vectors.words]
        p = np.array([wordfreq_frequency(s) for s in stems])
        add("SIF weights, wordfreq of the piece", "a=1e-2", weighted(0.01 / (0.01 + p)))
        norms = np.linalg.norm(vectors.matrix, axis=1)
        add("model2vec's own weights (vector norms)", "x norm", weighted(norms))
        for q in (4, 8):
            add("soft max-pooling (p-norm)", f"p={q}", base, p_norm_pool(q), native=False)
        big = SFBoW(vectors, "pca", k=512, normalize=False, weighting="none")
        add("K=512 unnormalised (issue 21's variant)", "unweighted", piece_table(big))
        removed = common_component_removed(vectors)
        add("common component removed before memberships", "1st PC of the pieces", piece_table(
            SFBoW(removed, "pca", k=160, weighting="none")))
        add("##-pieces x0.5 + SIF Zipf from piece id", "a=1e-2",
            weighted(piece_weights(vectors.words) * zipf_weights(len(vectors), 1e-2)))
        rows.extend(minilm_round2_rows(none, datasets, scorer))
    return rows


def minilm_round2_rows(none: SFBoW, datasets: dict[str, STSDataset], scorer: Scorer) -> list[dict[str, Any]]:
    """Round 2 for the distilled model, every row on top of the default ``##``-pieces x0.5: universe size and
    normalisation, a k-means universe, sharper memberships, whole-word rows, per-element IDF."""
    vectors = none.vectors
    assert isinstance(vectors, SubwordVectors)
    pieces = piece_weights(vectors.words)
    rows: list[dict[str, Any]] = []

    def add(idea: str, setting: str, table: np.ndarray, by: Scorer = scorer) -> None:
        rows.append({"model": "MiniLM", "idea": idea, "setting": setting, "native": True, "scores": by.score(table)})

    for k in (128, 192, 256, 384, 512):
        for normalize in (True, False):
            add("universe size K and normalisation (+ ##-pieces x0.5)", f"K={k}, {'unit' if normalize else 'raw'} vectors",
                piece_table(SFBoW(vectors, "pca", k=k, normalize=normalize)))
    unit = unit_rows(vectors.matrix)
    centroids = kmeans(unit[:100_000], 160, 0)
    add("k-means universe (+ ##-pieces x0.5)", "K=160 centroids", piece_table(
        SFBoW.from_parts(vectors, centroids, strategy="kmeans")))
    add("k-means universe (+ ##-pieces x0.5)", "K=160 centred unit centroids", piece_table(
        SFBoW.from_parts(vectors, unit_rows(centroids - unit[:100_000].mean(axis=0)), strategy="kmeans")))
    plain = piece_table(none)
    for power, shift in ((0.75, 0.0), (1.5, 0.0), (2.0, 0.0), (1.0, 0.02), (1.0, 0.05), (1.0, 0.1)):
        add("sharper memberships (+ ##-pieces x0.5)", f"power {power:g}, shift {shift:g}",
            sharpened(plain, power, shift) * pieces[:, None])
    default = plain * pieces[:, None]
    table_words = frequent_multipiece_words(vectors.wordpiece, 100_000)
    worded = SubwordVectors(vectors.wordpiece, vectors.matrix, table_words)
    by_words = Scorer(SFBoW.from_parts(worded, none.universe, strategy="pca"), datasets, word_rows=True)
    ids, offsets = worded.word_pieces()
    piece_max = max_pool(default, ids, offsets)
    sums = np.add.reduceat(vectors.matrix[ids], offsets[:-1], axis=0)
    mean_rows = np.maximum(unit_rows(sums) @ none.universe.T, 0)
    add("whole-word rows (68,546 words of 2+ pieces)", "memberships of the mean piece vector",
        np.concatenate([default, mean_rows]), by_words)
    add("whole-word rows (68,546 words of 2+ pieces)", "max(mean-vector row, max over pieces)",
        np.concatenate([default, np.maximum(mean_rows, piece_max)]), by_words)
    for beta, label in ((0.25, "Zipf"), (0.5, "Zipf"), (0.5, "uniform")):
        probability = zipf_probability(len(vectors)) if label == "Zipf" else np.ones(len(vectors))
        add(f"per-element IDF ({label}-expected membership, + ##-pieces x0.5)", f"beta={beta}",
            element_idf(default, beta, probability))
    stems = [w[2:] if w.startswith("##") else w for w in vectors.words]
    frequency = np.array([wordfreq_frequency(s) for s in stems])
    for a in (0.03, 0.1):
        add("SIF weights, wordfreq of the piece, + ##-pieces x0.5", f"a={a:g}",
            default * (a / (a + frequency))[:, None].astype(np.float32))
    for a in (0.01, 0.1):
        add(GLOVE_RANK, f"a={a:g}", plain * reference_piece_weights(vectors.words, a)[:, None])
    add(GLOVE_RANK, "a=0.03", piece_table(SFBoW.from_parts(vectors, none.universe, strategy="pca",
                                                           weighting="pieces-zipf")))
    return rows


#: The idea the distilled model's default (``weighting="pieces-zipf"``) is.
GLOVE_RANK = "word-initial pieces: SIF, Zipf from GloVe's rank, + ##-pieces x0.5"


def speed(quick: bool) -> dict[str, Any]:
    """Each default against ``weighting="none"`` (one thread): the runs alternate in one process, order
    swapped every round, and the best CPU time of each is kept (the least disturbed by a loaded machine;
    the median wall-clock rate is reported beside it)."""
    spec = importlib.util.spec_from_file_location("benchmarks_speed", Path(__file__).with_name("speed.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from sfbow.distill import pretrained

    sentences = module.load_sentences(module.STSB_TRAIN, 20_000 if quick else 100_000)
    models = {"GloVe default (zipf)": SFBoW(), "GloVe weighting='none'": SFBoW(weighting="none"),
              "MiniLM default (pieces-zipf)": pretrained("minilm"),
              "MiniLM weighting='none'": pretrained("minilm", weighting="none")}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    wall: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for model in models.values():
        model.encode(sentences[:1000], n_threads=1, show_progress=False)
    for round_ in range(3 if quick else 15):
        for pair in (names[:2], names[2:]):
            for name in pair if round_ % 2 else pair[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                models[name].encode(sentences, n_threads=1, show_progress=False)
                cpu[name].append(time.process_time() - start_cpu)
                wall[name].append(time.perf_counter() - start)
    n = len(sentences)
    return {"sentences": n, "rates": {name: n / statistics.median(times) for name, times in wall.items()},
            "cpu_rates": {name: n / min(times) for name, times in cpu.items()}, "load_average": list(os.getloadavg())}


def tables(document: dict[str, Any]) -> str:
    """The Markdown of a run: one table of ideas per model, then the speed A/B."""
    datasets = document["tuning_datasets"]
    parts = []
    for model in ("GloVe", "MiniLM"):
        rows = [r for r in document["rows"] if r["model"] == model]
        if not rows:
            continue
        baseline = rows[0]["tuning"]
        default = next((r["tuning"] for r in rows if r["verdict"] == "**default**"), baseline)
        body = [[r["idea"], r["setting"], *(f"{r['scores'][d]:.1f}" for d in datasets), f"{r['tuning']:.2f}",
                 f"{r['tuning'] - baseline:+.2f}", f"{r['tuning'] - default:+.2f}", r["verdict"]] for r in rows]
        parts.append(markdown_table(["idea", "setting", *datasets, "tuning", "vs none", "vs default", "kept?"], body))
    rates, cpu = document["speed"]["rates"], document["speed"]["cpu_rates"]
    pairs = [("GloVe default (zipf)", "GloVe weighting='none'"), ("MiniLM default (pieces-zipf)", "MiniLM weighting='none'")]
    parts.append(markdown_table(
        ["encoder (one thread)", "sentences/s (median wall)", "weighting='none'", "ratio",
         "ratio, best CPU time"],
        [[a, f"{rates[a]:,.0f}", f"{rates[b]:,.0f}", f"{rates[a] / rates[b]:.3f}", f"{cpu[a] / cpu[b]:.3f}"]
         for a, b in pairs]))
    return "\n\n".join(parts)


def verdict(row: dict[str, Any], chosen: dict[str, tuple[str, str]]) -> str:
    """``default`` for the row the model's default is, else ``kept`` (user weights) or ``dropped``."""
    if (row["idea"], row["setting"]) == chosen.get(row["model"]):
        return "**default**"
    if row["idea"].startswith("none"):
        return "`weighting=\"none\"`"
    if (row["idea"], row["setting"]) == OLD_DEFAULTS.get(row["model"]):
        return "`weighting=\"pieces\"` (round 1)"
    if row["idea"].startswith(("IDF", "SIF weights, wordfreq")) and row["model"] == "GloVe":
        return "kept (user weights)"
    return "dropped"


#: The rows the defaults are (chosen on the tuning score; see docs/sts.md).
CHOSEN = {"GloVe": ("SIF weights, Zipf from rank", "a=0.003"),
          "MiniLM": (GLOVE_RANK, "a=0.03")}

#: Former defaults, one argument away.
OLD_DEFAULTS = {"MiniLM": ("piece pooling: continuation pieces down-weighted", "##-pieces x0.5")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the STS data folder (default: {DATA})")
    parser.add_argument("--quick", action="store_true", help="the defaults only, fewer speed rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    args = parser.parse_args(argv)
    datasets = tuning_sets(args.data)
    rows = glove_rows(datasets, args.quick) + minilm_rows(datasets, args.quick)
    for row in rows:
        row["tuning"] = tuning_score(row["scores"])
        row["verdict"] = verdict(row, CHOSEN)
        print(f"{row['model']:6s} {row['idea'][:50]:50s} {row['setting'][:26]:26s} {row['tuning']:6.2f}", flush=True)
    document = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "command": "python benchmarks/sts_weighting.py" + (" --quick" if args.quick else ""),
                "tuning_datasets": list(TUNING_DATASETS), "rows": rows, "speed": speed(args.quick)}
    assert all(math.isfinite(r["tuning"]) for r in rows)
    text = tables(document)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "sts_weighting.json", json.dumps(document, indent=2) + "\n")
    atomic_write_text(args.out / "sts_weighting.md", f"# Weighting inside the fuzzy bag\n\n`{document['command']}`, "
                      f"{document['date']}, {document['machine']}; load average at the speed runs "
                      f"{' '.join(f'{x:.2f}' for x in document['speed']['load_average'])}.\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
