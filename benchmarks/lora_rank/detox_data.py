"""The toxicity arm's data: a stable train/evaluation split of the seed prompts, hard prompts from EvoTox
searches, and the detox training pairs (a prompt, the base's least toxic sampled answer to it).

How the data is built (every step takes its models and sizes as arguments, so it can be tested small):

1. :func:`split_seeds` puts each seed prompt on the training or the evaluation side by the SHA-256 of its
   text (salted with :data:`SPLIT_SALT`): adding or removing seeds never moves another seed, and the two
   sides are disjoint by construction. Of the 50 packaged seeds (``evotox/data/seeds.txt``) a fraction of
   0.5 puts 24 on the evaluation side and 26 on the training side.
2. :func:`run_search` runs EvoTox (``evotox.search.Engine``) on the training seeds against the base, as
   SUT and generator, recording every call in an evotox run file (resumed if it exists); the
   :func:`hard_prompts` of a run are the distinct prompts its SUT answered (each seed and every rewrite
   that passed the validity gate) with the toxicity the base's answer got, the most toxic first per seed.
3. :func:`sample_answers` samples several answers per prompt from the base (temperature > 0; one seeded
   batch per prompt, so a prompt's answers do not depend on the others); :func:`build_pairs` keeps the
   one the *selection* oracle rates least toxic (``choose="first"`` keeps the first sample instead: the
   self-distillation control, which separates the effect of selection from that of any fine-tuning on
   the model's own answers). Empty answers are never chosen; a prompt without a non-empty one is dropped
   and counted.
4. :func:`write_pairs` / :func:`read_pairs` store the pairs as a JSON-lines file (atomic write), whose
   first line records the seeds, sizes, oracle and model identity; the reader checks every line.
   :func:`write_prompts` / :func:`read_prompts` do the same for a fixed set of hard prompts (the
   evaluation prompts of :mod:`toxicity_eval`).

Why the oracles are kept apart, and how, is :mod:`toxicity_eval`'s docstring.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.atomic import atomic_write_text
from sfbow_common.checks import check_choice, check_int, check_positive_int, check_real

__all__ = ["PAIRS_FORMAT", "PROMPTS_FORMAT", "SPLIT_SALT", "DataFileError", "DetoxPair", "HardPrompt",
           "SeedSplit", "build_pairs", "hard_prompts", "read_pairs", "read_prompts", "run_search",
           "sample_answers", "seed_hash", "split_seeds", "write_pairs", "write_prompts"]

#: Salt of the seed split's hash: changing it reshuffles every seed, so it is part of the data's identity.
SPLIT_SALT = "lora-rank-detox-split-v1"
PAIRS_FORMAT, PROMPTS_FORMAT, VERSION = "lora-rank-detox-pairs", "lora-rank-hard-prompts", 1
CHOICES = ("least-toxic", "first")


class DataFileError(ValueError):
    """A detox data or prompt file is not one, or is damaged; the message names the file and the line."""


# ---------------------------------------------------------------------------------------------- the split
def seed_hash(seed: str) -> str:
    """The hex SHA-256 of the salted, stripped seed text: the seed's identity in every data file."""
    return hashlib.sha256(f"{SPLIT_SALT}\n{seed.strip()}".encode()).hexdigest()


@dataclass(frozen=True)
class SeedSplit:
    """Training and evaluation seeds, each in the order given, disjoint, with the fraction that made them."""

    training: tuple[str, ...]
    evaluation: tuple[str, ...]
    evaluation_fraction: float

    def describe(self) -> dict[str, Any]:
        return {"salt": SPLIT_SALT, "evaluation_fraction": self.evaluation_fraction,
                "training": len(self.training), "evaluation": len(self.evaluation)}


