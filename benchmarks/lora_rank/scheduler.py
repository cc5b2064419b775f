"""The resumable scheduler: :class:`Study` executes a configuration's grid. Each run writes one JSON file,
atomically, when it has finished; a finished run is never recomputed and a killed one leaves nothing behind.
Several workers may share a results folder: each run is claimed with a lock file (the worker's pid inside),
and a run whose inputs another worker is still computing is retried later."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sfbow_common.atomic import atomic_write_text, atomic_write_via

from .config import FORMAT, Run, StudyConfig
from .data import EvalData, evaluation_data, training_sentences
from .measures import References, evaluate, toxicity
from .model import check_grid, load_base, projections
from .plan import NotReady
from .runs import RUN_KINDS
from .store import Results, diverged
from .toxicity_arm import detox_measures, pair_batches, training_pairs
from .training import batches, prepare, train


class Study(Results):
    """The grid of one configuration, executed resumably: the results (:class:`.store.Results`), the models
    and references the runs share, and large artefacts under ``cache_dir / config.data``."""

    def __init__(self, config: StudyConfig, results_dir: Path, cache_dir: Path) -> None:
        super().__init__(config, results_dir)
        self.cache_dir = cache_dir / config.data
        self._lm: Any = None
        self._eval_data: EvalData | None = None
        self._references: References | None = None

    # ---- shared state
    @property
    def lm(self) -> Any:
        if self._lm is None:
            self._lm = load_base()
        return self._lm

    def fresh_model(self) -> Any:
        """A fresh copy of the base model (the loader's cache makes this a fraction of a second)."""
        return load_base().model

    def final_full(self, seed: int) -> Run | None:
        """The full fine-tune that counts for ``seed``: the last of its chain of re-runs (:meth:`chain`), or
        None while that has not finished. Every rate of the chain diverging is an error."""
        final = self.final(Run("full", seed))
        if final is None:
            return None
        run, result = final
        if diverged(result):
            raise RuntimeError(f"the full fine-tune of seed {seed} diverged at every rate tried (last: {run.name}); "
                               "give lower full_lrs")
        return run

    def full_model(self, seed: int) -> Any:
        """The finished full fine-tune of ``seed`` (:meth:`final_full`), from the weights its run left in the
        cache."""
        from safetensors.torch import load_file

        run = self.final_full(seed) or Run("full", seed)
        path = self.cache_dir / f"seed{seed}" / f"{run.name}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (the cache of run {run.name}, seed {seed}); delete "
                                    f"{self.path(run)} so that run recomputes it")
        model = self.fresh_model()
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
        parameters = {name for name, _ in model.named_parameters()}
        if unexpected or parameters & set(missing):
            raise ValueError(f"{path} does not fit the base model (missing {sorted(parameters & set(missing))[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}); delete it and "
                             f"{self.path(run)} so that run recomputes both")
        return model

    def _reference_model(self, key: str) -> Any | None:
        """The model behind KL reference ``key`` (``base`` or ``full_seed<N>``), None while its run is unfinished."""
        if key == "base":
            return self.fresh_model() if self.load(Run("base", self.config.seeds[0])) is not None else None
        seed = int(key.removeprefix("full_seed"))
        return self.full_model(seed) if self.final_full(seed) is not None else None

    def full_deltas(self, seed: int, model: Any | None = None) -> dict[str, Any]:
        """Each projection's full fine-tuning update (tuned - base) for ``seed``, cached; ``model``: the
        tuned model when at hand, else it is read from the cache."""
        from safetensors.torch import load_file, save_file

        path = self.cache_dir / f"full_deltas_seed{seed}.safetensors"
        if model is None and path.is_file():
            return load_file(str(path))
        tuned_layers = projections(model if model is not None else self.full_model(seed), self.config)
        base_layers = projections(self.fresh_model(), self.config)
        deltas = {name: (tuned_layers[name].weight - base_layers[name].weight).detach().contiguous()
                  for name in tuned_layers}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_via(path, lambda tmp: save_file(deltas, str(tmp)))
        return deltas

    @property
    def eval_data(self) -> EvalData:
        if self._eval_data is None:
            self._eval_data = evaluation_data(self.config)
        return self._eval_data

    @property
    def references(self) -> References:
        if self._references is None:
            self._references = References(self.cache_dir, self.lm.tokenizer, self.eval_data.kl_sentences, self.config,
                                          self._reference_model)
        return self._references

    # ---- execute
    def execute(self, only: set[str] | None = None, poll_seconds: float = 30.0) -> None:
        """Run every unfinished run of the plan. Several workers may share a results folder: each run is
        claimed with a lock file, and a run whose inputs (tuned learning rate, full fine-tune) another
        worker is still computing is retried after ``poll_seconds``."""
        import torch

        threads = os.environ.get("OMP_NUM_THREADS", "").strip()  # unset, empty or not a count: one thread
        torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else 1)
        check_grid(self.config, self.lm.model)
        n_adapters = len(projections(self.lm.model, self.config))
        while True:  # re-planned after every pass: finished runs may add runs (extensions, re-runs)
            self.fill_kl_to_full()
            plan = [run for run in self.plan(n_adapters) if not only or run.kind in only or run.name in only]
            waiting, progressed = [], False
            for run in plan:
                if self.load(run) is not None:
                    continue
                lock = self._claim(run)
                if lock is None:
                    waiting.append(run)
                    continue
                try:
                    if self.load(run) is None:  # another worker may have finished it meanwhile
                        self._execute_one(run, plan)
                        progressed = True
                except NotReady as reason:
                    waiting.append(run)
                    print(f"waiting: seed {run.seed} {run.name}: {reason}", flush=True)
                finally:
                    lock.unlink(missing_ok=True)
            if progressed:
                continue
            if not waiting:
                return
            if not any(self._claimed_by_live_worker(run) for run in plan):
                names = ", ".join(f"seed{r.seed}/{r.name}" for r in waiting)
                raise RuntimeError(f"these runs wait for results no worker is computing: {names}")
            time.sleep(poll_seconds)

    def fill_toxicity(self) -> None:
        """Measure toxicity for finished base runs that recorded it as skipped (made before sfbow_llm's
        generation and oracle existed); the base model is rebuilt exactly by the loader."""
        for path in sorted(self.results_dir.glob("seed*/base.json")):
            run = Run("base", int(path.parent.name.removeprefix("seed")))
            result = self.load(run)
            if result is None or "skipped" not in (result["measures"].get("toxicity") or {}):
                continue
            result["measures"]["toxicity"] = toxicity(self.fresh_model(), self.lm, self.eval_data.toxicity_prompts,
                                                      self.config)
            atomic_write_text(path, json.dumps(result, indent=1) + "\n")
            print(f"toxicity filled in {path}")

    def fill_kl_to_full(self) -> None:
        """LoRA runs may finish before their seed's full fine-tune: once that exists, compute their KL to it
        from the adapter weights kept in the cache (the PEFT model is rebuilt with the same configuration)."""
        for path in sorted(self.results_dir.glob("seed*/lora-r*.json")):
            recorded = json.loads(path.read_text(encoding="utf-8")).get("run", {})
            run = Run(**{k: v for k, v in recorded.items() if k != "name"})
            result = self.load(run)
            if result is None or result.get("measures") is None or result["measures"]["kl_to_full"] is not None:
                continue  # not finished, diverged (never measured), or measured
            reference = self.references.get(f"full_seed{run.seed}")
            if reference is None:
                continue
            from safetensors.torch import load_file

            from sfbow_llm.loglik import mean_next_token_kl

            seed = run.seed
            model, _, _ = prepare("lora", self.fresh_model(), self.config, run, 1.0, 1)
            saved = load_file(str(self.cache_dir / f"seed{seed}" / f"{run.name}.safetensors"))
            missing = set(saved) - {name for name, _ in model.named_parameters()}
            if missing:
                raise ValueError(f"cached weights of {run.name} do not fit the rebuilt model: {sorted(missing)[:3]}")
            model.load_state_dict(saved, strict=False)
            result["measures"]["kl_to_full"] = mean_next_token_kl(model, self.references.ids, reference,
                                                                  batch_size=self.config.eval_batch_size)
            result["measures"]["kl_to_full_filled_later"] = True
            atomic_write_text(path, json.dumps(result, indent=1) + "\n")
            print(f"KL to the full fine-tune filled in {path}", flush=True)

    def _lock_path(self, run: Run) -> Path:
        return self.path(run).with_name(f".{run.name}.lock")

    def _claim(self, run: Run) -> Path | None:
        """Create the run's lock file (pid inside), or None when a live worker holds it."""
        path = self._lock_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._claimed_by_live_worker(run):
                    return None
                path.unlink(missing_ok=True)  # left by a killed worker
                continue
            with os.fdopen(handle, "w") as stream:
                stream.write(str(os.getpid()))
            return path
        return None

    def _claimed_by_live_worker(self, run: Run) -> bool:
        try:
            pid = int(self._lock_path(run).read_text() or "0")
        except (FileNotFoundError, ValueError):
            return False
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _execute_one(self, run: Run, plan: list[Run]) -> None:
        import torch

        print(f"[{plan.index(run) + 1}/{len(plan)}] seed {run.seed} {run.name}", flush=True)
        started = time.perf_counter()
        result = RUN_KINDS[run.kind](self, run)
        result.update({"format": FORMAT, "config": self.config.to_dict(), "run": run.describe(),
                       "model": self.lm.describe(), "seconds": round(time.perf_counter() - started, 1),
                       "threads": torch.get_num_threads(),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        atomic_write_text(self.path(run), json.dumps(result, indent=1) + "\n")

    def evaluate(self, model: Any, seed: int) -> dict[str, Any]:
        # The toxicity arm's measures first: they wait (NotReady) for the detox-data run's files.
        detox = detox_measures(self, model, seed) if self.config.data == "detox" else None
        measures = evaluate(model, self.lm, self.eval_data, self.config, self.references, seed)
        if detox is not None:
            measures["detox"] = detox
        return measures

    def training_data(self) -> list[Any]:
        """What the runs fine-tune on: sentences, or for the toxicity arm (prompt, answer) pairs."""
        return training_pairs(self) if self.config.data == "detox" else training_sentences(self.config)

    def require_references(self, seed: int) -> None:
        """KL needs the base's and this seed's full fine-tune's distributions: wait for those runs."""
        if self.load(Run("base", self.config.seeds[0])) is None:
            raise NotReady("the base run has not finished")
        if self.final_full(seed) is None:
            raise NotReady(f"the full fine-tune of seed {seed} (or its re-run) has not finished")

    def train(self, kind: str, run: Run, lr: float, data: list[Any]) -> tuple[Any, Any, list[float | None], float]:
        """``steps`` of ``kind`` on ``data`` (:meth:`training_data` or its tuning fold)."""
        make_batches = pair_batches if self.config.data == "detox" else batches
        model, optimizer, controller = prepare(kind, self.fresh_model(), self.config, run, lr, self.config.steps)
        started = time.perf_counter()
        losses = train(model, optimizer, make_batches(data, self.lm.tokenizer, self.config, run.seed),
                       self.config.steps, f"{run.name} seed {run.seed}")
        return model, controller, losses, (time.perf_counter() - started) / self.config.steps

    def save_weights(self, model: Any, run: Run, trainable_only: bool) -> None:
        """Keep the trained weights in the cache (trainable tensors only for adapters) so that a model can
        be measured again later without retraining."""
        from safetensors.torch import save_file

        tensors = {name: p.detach().contiguous() for name, p in model.named_parameters()
                   if p.requires_grad or not trainable_only}
        folder = self.cache_dir / f"seed{run.seed}"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_via(folder / f"{run.name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))

