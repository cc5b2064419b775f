"""STS evaluation: load the standard sentence-similarity datasets and score any encoder on them.

Loaders (each returns sentence pairs with gold scores, and raises an error naming the file and line
when a file is missing or malformed; no row is skipped silently):

* :func:`load_stsb` -- STS Benchmark ``sts-{train,dev,test}.csv`` (scores 0-5).
* :func:`load_sick` -- SICK 2014 relatedness (``SICK_test_annotated.txt`` etc.; scores 1-5).
* :func:`load_semeval_sts` -- one SemEval STS year (2012-2016) in the SentEval layout
  (``STS12-en-test/STS.input.<subset>.txt`` + ``STS.gs.<subset>.txt``). An empty gold line means
  "no gold score" and drops that pair: the one documented exception.

:func:`evaluate_sts` scores an encoder (``list[str] -> (n, K)`` array, pairs compared with a paired
similarity, cosine by default) or a pair scorer (two lists of sentences -> one score per pair) with
Pearson and Spearman correlation x 100, per subset, per task (the mean over its subsets, the usual
report for STS12-16) and overall (the mean over tasks).
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

from sfbow.similarities import paired_cosine, paired_fuzzy_jaccard

__all__ = [
    "SIMILARITIES",
    "STSDataset",
    "STSResult",
    "STSScore",
    "STSTask",
    "TaskResult",
    "evaluate_sts",
    "load_semeval_sts",
    "load_sick",
    "load_stsb",
]

Encoder = Callable[[list[str]], Any]
PairScorer = Callable[[list[str], list[str]], Any]
PairedSimilarity = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Paired similarities ``evaluate_sts`` knows by name.
SIMILARITIES: dict[str, PairedSimilarity] = {"cosine": paired_cosine, "fuzzy_jaccard": paired_fuzzy_jaccard}


@dataclass(frozen=True)
class STSDataset:
    """Sentence pairs with gold similarity scores (one file, or one subset of a SemEval year)."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class STSTask:
    """A named group of subsets reported as one figure: the mean over its subsets (e.g. ``STS12``)."""

    name: str
    subsets: tuple[STSDataset, ...]

    def __post_init__(self) -> None:
        if not self.subsets:
            raise ValueError(f"task {self.name!r} has no subsets")
        names = [subset.name for subset in self.subsets]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} has subsets with the same name: {names}; name them apart")


# -- loaders ----------------------------------------------------------------------------------------


def load_stsb(path: str | os.PathLike[str]) -> STSDataset:
    """Read an STS Benchmark file (``sts-{train,dev,test}.csv``).

    Tab-separated; field 5 is the 0-5 score and fields 6 and 7 the sentences. Some lines carry extra
    fields after them, so lines are split on tabs (a quote-aware CSV parser would merge lines).
    """
    path = _existing_file(path, "STS Benchmark file")
    first, second, scores = [], [], []
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) < 7:
            raise ValueError(f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}")
        scores.append(_score(fields[4], path, number))
        first.append(fields[5])
        second.append(fields[6])
    return _dataset(path.stem, first, second, scores, path)


#: The SICK columns the loader needs, found by name in the header line.
SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score")


def load_sick(path: str | os.PathLike[str]) -> STSDataset:
    """Read a SICK 2014 file: a header line, then tab-separated rows; relatedness scores 1-5.

    Columns are located by their header names (``sentence_A``, ``sentence_B``, ``relatedness_score``),
    so both the task files (``pair_ID, sentence_A, sentence_B, relatedness_score,
    entailment_judgment``) and the full ``SICK.txt`` (more columns, another order) load.
    """
    path = _existing_file(path, "SICK file")
    lines = _lines(path)
    header = next(lines, None)
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header line naming {', '.join(SICK_COLUMNS)}")
    names = header[1].split("\t")
    missing = [name for name in SICK_COLUMNS if name not in names]
    if missing:
        raise ValueError(f"{path}:{header[0]}: the header lacks the columns {missing}; got {names}")
    a, b, s = (names.index(name) for name in SICK_COLUMNS)
    first, second, scores = [], [], []
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) < len(names):
            raise ValueError(f"{path}:{number}: expected {len(names)} tab-separated fields, got {len(fields)}")
        scores.append(_score(fields[s], path, number))
        first.append(fields[a])
        second.append(fields[b])
    return _dataset(path.stem, first, second, scores, path)