def split_seeds(seeds: Sequence[str], evaluation_fraction: float = 0.5) -> SeedSplit:
    """Each distinct seed goes to evaluation when its hash, read as a number in [0, 1), is below
    ``evaluation_fraction``; duplicates (up to surrounding spaces) are kept once. Both sides must be
    non-empty: too few seeds for a split is an error that says how many there were."""
    fraction = check_real(evaluation_fraction, "evaluation_fraction", minimum=0.0, maximum=1.0,
                          exclusive_minimum=True)
    if isinstance(seeds, str):
        raise TypeError("seeds must be a list of prompts, not one string")
    distinct: dict[str, str] = {}
    for i, seed in enumerate(seeds):
        if not isinstance(seed, str) or not seed.strip():
            raise ValueError(f"seeds[{i}] is empty or not a string ({seed!r}); every seed must be a prompt")
        distinct.setdefault(seed.strip(), seed.strip())
    training: list[str] = []
    evaluation: list[str] = []
    for seed in distinct:
        (evaluation if int(seed_hash(seed)[:16], 16) / 2.0**64 < fraction else training).append(seed)
    if not training or not evaluation:
        raise ValueError(f"the {len(distinct)} distinct seeds put {len(training)} on the training side and "
                         f"{len(evaluation)} on the evaluation side at evaluation_fraction={fraction:g}; both "
                         "need at least one: give more seeds or another fraction")
    return SeedSplit(tuple(training), tuple(evaluation), fraction)


# ------------------------------------------------------------------------------------------- hard prompts
@dataclass(frozen=True)
class HardPrompt:
    """A prompt a search asked the SUT, its seed's hash, and the fitness of the SUT's answer to it."""

    prompt: str
    seed_hash: str
    fitness: float


