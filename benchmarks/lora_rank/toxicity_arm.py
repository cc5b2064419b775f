"""The toxicity arm in the study (``data="detox"``): the two offline builds, the training data the runs
train on, the toxicity measures of every model, each from the study's state.

- :func:`build_training_data`: EvoTox searches on the training seeds against the base, the hard prompts
  they asked, sampled answers, the least toxic kept (selection oracle), written as a detox pairs file.
- :func:`build_evaluation_prompts`: the base's EvoTox search on the evaluation seeds (evaluation oracle),
  whose prompts become the fixed hard-prompt set.
- :func:`run_detox_data` (the grid's first run, ``detox-data``) makes both in the study's cache folder
  (they hold generated text, so they stay out of the committed results; the run's result holds their
  headers); :func:`training_pairs`, :func:`pair_batches` and :func:`pairs_dev_nll` are what the training
  runs use instead of sentences; :func:`detox_measures` measures one model.

The base is the generator of every search and samples the training answers on the fast engine
(CTranslate2 int8, sfbow_llm's default); every *measured* model, the base included, answers on the reference
engine (fp32 torch, where the fine-tunes live), so the rows differ in their weights only. Each file's
header records the seeds (text and hash), the split, the search settings, the sizes, the oracles, the
model's identity (``describe()``: name, SHA-256, engine) and the seconds each stage took.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .detox_data import (
    SeedSplit,
    build_pairs,
    hard_prompts,
    read_pairs,
    read_prompts,
    run_search,
    sample_answers,
    seed_hash,
    split_seeds,
    write_pairs,
    write_prompts,
)
from .plan import NotReady
from .toxicity_eval import (
    EVALUATION_ORACLE,
    SELECTION_ORACLE,
    answer_toxicity,
    check_apart,
    fine_tuned_lm,
    search_toxicity,
    weights_sha256,
)

if TYPE_CHECKING:
    from .config import Run, StudyConfig
    from .scheduler import Study

SYSTEM_PROMPT = "You are a helpful assistant."  # evotox's default system prompt: the SUT's in every search
PAIRS_FILE, PROMPTS_FILE = "detox_pairs.jsonl", "detox_eval_prompts.jsonl"
TRAIN_SEARCH_FILE, EVAL_SEARCH_FILE = "detox_train_search.jsonl", "detox_eval_search.jsonl"

__all__ = ["build_evaluation_prompts", "build_training_data", "detox_measures", "pair_batches", "pairs_dev_nll",
           "run_detox_data", "training_pairs"]


def _seeds(seeds: Sequence[str]) -> list[dict[str, str]]:
    return [{"text": seed, "hash": seed_hash(seed)} for seed in seeds]


def _made(out: str | os.PathLike[str], recipe: dict[str, Any], read: Any) -> dict[str, Any] | None:
    """The header of ``out`` when it exists and was made by this ``recipe`` (a killed run's finished build
    is not redone); None when it is missing. A file made by another recipe is refused, never overwritten."""
    if not Path(out).exists():
        return None
    header, _ = read(out)
    made = {key: header.get(key) for key in recipe}
    if made != json.loads(json.dumps(recipe)):
        changed = sorted(key for key in recipe if made[key] != json.loads(json.dumps(recipe[key])))
        raise ValueError(f"{out} was built with other settings ({', '.join(changed)} differ); delete it to rebuild")
    return header


def build_training_data(split: SeedSplit, *, lm: Any, search: Any, search_oracle: Any, selection_oracle: Any,
                        evaluation_oracle: Any, samples: int, temperature: float, top_p: float,
                        max_new_tokens: int, sampling_seed: int, per_seed: int | None, choose: str,
                        run_file: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Build the detox pairs of ``split.training`` with the base ``lm`` (any engine; it is SUT and generator
    of the searches and samples the answers) and write them to ``out``; returns the file's header (that of
    ``out`` as it is, when it was already built with these settings). ``evaluation_oracle`` is only checked
    to be apart from ``selection_oracle``."""
    from evotox.backends.local import LocalBackend

    check_apart(selection_oracle, evaluation_oracle)
    if search.system_prompt != SYSTEM_PROMPT:
        raise ValueError(f"the search's system prompt {search.system_prompt!r} is not the arm's {SYSTEM_PROMPT!r}, "
                         "which training and measuring use")
    backend = LocalBackend(lm=lm)
    recipe = {"seeds": _seeds(split.training), "split": split.describe(), "search": search.to_dict(),
              "search_run_file": Path(run_file).name, "search_oracle": search_oracle.describe(),
              "selection_oracle": selection_oracle.describe(), "model": backend.describe(),
              "sampling": {"samples": samples, "temperature": temperature, "top_p": top_p,
                           "max_new_tokens": max_new_tokens, "seed": sampling_seed, "per_seed": per_seed,
                           "system_prompt": search.system_prompt}, "choose": choose}
    made = _made(out, recipe, read_pairs)
    if made is not None:
        return made
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    _, records = run_search(split.training, search, sut=backend, generator=backend, oracle=search_oracle,
                            run_file=run_file)
    prompts = hard_prompts(records, split.training, per_seed=per_seed)
    seconds["search"] = time.perf_counter() - start
    start = time.perf_counter()
    answers = sample_answers(lm, [p.prompt for p in prompts], samples=samples, system_prompt=search.system_prompt,
                             max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             seed=sampling_seed)
    seconds["sampling"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs, dropped = build_pairs(prompts, answers, selection_oracle, choose=choose)
    seconds["selection"] = time.perf_counter() - start
    header = {**recipe, "prompts": len(prompts), "dropped_without_answer": dropped,
              "seconds": {k: round(v, 2) for k, v in seconds.items()}}
    write_pairs(out, pairs, header)
    return {**header, "rows": len(pairs)}


def build_evaluation_prompts(split: SeedSplit, *, sut: Any, generator: Any, search: Any, oracle: Any,
                             per_seed: int | None, run_file: str | os.PathLike[str],
                             out: str | os.PathLike[str]) -> dict[str, Any]:
    """The base's (``sut``: an evotox backend over the base on the engine every SUT is measured on) search on
    ``split.evaluation`` with ``generator`` and the evaluation ``oracle``; its hard prompts (``per_seed``
    most toxic per seed) are written to ``out``; returns the header, with the base's best fitness per seed."""
    recipe = {"seeds": _seeds(split.evaluation), "split": split.describe(), "search": search.to_dict(),
              "search_run_file": Path(run_file).name, "oracle": oracle.describe(), "sut": sut.describe(),
              "generator": generator.describe(), "per_seed": per_seed}
    made = _made(out, recipe, read_prompts)
    if made is not None:
        return made
    start = time.perf_counter()
    results, records = run_search(split.evaluation, search, sut=sut, generator=generator, oracle=oracle,
                                  run_file=run_file)
    prompts = hard_prompts(records, split.evaluation, per_seed=per_seed)
    best = {r.seed_index: r.best.fitness for r in results if r.method == search.methods[0]}
    header = {**recipe, "base_search_best": [best[i] for i in range(len(split.evaluation))],
              "seconds": {"search": round(time.perf_counter() - start, 2)}}
    write_prompts(out, prompts, header)
    return {**header, "rows": len(prompts)}


# ------------------------------------------------------------------------------------------- in the study
@functools.lru_cache(maxsize=1)
def fast_base() -> Any:
    """The base on sfbow_llm's default (fastest installed) engine: generator and sampler of the arm."""
    from sfbow_llm.models import load_causal_lm

    return load_causal_lm()


@functools.lru_cache(maxsize=1)
def oracles() -> tuple[Any, Any]:
    """The selection and the evaluation oracle (see :mod:`.toxicity_eval`), built once per process."""
    return SELECTION_ORACLE.build(), EVALUATION_ORACLE.build()


def seed_split(config: StudyConfig) -> SeedSplit:
    """The arm's split of the packaged EvoTox seeds (the first ``detox.seeds`` of them)."""
    from evotox.runner import default_seeds_file, read_seeds

    assert config.detox is not None
    return split_seeds(read_seeds(default_seeds_file(), limit=config.detox.seeds), config.detox.evaluation_fraction)


def _search_seeds(config: StudyConfig, split: SeedSplit) -> tuple[str, ...]:
    assert config.detox is not None
    return split.evaluation[:config.detox.search_seeds]


def _search_file(study: Study, sha256: str) -> Path:
    return study.cache_dir / "detox_search" / f"{sha256[:16]}.jsonl"


@functools.lru_cache(maxsize=2)
def _base_sha256(model: Any) -> str:
    """The weight hash of the loaded base (computed once: it tells the base's measures from a fine-tune's)."""
    return weights_sha256(model)


def run_detox_data(study: Study, run: Run) -> dict[str, Any]:
    """The ``detox-data`` run: the training pairs and the evaluation prompts in the study's cache (each
    resumed from its search file if a previous attempt was killed); the result records their headers."""
    from evotox.backends.local import LocalBackend

    detox = study.config.detox
    assert detox is not None
    selection, evaluation = oracles()
    split = seed_split(study.config)
    study.cache_dir.mkdir(parents=True, exist_ok=True)
    (study.cache_dir / "detox_search").mkdir(exist_ok=True)
    training = build_training_data(
        split, lm=fast_base(), search=detox.search(detox.train_iterations), search_oracle=selection,
        selection_oracle=selection, evaluation_oracle=evaluation, samples=detox.samples,
        temperature=detox.temperature, top_p=detox.top_p, max_new_tokens=detox.answer_tokens,
        sampling_seed=detox.sampling_seed, per_seed=detox.train_prompts_per_seed, choose=detox.choose,
        run_file=study.cache_dir / TRAIN_SEARCH_FILE, out=study.cache_dir / PAIRS_FILE)
    # The base's search on every evaluation seed; when the per-model search covers them all, it is the
    # base's per-model search too (same file), so the base is searched once.
    covers = _search_seeds(study.config, split) == split.evaluation
    base_file = _search_file(study, _base_sha256(study.lm.model)) if covers else \
        study.cache_dir / EVAL_SEARCH_FILE
    evaluation_header = build_evaluation_prompts(
        split, sut=LocalBackend(lm=study.lm), generator=LocalBackend(lm=fast_base()),
        search=detox.search(detox.eval_iterations), oracle=evaluation, per_seed=detox.eval_prompts_per_seed,
        run_file=base_file, out=study.cache_dir / PROMPTS_FILE)
    return {"training": training, "evaluation": evaluation_header}


def _require(study: Study, name: str) -> Path:
    path = study.cache_dir / name
    if not path.is_file():
        raise NotReady(f"{path} is missing: the detox-data run has not finished (or its cache was cleared: "
                       f"delete {study.results_dir}/seed{study.config.seeds[0]}/detox-data.json to rebuild it)")
    return path


def training_pairs(study: Study) -> list[tuple[str, str]]:
    """The detox pairs as (prompt, answer), in file order; NotReady until the detox-data run has made them."""
    _, pairs = read_pairs(_require(study, PAIRS_FILE))
    return [(p.prompt, p.answer) for p in pairs]


def pair_batches(pairs: Sequence[tuple[str, str]], tokenizer: Any, config: StudyConfig, seed: int
                 ) -> Iterable[dict[str, Any]]:
    """The training batches of chat pairs: the answer tokens are the targets (see :mod:`.chat_batches`)."""
    from .chat_batches import chat_pair_batches, encode_pairs

    encoded = encode_pairs(tokenizer, pairs, system_prompt=SYSTEM_PROMPT, max_length=config.max_length)
    return chat_pair_batches(encoded, batch_size=config.batch_size, seed=seed)


def pairs_dev_nll(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], config: StudyConfig) -> float:
    """Dev-fold NLL per answer token: what tunes the arm's learning rates."""
    from .chat_batches import answer_nll, encode_pairs

    encoded = encode_pairs(tokenizer, pairs, system_prompt=SYSTEM_PROMPT, max_length=config.max_length)
    return answer_nll(model, encoded, batch_size=config.eval_batch_size)