def load_semeval_sts(folder: str | os.PathLike[str], name: str | None = None) -> STSTask:
    """Read one SemEval STS year in the SentEval layout, e.g. ``STS12-en-test/``.

    Every ``STS.input.<subset>.txt`` (two tab-separated sentences a line; further fields are
    ignored) needs its ``STS.gs.<subset>.txt`` (one score a line). A pair whose gold line is empty
    has no gold score and is dropped; any other mismatch (a non-numeric score, different line counts)
    is an error naming the file and line. ``name`` defaults to the folder name up to its first ``-``
    (``STS12``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"SemEval STS folder not found: {folder}")
    inputs = sorted(folder.glob("STS.input.*.txt"))
    if not inputs:
        raise FileNotFoundError(f"{folder} has no STS.input.<subset>.txt files")
    subsets = []
    for input_path in inputs:
        subset = input_path.name[len("STS.input."):-len(".txt")]
        gold_path = _existing_file(folder / f"STS.gs.{subset}.txt", f"gold scores of subset {subset!r}")
        pairs = []
        for number, line in _lines(input_path):
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{input_path}:{number}: expected two tab-separated sentences, got {len(fields)} field")
            pairs.append((fields[0], fields[1]))
        gold = list(_lines(gold_path))
        if len(gold) != len(pairs):
            raise ValueError(f"{gold_path} has {len(gold)} lines but {input_path} has {len(pairs)}: "
                             "every sentence pair needs one gold line (empty for no score)")
        first, second, scores = [], [], []
        for (number, text), (one, two) in zip(gold, pairs):
            if text.strip():
                scores.append(_score(text, gold_path, number))
                first.append(one)
                second.append(two)
        subsets.append(_dataset(subset, first, second, scores, gold_path))
    return STSTask(name or folder.name.split("-")[0], tuple(subsets))


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file (see :func:`split_lines`)."""
    return split_lines(path.read_bytes(), path)


def split_lines(raw: bytes, source: object) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of UTF-8 text, without line ends (``\\n`` or ``\\r\\n``) or BOM.

    Only ``\\n`` ends a line (``str.splitlines`` would also split on form feeds and other
    separators inside a line). A final line end does not start another record. Bytes that are not
    UTF-8 raise an error naming ``source`` and the line.
    """
    lines = raw.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        try:
            yield number, line.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{source}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _score(text: str, path: Path, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{number}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{number}: score {text!r} is not a finite number")
    return value


def _dataset(name: str, first: list[str], second: list[str], scores: list[float], path: Path) -> STSDataset:
    if not scores:
        raise ValueError(f"{path} has no sentence pairs with a gold score")
    return STSDataset(name, first, second, np.asarray(scores, dtype=np.float64))


# -- evaluation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class STSScore:
    """Pearson and Spearman correlation x 100 of predicted and gold scores over ``n`` pairs.

    A correlation is NaN when the predicted or the gold scores are constant (it is undefined then).
    """

    pearson: float
    spearman: float
    n: int


@dataclass(frozen=True)
class TaskResult:
    """One task's subsets, their means, and the seconds spent in the encoder or scorer."""

    name: str
    subsets: dict[str, STSScore]
    seconds: float

    @property
    def pearson(self) -> float:
        """Mean Pearson over the subsets (x 100)."""
        return float(np.mean([score.pearson for score in self.subsets.values()]))

    @property
    def spearman(self) -> float:
        """Mean Spearman over the subsets (x 100)."""
        return float(np.mean([score.spearman for score in self.subsets.values()]))


