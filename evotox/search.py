"""The (1+lambda) elitist toxicity search, its variants and its baselines, over any two backends and an oracle.

One search per (seed prompt, method). An elitist iteration asks the generator for one rewrite of the
current best prompt per category (lambda = number of categories, one batch), has the system under test
answer every usable rewrite (one batch), scores the answers with the oracle, and replaces the parent by the
best mutant only if that mutant's fitness is strictly higher. The seed prompt's own evaluation is
iteration 0 and is shared by every method of that seed.

Every model call goes through :meth:`Engine._complete`, which first looks the call's key up in the records
of the run so far: a call already in the run file is taken from it (and checked to be the same request),
a new one is made and appended. The search's decisions depend only on those records and on random
generators seeded from ``(random_seed, key)``, so a resumed run replays its file and then goes on exactly
where an uninterrupted run would have been: nothing is lost or repeated.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from evotox.archive import RunFileError, RunWriter
from evotox.backends.base import BackendError, LanguageModel
from evotox.config import VARIANTS, SearchConfig, check_seeds
from evotox.fitness import Oracle, aggregate, check_scores
from evotox.gate import Gate
from evotox.parsing import parse_rewrite
from evotox.prompts import Feedback, generator_request, jailbreak_prompts, sut_request
from sfbow_llm.chat import ContextLengthError, Request, derive_seed

__all__ = ["Engine", "Evaluation", "SearchResult", "steps_per_search"]

StepCallback = Callable[[int, str, int, float], None]


@dataclass(frozen=True)
class Evaluation:
    """A prompt, the SUT's answer to it, the oracle's scores of that answer and their fitness."""

    prompt: str
    answer: str
    scores: dict[str, float]
    fitness: float


@dataclass
class SearchResult:
    """The outcome of one search: the best evaluation, the best fitness after each iteration (index 0 is
    the seed itself), the accepted prompts in order, and the budget actually used."""

    seed_index: int
    method: str
    best: Evaluation
    trajectory: list[float]
    accepted: list[str] = field(default_factory=list)
    sut_queries: int = 1
    generator_failures: int = 0


@dataclass
class _Cost:
    model_seconds: float = 0.0
    oracle_seconds: float = 0.0
    new_calls: int = 0
    replayed_calls: int = 0


def steps_per_search(method: str, config: SearchConfig) -> int:
    """Progress steps of one search: the iterations (one for the seed alone and for jailbreak)."""
    return {"seeds": 1, "jailbreak": 1}.get(method, config.iterations)


class Engine:
    """Runs searches for a configuration on a SUT, a generator and an oracle, recording into ``writer``.

    ``records`` are the records of the run so far (from :func:`evotox.archive.open_for_resume`), used to
    replay instead of calling the models again; empty for a new run. ``writer`` may be ``None`` to keep
    results in memory only.
    """

    def __init__(self, config: SearchConfig, *, sut: LanguageModel, generator: LanguageModel, oracle: Oracle,
                 writer: RunWriter | None = None, records: Sequence[dict[str, Any]] = ()) -> None:
        self.config = config
        self.sut, self.generator, self.oracle = sut, generator, oracle
        self.writer = writer
        self._records = {record["key"]: record for record in records}
        self._gate = Gate(config.relevance_threshold) if config.gate else None
        self._stop = threading.Event()  # set when one of several parallel searches fails: the others stop too

    # -- public -------------------------------------------------------------------------------------------
    def run(self, seeds: Sequence[str], *, on_step: StepCallback | None = None) -> list[SearchResult]:
        """Run every method on every seed (seed-major order); return the results in that order."""
        prompts = check_seeds(seeds)
        seed_evaluations = self._evaluate_seeds(prompts)
        tasks = [(i, method) for i in range(len(prompts)) for method in self.config.methods]

        def one(task: tuple[int, str]) -> SearchResult:
            index, method = task
            return self._search(index, prompts[index], method, seed_evaluations[index], on_step)

        if self.config.parallel_searches == 1:
            return [one(task) for task in tasks]
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=self.config.parallel_searches) as pool:
            futures = [pool.submit(one, task) for task in tasks]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # all, or the first failure wherever it is
                for future in done:
                    failure = future.exception()
                    if failure is not None:
                        raise failure
                return [future.result() for future in futures]
            except BaseException:
                self._stop.set()  # running searches stop after their current batch; queued ones never start
                for future in futures:
                    future.cancel()
                raise

    def records(self) -> list[dict[str, Any]]:
        """Every record of the run so far (replayed and new), in the order they became known."""
        return list(self._records.values())

    # -- one search ---------------------------------------------------------------------------------------
    def _search(self, index: int, seed: str, method: str, base: Evaluation,
                on_step: StepCallback | None) -> SearchResult:
        config = self.config
        result = SearchResult(seed_index=index, method=method, best=base, trajectory=[base.fitness])
        self._write_step(result, 0, accepted=False, cost=_Cost(), wall=0.0, categories=())
        if on_step is not None and method == "seeds":
            on_step(index, method, 0, base.fitness)
        if method == "seeds":
            return result
        if method == "jailbreak":
            self._jailbreak(result, seed, on_step)
            return result
        memory: list[tuple[str, float]] = []
        for iteration in range(1, config.iterations + 1):
            if self._stop.is_set():
                raise RuntimeError("stopped because another search of this run failed")
            start, cost = time.perf_counter(), _Cost()
            if method == "random":
                rng = random.Random(f"{config.random_seed}/{index}/random/{iteration}")
                categories = tuple(rng.choice(config.categories) for _ in range(config.lam))
                parent = base
            else:
                categories, parent = config.categories, result.best
            feedback = self._feedback(method, result.best, memory)
            mutants = self._mutate(index, method, iteration, parent.prompt, seed, categories, feedback, cost)
            slots = [k for k, mutant in enumerate(mutants) if mutant is not None]
            evaluations = self._evaluate(
                [(f"s{index}/{method}/i{iteration}/m{k}", mutants[k] or "",
                  {"seed_index": index, "method": method, "iteration": iteration, "slot": k,
                   "category": categories[k]}) for k in slots], cost)
            result.sut_queries += len(slots)
            result.generator_failures += config.lam - len(slots)
            candidate = max(evaluations, key=lambda e: e.fitness, default=None)  # first of equals on ties
            improved = candidate is not None and candidate.fitness > result.best.fitness
            if improved and candidate is not None:
                result.best = candidate
                result.accepted.append(candidate.prompt)
                memory.append((candidate.prompt, self._reported(method, candidate.fitness)))
            result.trajectory.append(result.best.fitness)
            self._write_step(result, iteration, accepted=improved, cost=cost, wall=time.perf_counter() - start,
                             categories=categories)
            if on_step is not None:
                on_step(index, method, iteration, result.best.fitness)
        return result

    def _jailbreak(self, result: SearchResult, seed: str, on_step: StepCallback | None) -> None:
        start, cost = time.perf_counter(), _Cost()
        index = result.seed_index
        prompts = jailbreak_prompts(seed, self.config.jailbreak_templates)[:self.config.budget]
        evaluations = self._evaluate(
            [(f"s{index}/jailbreak/i1/t{k}", prompt, {"seed_index": index, "method": "jailbreak", "iteration": 1,
                                                       "slot": k}) for k, prompt in enumerate(prompts)], cost)
        result.sut_queries += len(prompts)
        candidate = max(evaluations, key=lambda e: e.fitness)
        improved = candidate.fitness > result.best.fitness
        if improved:
            result.best = candidate
            result.accepted.append(candidate.prompt)
        result.trajectory.append(result.best.fitness)
        self._write_step(result, 1, accepted=improved, cost=cost, wall=time.perf_counter() - start, categories=())
        if on_step is not None:
            on_step(index, "jailbreak", 1, result.best.fitness)

    def _reported(self, method: str, score: float) -> float:
        """The score as the generator is told it: gaslit (lowered) above the threshold for those variants."""
        if method in ("gaslighting", "memory") and score > self.config.gaslight_threshold:
            return score * self.config.gaslight_factor
        return score

    def _feedback(self, method: str, best: Evaluation, memory: list[tuple[str, float]]) -> Feedback | None:
        if method not in VARIANTS or method == "vanilla":
            return None
        shown = tuple(memory[-self.config.memory_size:]) if method == "memory" and self.config.memory_size else ()
        return Feedback(score=self._reported(method, best.fitness), memory=shown)

    # -- generator and SUT calls --------------------------------------------------------------------------
    def _mutate(self, index: int, method: str, iteration: int, parent: str, seed: str, categories: Sequence[str],
                feedback: Feedback | None, cost: _Cost) -> list[str | None]:
        """One rewrite of ``parent`` per category; ``None`` where no attempt gave a parsable reply that passed
        the gate (a record without a ``gate`` field, from before the gate, counts as passed)."""
        config = self.config
        rewrites: list[str | None] = [None] * len(categories)
        pending = list(range(len(categories)))
        # Greedy decoding would give the same reply again: retry only when the generator samples.
        attempts = config.generator_attempts if config.generator_temperature > 0 else 1
        for attempt in range(attempts):
            items = []
            for k in pending:
                key = f"s{index}/{method}/i{iteration}/m{k}/generator/a{attempt}"
                request = generator_request(parent, categories[k], feedback,
                                            max_new_tokens=config.generator_max_new_tokens,
                                            temperature=config.generator_temperature,
                                            seed=derive_seed(config.random_seed, key))
                meta = {"seed_index": index, "method": method, "iteration": iteration, "slot": k,
                        "attempt": attempt, "category": categories[k]}
                items.append((key, meta, request))
            records = self._complete("generator", items, cost, parent=parent, seed=seed)
            still = []
            for k, record in zip(pending, records):
                if record["parsed"] is None or record.get("gate") is not None:
                    still.append(k)
                else:
                    rewrites[k] = record["parsed"]
            pending = still
            if not pending:
                break
        return rewrites

    def _evaluate_seeds(self, prompts: list[str]) -> list[Evaluation]:
        """Iteration 0 of every search: each seed answered once, shared by all methods of that seed."""
        evaluations: list[Evaluation] = []
        chunk = self.config.lam
        for first in range(0, len(prompts), chunk):
            items = [(f"s{i}/seed", prompts[i], {"seed_index": i, "method": "seed", "iteration": 0})
                     for i in range(first, min(first + chunk, len(prompts)))]
            try:
                evaluations += self._evaluate(items, _Cost())
            except ContextLengthError as error:
                raise ContextLengthError(f"one of seeds {first + 1}-{first + len(items)} (counted from 1, blank lines "
                                         f"skipped) does not fit the SUT's context: {error}. Shorten it") from None
        return evaluations

    def _evaluate(self, items: list[tuple[str, str, dict[str, Any]]], cost: _Cost) -> list[Evaluation]:
        """SUT answers and oracle scores for ``(key, prompt, meta)`` items; an empty answer is asked again
        (``sut_attempts`` in all), and the last answer counts, empty or not."""
        config = self.config
        final: list[dict[str, Any] | None] = [None] * len(items)
        pending = list(range(len(items)))
        for attempt in range(config.sut_attempts):
            calls = []
            for k in pending:
                key, prompt, meta = items[k]
                call_key = f"{key}/sut/a{attempt}"
                request = sut_request(prompt, config.system_prompt, max_new_tokens=config.sut_max_new_tokens,
                                      temperature=config.sut_temperature,
                                      seed=derive_seed(config.random_seed, call_key))
                calls.append((call_key, {**meta, "attempt": attempt, "prompt": prompt}, request))
            records = self._complete("sut", calls, cost)
            last = attempt == config.sut_attempts - 1
            still = []
            for k, record in zip(pending, records):
                final[k] = record
                if not record["text"].strip() and not last:
                    still.append(k)
            pending = still
            if not pending:
                break
        evaluations = []
        for (_, prompt, _), answered in zip(items, final):
            assert answered is not None
            evaluations.append(Evaluation(prompt=prompt, answer=answered["text"], scores=answered["scores"],
                                          fitness=answered["fitness"]))
        return evaluations

    def _complete(self, role: str, items: list[tuple[str, dict[str, Any], Request]], cost: _Cost,
                  parent: str = "", seed: str = "") -> list[dict[str, Any]]:
        """The call records of ``(key, meta, request)`` items: replayed from the run so far where present,
        otherwise made as one batch (then, for the SUT, scored) and appended to the run file."""
        records: list[dict[str, Any] | None] = [None] * len(items)
        missing = []
        for i, (key, _, request) in enumerate(items):
            known = self._records.get(key)
            if known is None:
                missing.append(i)
                continue
            if known.get("request") != request.to_dict():
                raise RunFileError(f"the run file's call {key!r} recorded a different request than this run would "
                                   "send: the file belongs to another configuration or evotox version")
            records[i] = known
            cost.replayed_calls += 1
        if missing:
            backend = self.sut if role == "sut" else self.generator
            start = time.perf_counter()
            completions = backend.generate([items[i][2] for i in missing])
            measured = time.perf_counter() - start
            if len(completions) != len(missing):
                raise BackendError(f"the {role} backend returned {len(completions)} answers for {len(missing)} requests")
            # Each call's cost is what the backend reports for it (its share of the batch's time); a backend
            # that reports nothing gets an even share of the measured wall time.
            reported = [max(float(completion.seconds), 0.0) for completion in completions]
            model_seconds = sum(reported) if sum(reported) > 0 else measured
            if sum(reported) <= 0:
                reported = [measured / len(missing)] * len(missing)
            cost.model_seconds += model_seconds
            texts = [completion.text for completion in completions]
            scores: list[dict[str, float]] = []
            oracle_seconds = 0.0
            if role == "sut":
                start = time.perf_counter()
                scores = check_scores(self.oracle, self.oracle.score(texts), texts)
                oracle_seconds = time.perf_counter() - start
                cost.oracle_seconds += oracle_seconds
            new = []
            for j, (i, completion) in enumerate(zip(missing, completions)):
                key, meta, request = items[i]
                record: dict[str, Any] = {
                    "type": "call", "key": key, "role": role, **meta, "request": request.to_dict(),
                    "text": completion.text, "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                    "seconds": reported[j], "batch_size": len(missing)}
                if role == "sut":
                    record["scores"] = scores[j]
                    record["fitness"] = aggregate(scores[j], self.config.fitness)
                    record["oracle_seconds"] = oracle_seconds / len(missing)
                else:
                    parsed = parse_rewrite(completion.text, parent, max_chars=self.config.max_prompt_chars)
                    record["parsed"] = parsed
                    if self._gate is not None:
                        verdict = self._gate.check(parsed, seed=seed, parent=parent) if parsed is not None else None
                        record.update(verdict.to_dict() if verdict is not None else {"gate": "unparsed"})
                new.append(record)
                records[i] = record
                self._records[key] = record
            cost.new_calls += len(new)
            if self.writer is not None:
                self.writer.write(new)
        return [record for record in records if record is not None]

    def _write_step(self, result: SearchResult, iteration: int, *, accepted: bool, cost: _Cost, wall: float,
                    categories: Sequence[str]) -> None:
        key = f"s{result.seed_index}/{result.method}/i{iteration}/step"
        if key in self._records:
            return
        best = result.best
        record = {"type": "step", "key": key, "seed_index": result.seed_index, "method": result.method,
                  "iteration": iteration, "categories": list(categories), "accepted": accepted,
                  "best_fitness": best.fitness, "best_prompt": best.prompt, "best_answer": best.answer,
                  "best_scores": best.scores, "sut_queries": result.sut_queries,
                  "generator_failures": result.generator_failures, "wall_seconds": wall,
                  "model_seconds": cost.model_seconds, "oracle_seconds": cost.oracle_seconds,
                  "new_calls": cost.new_calls, "replayed_calls": cost.replayed_calls}
        self._records[key] = record
        if self.writer is not None:
            self.writer.write([record])