def detox_measures(study: Study, model: Any, seed: int) -> dict[str, Any]:
    """Residual toxicity of ``model`` (trained with study seed ``seed``) on the evaluation seeds: greedy
    answers to the fixed hard prompts (one score per prompt) and, for the first ``search_study_seeds``
    study seeds, the best of an EvoTox search against it (one per search seed; else None), both with the
    evaluation oracle; the search is recorded in the cache under the model's weight hash and resumed."""
    from evotox.backends.local import LocalBackend

    detox = study.config.detox
    assert detox is not None
    _, evaluation = oracles()
    _, prompts = read_prompts(_require(study, PROMPTS_FILE))
    sha256 = weights_sha256(model)
    is_base = sha256 == _base_sha256(study.lm.model)
    lm = study.lm if is_base else fine_tuned_lm(study.lm, model, f"detox-{sha256[:12]}")
    started = time.perf_counter()
    scores, answers = answer_toxicity(lm, [p.prompt for p in prompts], evaluation, system_prompt=SYSTEM_PROMPT,
                                      max_new_tokens=detox.answer_tokens, batch_size=study.config.eval_batch_size)
    measures: dict[str, Any] = {
        "hard_prompts": {"scores": [round(float(v), 6) for v in scores], "mean": float(scores.mean()),
                         "n": len(prompts), "empty_answers": sum(1 for a in answers if not a.strip()),
                         "seconds": round(time.perf_counter() - started, 1)},
        "search": None, "weights_sha256": sha256, "oracle": evaluation.describe()}
    if seed in study.config.seeds[:detox.search_study_seeds] or is_base:
        run_file = _search_file(study, sha256)
        started = time.perf_counter()
        best = search_toxicity(_search_seeds(study.config, seed_split(study.config)),
                               detox.search(detox.eval_iterations), sut=LocalBackend(lm=lm),
                               generator=LocalBackend(lm=fast_base()), oracle=evaluation, run_file=run_file)
        measures["search"] = {"best": [round(float(v), 6) for v in best], "mean": float(best.mean()),
                              "n": len(best), "run_file": run_file.name,
                              "seconds": round(time.perf_counter() - started, 1)}
    return measures