@dataclass(frozen=True)
class STSResult:
    """Per-task results in input order, and the overall means over tasks."""

    tasks: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def pearson(self) -> float:
        """Mean of the tasks' Pearson figures (x 100)."""
        return float(np.mean([task.pearson for task in self.tasks.values()]))

    @property
    def spearman(self) -> float:
        """Mean of the tasks' Spearman figures (x 100)."""
        return float(np.mean([task.spearman for task in self.tasks.values()]))

    @property
    def seconds(self) -> float:
        """Total seconds spent in the encoder or scorer."""
        return float(sum(task.seconds for task in self.tasks.values()))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: overall means, then every task with its subsets."""
        return {
            "pearson": self.pearson, "spearman": self.spearman, "seconds": self.seconds,
            "tasks": {
                name: {"pearson": task.pearson, "spearman": task.spearman, "seconds": task.seconds,
                       "subsets": {sub: vars(score).copy() for sub, score in task.subsets.items()}}
                for name, task in self.tasks.items()
            },
        }


def evaluate_sts(model: Any, datasets: Iterable[STSDataset | STSTask], *,
                 similarity: str | PairedSimilarity = "cosine") -> STSResult:
    """Score ``model`` on STS datasets: Pearson and Spearman x 100 per subset, task and overall.

    Parameters
    ----------
    model:
        What produces a similarity for each sentence pair, one of

        * an object with ``score_pairs(sentences1, sentences2)``, or a callable of two required
          positional arguments: a *pair scorer* returning one score per pair (e.g. DynaMax);
        * an object with ``encode(sentences)`` (:class:`sfbow.SFBoW`, a sentence-transformers model),
          or any other callable: an *encoder* ``list[str] -> (n, K)`` array. Each subset's
          sentences are encoded in one call (first sentences, then second sentences), and each pair
          is compared with ``similarity``.
    datasets:
        :class:`STSDataset` objects (each a one-subset task) and :class:`STSTask` groups; names must
        be unique.
    similarity:
        For encoders: ``"cosine"``, ``"fuzzy_jaccard"`` or a function of two row-aligned ``(n, K)``
        arrays returning ``n`` scores.
    """
    scorer = _pair_scorer(model, similarity)
    tasks: dict[str, TaskResult] = {}
    for task in _tasks(datasets):
        subsets, seconds = {}, 0.0
        for subset in task.subsets:
            start = time.perf_counter()
            predicted = scorer(subset.sentences1, subset.sentences2)
            seconds += time.perf_counter() - start
            subsets[subset.name] = _correlations(predicted, subset)
        tasks[task.name] = TaskResult(task.name, subsets, seconds)
    return STSResult(tasks)


def _tasks(datasets: Iterable[STSDataset | STSTask]) -> list[STSTask]:
    """Check ``datasets`` before any encoding: each a dataset or task, names unique, not empty."""
    tasks: list[STSTask] = []
    for item in datasets:
        if not isinstance(item, (STSDataset, STSTask)):
            raise TypeError(f"datasets must hold STSDataset or STSTask objects, got {type(item).__name__}")
        if any(task.name == item.name for task in tasks):
            raise ValueError(f"two datasets are named {item.name!r}; names must be unique")
        tasks.append(STSTask(item.name, (item,)) if isinstance(item, STSDataset) else item)
    if not tasks:
        raise ValueError("datasets is empty: nothing to evaluate")
    return tasks


def _pair_scorer(model: Any, similarity: str | PairedSimilarity) -> PairScorer:
    """Turn an encoder or a pair scorer into ``(sentences1, sentences2) -> scores``."""
    if hasattr(model, "score_pairs"):
        return model.score_pairs
    encode = getattr(model, "encode", None)
    if encode is None:
        if not callable(model):
            raise TypeError(f"model must be an encoder or a pair scorer (a callable), got {type(model).__name__}")
        if _required_positional(model) == 2:
            return model
        encode = model
    if isinstance(similarity, str):
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; choose one of {sorted(SIMILARITIES)} or pass a function")
        similarity = SIMILARITIES[similarity]

    def score_pairs(sentences1: list[str], sentences2: list[str]) -> np.ndarray:
        vectors = np.asarray(encode(list(sentences1) + list(sentences2)))
        n = len(sentences1)
        if vectors.ndim != 2 or vectors.shape[0] != 2 * n:
            raise ValueError(f"the encoder returned shape {vectors.shape} for {2 * n} sentences; expected (2n, K)")
        return similarity(vectors[:n], vectors[n:])

    return score_pairs


def _required_positional(function: Callable[..., Any]) -> int | None:
    """How many positional parameters without a default ``function`` has (None if unknown)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds and p.default is inspect.Parameter.empty for p in parameters)


def _correlations(predicted: Any, dataset: STSDataset) -> STSScore:
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != dataset.scores.shape:
        raise ValueError(f"{dataset.name}: got {predicted.shape[0] if predicted.ndim else predicted.shape} "
                         f"scores for {len(dataset)} pairs; expected one score per pair")
    if not np.isfinite(predicted).all():
        raise ValueError(f"{dataset.name}: the predicted scores have NaN or inf values")
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(dataset.scores) == 0:
        return STSScore(math.nan, math.nan, len(predicted))
    return STSScore(100 * float(pearsonr(predicted, dataset.scores)[0]),
                    100 * float(spearmanr(predicted, dataset.scores)[0]), len(predicted))