def run_search(seeds: Sequence[str], config: Any, *, sut: Any, generator: Any, oracle: Any,
               run_file: str | os.PathLike[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Run ``config`` (an ``evotox.SearchConfig``) on ``seeds`` with the given backends and oracle,
    recorded in ``run_file``: a new file is started, an existing one is resumed (its seeds and search
    settings must be these, and its models the same; otherwise it is refused, naming what differs).
    Returns the search results and every record of the run."""
    from evotox.archive import RunFileError, RunWriter, describe_models, model_changes, new_header
    from evotox.search import Engine

    wanted = {"seeds": list(seeds), "search": config.to_dict()}
    models = {"sut": sut.describe(), "generator": generator.describe(), "oracle": oracle.describe()}
    path = Path(run_file)
    if not path.exists():
        with RunWriter(path, new_header(wanted, models)) as writer:
            engine = Engine(config, sut=sut, generator=generator, oracle=oracle, writer=writer)
            return engine.run(list(seeds)), engine.records()
    with RunWriter(path) as writer:
        assert writer.run is not None
        if writer.run.config != json.loads(json.dumps(wanted)):
            raise RunFileError(f"{path} records another search (seeds or settings differ from this one's); "
                               "delete it or give another run file")
        changes = model_changes(writer.run.header.get("models", {}), describe_models(models))
        if changes:
            raise RunFileError(f"{path} was made with other models ({'; '.join(changes)}); delete it or give "
                               "another run file")
        engine = Engine(config, sut=sut, generator=generator, oracle=oracle, writer=writer,
                        records=writer.run.records)
        return engine.run(list(seeds)), engine.records()


def hard_prompts(records: Sequence[Mapping[str, Any]], seeds: Sequence[str], *,
                 per_seed: int | None = None) -> list[HardPrompt]:
    """The distinct prompts the SUT answered in a run's ``records`` (per seed: the seed itself and every
    usable rewrite), each with the fitness of its last answer (an empty answer is asked again), the most
    toxic first within each seed, seeds in order; ``per_seed`` keeps only that many per seed. A prompt two
    seeds' searches both reached is kept once, for the first of them (the data files hold distinct prompts)."""
    if per_seed is not None:
        per_seed = check_positive_int(per_seed, "per_seed")
    last: dict[tuple[int, str], tuple[int, float]] = {}
    for record in records:
        if record.get("type") != "call" or record.get("role") != "sut":
            continue
        index, prompt = int(record["seed_index"]), str(record["prompt"])
        attempt = int(record.get("attempt", 0))
        key = (index, prompt)
        if key not in last or attempt >= last[key][0]:
            last[key] = (attempt, float(record["fitness"]))
    out: list[HardPrompt] = []
    taken: set[str] = set()
    for index, seed in enumerate(seeds):
        found = sorted(((fitness, prompt) for (i, prompt), (_, fitness) in last.items()
                        if i == index and prompt not in taken), key=lambda item: (-item[0], item[1]))
        out += [HardPrompt(prompt, seed_hash(seed), fitness) for fitness, prompt in found[:per_seed]]
        taken.update(p.prompt for p in out)
    return out


# ---------------------------------------------------------------------------------- sampling and selection
def sample_answers(lm: Any, prompts: Sequence[str], *, samples: int, system_prompt: str, max_new_tokens: int,
                   temperature: float, top_p: float, seed: int) -> list[list[str]]:
    """``samples`` sampled answers of ``lm`` (any sfbow_llm engine) to each prompt, as a user message after
    ``system_prompt``. Each prompt is one batch of ``samples`` rows seeded by ``(seed, prompt)``, so a
    prompt's answers are the same whatever else is sampled with it."""
    from sfbow_llm.chat import Request, derive_seed
    from sfbow_llm.generation import generate

    samples = check_positive_int(samples, "samples")
    temperature = check_real(temperature, "temperature", minimum=0.0, exclusive_minimum=True)
    seed = check_int(seed, "seed", minimum=0)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    answers = []
    for prompt in prompts:
        row = Request([*messages, {"role": "user", "content": prompt}], max_new_tokens=max_new_tokens,
                      temperature=temperature)
        outputs = generate(lm, [row] * samples, top_p=top_p, batch_seed=derive_seed(seed, prompt))
        answers.append([output.text for output in outputs])
    return answers


@dataclass(frozen=True)
class DetoxPair:
    """A training pair: the prompt, the chosen answer, the seed's hash, the selection oracle's fitness of
    every sampled answer (``None`` for an empty one) and the index of the chosen one."""

    prompt: str
    answer: str
    seed_hash: str
    candidate_scores: tuple[float | None, ...]
    chosen: int

    @property
    def score(self) -> float:
        """The selection oracle's fitness of the chosen answer."""
        score = self.candidate_scores[self.chosen]
        assert score is not None
        return score


def build_pairs(prompts: Sequence[HardPrompt], answers: Sequence[Sequence[str]], oracle: Any, *,
                choose: str = "least-toxic") -> tuple[list[DetoxPair], int]:
    """One pair per prompt with a non-empty answer: the answer of least fitness (max over the oracle's
    attributes, as EvoTox's default; the first of equals), or with ``choose="first"`` the first non-empty
    sample (the control). Returns the pairs and the number of prompts dropped for having no answer."""
    check_choice(choose, "choose", CHOICES)
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answer lists; give one list per prompt")
    texts = [text for candidates in answers for text in candidates if text.strip()]
    fitness = iter(np.asarray(oracle.score(texts), dtype=np.float64).max(axis=1).tolist() if texts else [])
    pairs, dropped = [], 0
    for prompt, candidates in zip(prompts, answers):
        scores = tuple(next(fitness) if text.strip() else None for text in candidates)
        usable = [k for k, score in enumerate(scores) if score is not None]
        if not usable:
            dropped += 1
            continue
        chosen = usable[0] if choose == "first" else min(usable, key=lambda k: (scores[k], k))
        pairs.append(DetoxPair(prompt.prompt, candidates[chosen].strip(), prompt.seed_hash, scores, chosen))
    return pairs, dropped


# ---------------------------------------------------------------------------------------------- the files
def _write(path: str | os.PathLike[str], kind: str, header: Mapping[str, Any], rows: list[dict[str, Any]]) -> Path:
    head = {"format": kind, "version": VERSION, "rows": len(rows), **header}
    lines = [json.dumps(head, ensure_ascii=False, allow_nan=False)]
    lines += [json.dumps(row, ensure_ascii=False, allow_nan=False) for row in rows]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _read(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; build it first")
    try:
        text = source.read_text(encoding="utf-8")
        lines = text.removesuffix("\n").split("\n") if text else []  # not splitlines: texts may hold U+2028
    except UnicodeDecodeError as error:
        raise DataFileError(f"{source} is not UTF-8 text ({error})") from None
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as error:
            raise DataFileError(f"{source} line {number} is not JSON ({error})") from None
        if not isinstance(value, dict):
            raise DataFileError(f"{source} line {number} is not a JSON object")
        parsed.append((number, value))
    if not parsed or parsed[0][1].get("format") != kind or parsed[0][1].get("version") != VERSION:
        raise DataFileError(f"{source} is not a {kind} file of version {VERSION} (its first line must be that "
                            "header); rebuild it")
    header, rows = parsed[0][1], parsed[1:]
    if header.get("rows") != len(rows):
        raise DataFileError(f"{source} has {len(rows)} rows but its header says {header.get('rows')!r}: the file "
                            "was cut or edited; rebuild it")
    return header, rows


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _text(source: str, number: int, row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(f"{source} line {number}: {name!r} must be a non-empty string, got {value!r}")
    return value


def _unit(source: str, number: int, value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                             and 0.0 <= value <= 1.0):
        raise DataFileError(f"{source} line {number}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_fields(source: str, number: int, row: Mapping[str, Any], fields: set[str]) -> None:
    if set(row) != fields:
        raise DataFileError(f"{source} line {number} has the fields {sorted(row)}; expected {sorted(fields)}")


def _unique(source: str, rows: Sequence[tuple[int, str]]) -> None:
    seen: dict[str, int] = {}
    for number, prompt in rows:
        if prompt in seen:
            raise DataFileError(f"{source} line {number} repeats the prompt of line {seen[prompt]}")
        seen[prompt] = number


def write_prompts(path: str | os.PathLike[str], prompts: Sequence[HardPrompt], header: Mapping[str, Any]) -> Path:
    """Write hard prompts (distinct) with ``header`` (seeds, search, oracle, model identity) atomically."""
    _unique(str(path), [(i + 2, p.prompt) for i, p in enumerate(prompts)])
    return _write(path, PROMPTS_FORMAT, header, [asdict(p) for p in prompts])


def read_prompts(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[HardPrompt]]:
    """The header and the prompts of a file written by :func:`write_prompts`, every line checked."""
    header, rows = _read(path, PROMPTS_FORMAT)
    source, prompts = str(path), []
    for number, row in rows:
        _check_fields(source, number, row, {"prompt", "seed_hash", "fitness"})
        prompts.append(HardPrompt(_text(source, number, row, "prompt"), _hash(source, number, row),
                                  _unit(source, number, row["fitness"], "fitness")))
    _unique(source, [(number, p.prompt) for (number, _), p in zip(rows, prompts)])
    return header, prompts


def write_pairs(path: str | os.PathLike[str], pairs: Sequence[DetoxPair], header: Mapping[str, Any]) -> Path:
    """Write detox pairs with ``header`` (seeds, sizes, oracle, model identity) atomically."""
    _unique(str(path), [(i + 2, p.prompt) for i, p in enumerate(pairs)])
    rows = [{**asdict(p), "candidate_scores": list(p.candidate_scores)} for p in pairs]
    return _write(path, PAIRS_FORMAT, header, rows)


def read_pairs(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[DetoxPair]]:
    """The header and the pairs of a file written by :func:`write_pairs`, every line checked: fields,
    non-empty texts, scores in [0, 1] (or null for an empty sample), the chosen index pointing at a
    scored sample, prompts distinct."""
    header, rows = _read(path, PAIRS_FORMAT)
    source, pairs = str(path), []
    for number, row in rows:
        _check_fields(source, number, row, {"prompt", "answer", "seed_hash", "candidate_scores", "chosen"})
        scores = row["candidate_scores"]
        if not isinstance(scores, list) or not scores:
            raise DataFileError(f"{source} line {number}: candidate_scores must be a non-empty list")
        checked = tuple(None if s is None else _unit(source, number, s, "candidate_scores") for s in scores)
        chosen = row["chosen"]
        if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(checked) \
                or checked[chosen] is None:
            raise DataFileError(f"{source} line {number}: chosen must index a scored candidate, got {chosen!r}")
        pairs.append(DetoxPair(_text(source, number, row, "prompt"), _text(source, number, row, "answer"),
                               _hash(source, number, row), checked, chosen))
    _unique(source, [(number, p.prompt) for (number, _), p in zip(rows, pairs)])
    return header, pairs


def _hash(source: str, number: int, row: Mapping[str, Any]) -> str:
    value = row.get("seed_hash")
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise DataFileError(f"{source} line {number}: seed_hash must be 64 lower-case hex digits, got {value!r}")
    return value
