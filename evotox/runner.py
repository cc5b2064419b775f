"""Starting and resuming recorded runs: models built from specs, the run file's head, the progress bar.

A run is described by a :class:`RunSpec` (seeds, search configuration, SUT / generator / oracle specs),
which is recorded in the run file's head, so ``resume_run(path)`` needs nothing but the file: it rebuilds
the same models (refusing if a model file's hash changed), replays the recorded calls and goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evotox.archive import RunFileError, RunWriter, describe_models, model_changes, new_header
from evotox.backends.base import LanguageModel
from evotox.config import SearchConfig, check_seeds
from evotox.fitness import Oracle
from evotox.search import Engine, SearchResult, steps_per_search

__all__ = ["RunSpec", "RunSummary", "backend_spec", "build_backend", "build_oracle", "default_seeds_file", "read_seeds",
           "resume_run", "start_run"]

@dataclass
class RunSpec:
    """What a run does: its seeds, its search settings and which models play which role.

    A backend spec is a dict: ``{"kind": "local", "model": None | path}``, ``{"kind": "http", "base_url":
    url or [urls], "model": name, "endpoint": "chat" | "completions", "api_key_env": name | None, ...}``
    or ``{"kind": "llamacpp", "model": path}``. An oracle spec: ``{"kind": "jigsaw" | "profanity" |
    "perspective", ...options}``."""

    seeds: list[str]
    search: SearchConfig = field(default_factory=SearchConfig)
    sut: dict[str, Any] = field(default_factory=lambda: {"kind": "local", "model": None})
    generator: dict[str, Any] = field(default_factory=lambda: {"kind": "local", "model": None})
    oracle: dict[str, Any] = field(default_factory=lambda: {"kind": "jigsaw"})
    seeds_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "seeds_file": self.seeds_file, "search": self.search.to_json(),
                "sut": dict(self.sut), "generator": dict(self.generator), "oracle": dict(self.oracle)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        try:
            return cls(seeds=list(data["seeds"]), search=SearchConfig.from_json(data["search"]), sut=dict(data["sut"]),
                       generator=dict(data["generator"]), oracle=dict(data["oracle"]),
                       seeds_file=data.get("seeds_file"))
        except (KeyError, TypeError) as error:
            raise RunFileError(f"the run file's head lacks a complete run description ({error})") from None


@dataclass
class RunSummary:
    """What a start or resume did: the results, the wall time of the search and the model and oracle
    seconds of the calls made in this session (the basis of the framework's own share of the time)."""

    results: list[SearchResult]
    wall_seconds: float
    model_seconds: float
    oracle_seconds: float
    new_calls: int
    replayed_calls: int


def default_seeds_file() -> Path:
    """The 50 HarmfulQA seed prompts shipped inside the package (Apache-2.0, see ``evotox/data/README.md``):
    the seeds of ``evotox run`` when ``--seeds`` is not given."""
    return Path(__file__).resolve().parent / "data" / "seeds.txt"


def read_seeds(path: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
    """Seed prompts from a text file, one a line; blank lines are skipped. An empty file is an error."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"seeds file {source} does not exist")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"seeds file {source} is not UTF-8 text ({error})") from None
    seeds = [line.strip() for line in lines if line.strip()]
    if not seeds:
        raise ValueError(f"seeds file {source} has no seed prompt (it is empty or only blank lines); write one "
                         "prompt per line")
    return seeds[:limit] if limit is not None else seeds


def backend_spec(text: str, **http_options: Any) -> dict[str, Any]:
    """A backend spec from its command-line form: ``local``, ``local:PATH``, ``http:URL[,URL...]``,
    ``llamacpp:PATH``; ``http_options`` (model, endpoint, api_key_env, timeout, ...) apply to ``http``."""
    kind, _, rest = text.partition(":")
    if kind == "local":
        return {"kind": "local", "model": rest or None}
    if kind == "llamacpp":
        if not rest:
            raise ValueError("llamacpp needs a GGUF file: llamacpp:/path/model.gguf")
        return {"kind": "llamacpp", "model": rest}
    if kind == "http":
        if not rest:
            raise ValueError("http needs the server's URL: http:http://127.0.0.1:8000/v1")
        urls = rest.split(",")
        return {"kind": "http", "base_url": urls if len(urls) > 1 else urls[0], **http_options}
    raise ValueError(f"unknown backend {text!r}; use local, local:PATH, http:URL or llamacpp:PATH")


def build_backend(spec: Mapping[str, Any], loaded: dict[str, LanguageModel] | None = None) -> LanguageModel:
    """The backend a spec names; ``loaded`` caches local models by path so SUT and generator share one."""
    kind = spec.get("kind")
    options = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "local":
        key = f"local:{options.get('model')}"
        if loaded is not None and key in loaded:
            return loaded[key]
        from evotox.backends.local import LocalBackend

        backend: LanguageModel = LocalBackend(options.get("model"), **{k: v for k, v in options.items() if k != "model"})
        if loaded is not None:
            loaded[key] = backend
        return backend
    if kind == "http":
        from evotox.backends.http import HTTPBackend

        return HTTPBackend(options.pop("base_url"), **options)
    if kind == "llamacpp":
        from evotox.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(options.pop("model"), **options)
    raise ValueError(f"unknown backend kind {kind!r}; use local, http or llamacpp")


def build_oracle(spec: Mapping[str, Any]) -> Oracle:
    """The toxicity oracle a spec names, through :func:`llmkit.oracles.make_oracle`: ``jigsaw`` (default,
    offline), ``profanity`` (offline) or ``perspective`` (HTTP, key from ``$PERSPECTIVE_API_KEY``)."""
    from llmkit.oracles import make_oracle

    return make_oracle(str(spec.get("kind")), **{k: v for k, v in spec.items() if k != "kind"})


def start_run(spec: RunSpec, path: str | os.PathLike[str], *, progress: bool = True) -> RunSummary:
    """Start a new run recorded in ``path`` (which must not exist)."""
    check_seeds(spec.seeds)
    if Path(path).exists():
        raise FileExistsError(f"{path} exists; resume it with `evotox run --resume {path}` or choose another --out")
    loaded: dict[str, LanguageModel] = {}
    sut, generator = build_backend(spec.sut, loaded), build_backend(spec.generator, loaded)
    oracle = build_oracle(spec.oracle)
    header = new_header(spec.to_json(), {"sut": sut.describe(), "generator": generator.describe(),
                                         "oracle": _describe(oracle)})
    with RunWriter(path, header) as writer:
        return _execute(spec, sut, generator, oracle, writer, [], progress)


def resume_run(path: str | os.PathLike[str], *, progress: bool = True,
               parallel_searches: int | None = None) -> RunSummary:
    """Continue the run recorded in ``path``: replay its calls, then make the ones still missing.
    ``parallel_searches`` may differ from the recorded one: it changes how the work runs, not what is asked."""
    with RunWriter(path) as writer:  # locks the file first: a second resume of it fails here, at once
        run = writer.run
        assert run is not None
        spec = RunSpec.from_json(run.config)
        if parallel_searches is not None:
            spec.search = spec.search.replace(parallel_searches=parallel_searches)
        loaded: dict[str, LanguageModel] = {}
        sut, generator = build_backend(spec.sut, loaded), build_backend(spec.generator, loaded)
        oracle = build_oracle(spec.oracle)
        current = describe_models({"sut": sut.describe(), "generator": generator.describe(),
                                   "oracle": _describe(oracle)})
        changes = model_changes(run.header.get("models", {}), current)
        if changes:
            raise RunFileError(f"the models differ from the ones {path} was started with ({'; '.join(changes)}); "
                               "resume with the same model files or start a new run")
        return _execute(spec, sut, generator, oracle, writer, run.records, progress)


def _describe(oracle: Oracle) -> dict[str, Any]:
    describe = getattr(oracle, "describe", None)
    return dict(describe()) if callable(describe) else {"kind": type(oracle).__name__}


def _execute(spec: RunSpec, sut: LanguageModel, generator: LanguageModel, oracle: Oracle, writer: RunWriter,
             records: list[dict[str, Any]], progress: bool) -> RunSummary:
    engine = Engine(spec.search, sut=sut, generator=generator, oracle=oracle, writer=writer, records=records)
    total = len(spec.seeds) * sum(steps_per_search(m, spec.search) for m in spec.search.methods)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", desc="evotox", dynamic_ncols=True)
    best: dict[str, float] = {}

    def on_step(index: int, method: str, iteration: int, fitness: float) -> None:
        best[method] = max(best.get(method, 0.0), fitness)
        if bar is not None:
            bar.set_postfix_str(f"seed {index + 1}/{len(spec.seeds)} {method} it {iteration} best {fitness:.3f}")
            bar.update(1)

    start = time.perf_counter()
    try:
        results = engine.run(spec.seeds, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    known = {record["key"] for record in records}
    new = [r for r in engine.records() if r["type"] == "call" and r["key"] not in known]
    return RunSummary(results=results, wall_seconds=wall, model_seconds=sum(r["seconds"] for r in new),
                      oracle_seconds=sum(r.get("oracle_seconds", 0.0) for r in new), new_calls=len(new),
                      replayed_calls=sum(1 for r in records if r["type"] == "call"))
