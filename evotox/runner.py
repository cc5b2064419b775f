"""Starting and resuming recorded runs: models built from specs, the run file's head, the progress bar.

A run is described by a :class:`RunSpec` (seeds, search configuration, SUT / generator / oracle specs),
which is recorded in the run file's head, so ``resume_run(path)`` needs nothing but the file: it rebuilds
the same models (refusing if a model file's hash changed), replays the recorded calls and goes on.
"""

from __future__ import annotations

import os
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evotox.archive import RunFileError, RunWriter, describe_models, model_changes, new_header
from evotox.backends.base import LanguageModel
from evotox.config import SearchConfig, check_seeds
from evotox.fitness import Oracle
from evotox.search import Engine, SearchResult, steps_per_search
from sfbow_common.records import KindSpec, Record, Registry, S, record_from_dict, set_checked
from sfbow_llm.oracles import OracleSpec

__all__ = ["BACKENDS", "BackendSpec", "RunSpec", "RunSummary", "backend_spec", "build_backend", "build_oracle",
           "default_seeds_file", "read_seeds", "resume_run", "start_run"]

#: The backends by name (``--sut`` / ``--generator`` kinds), each imported only when built.
BACKENDS = Registry("backend", {
    "local": "evotox.backends.local:LocalBackend",
    "http": "evotox.backends.http:HTTPBackend",
    "llamacpp": "evotox.runner:_llamacpp",
})


@dataclass(frozen=True)
class BackendSpec(KindSpec):
    """A backend by kind and options, saved flat: ``{"kind": "local", "model": None | path}``, ``{"kind":
    "http", "base_url": url or [urls], "model": name, "endpoint": "chat" | "completions", "api_key_env": name
    | None, ...}`` or ``{"kind": "llamacpp", "model": path}``; options are the backend class's arguments."""

    kind: str = "local"
    registry: ClassVar[Registry] = BACKENDS


def _local_default() -> BackendSpec:
    return BackendSpec("local", {"model": None})


@dataclass
class RunSpec(Record):
    """What a run does: its seeds, its search settings and which models play which role (saved in the run
    file's head by :meth:`to_dict`; plain dicts given for the specs are read as specs)."""

    seeds: list[str]
    search: SearchConfig = field(default_factory=SearchConfig)
    sut: BackendSpec = field(default_factory=_local_default)
    generator: BackendSpec = field(default_factory=_local_default)
    oracle: OracleSpec = field(default_factory=OracleSpec)
    seeds_file: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.search, SearchConfig):
            raise TypeError(f"search must be a SearchConfig, got {type(self.search).__name__}")
        set_checked(self, seeds=check_seeds(self.seeds), sut=_spec(BackendSpec, self.sut, "sut"),
                    generator=_spec(BackendSpec, self.generator, "generator"),
                    oracle=_spec(OracleSpec, self.oracle, "oracle"))
        if self.seeds_file is not None and not isinstance(self.seeds_file, str):
            raise TypeError(f"seeds_file must be a path string or None, got {self.seeds_file!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """The run description of a run file's head; an incomplete or unknown one is a :class:`RunFileError`."""
        try:
            return typing.cast(RunSpec, record_from_dict(cls, data, what="run description"))
        except (TypeError, ValueError) as error:
            raise RunFileError(f"the run file's head lacks a complete, valid run description ({error})") from None


def _spec(cls: type[S], value: object, name: str) -> S:
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    raise TypeError(f"{name} must be a {cls.__name__} or its dict, got {type(value).__name__}")


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


def backend_spec(text: str, **http_options: Any) -> BackendSpec:
    """A backend spec from its command-line form: ``local``, ``local:PATH``, ``http:URL[,URL...]``,
    ``llamacpp:PATH``; ``http_options`` (model, endpoint, api_key_env, timeout, ...) apply to ``http``."""
    kind, _, rest = text.partition(":")
    if kind == "local":
        return BackendSpec("local", {"model": rest or None})
    if kind == "llamacpp":
        if not rest:
            raise ValueError("llamacpp needs a GGUF file: llamacpp:/path/model.gguf")
        return BackendSpec("llamacpp", {"model": rest})
    if kind == "http":
        if not rest:
            raise ValueError("http needs the server's URL: http:http://127.0.0.1:8000/v1")
        urls = rest.split(",")
        return BackendSpec("http", {"base_url": urls if len(urls) > 1 else urls[0], **http_options})
    raise ValueError(f"unknown backend {text!r}; use local, local:PATH, http:URL or llamacpp:PATH")


def build_backend(spec: BackendSpec | Mapping[str, Any],
                  loaded: dict[str, LanguageModel] | None = None) -> LanguageModel:
    """The backend a spec names; ``loaded`` caches local models by path so SUT and generator share one."""
    spec = _spec(BackendSpec, spec, "backend spec")
    key = f"local:{spec.get('model')}" if spec.kind == "local" else None
    if key is not None and loaded is not None and key in loaded:
        return loaded[key]
    backend = typing.cast(LanguageModel, spec.build())
    if key is not None and loaded is not None:
        loaded[key] = backend
    return backend


def _llamacpp(model: str, **options: Any) -> LanguageModel:
    """The llama.cpp backend of a spec, whose GGUF file is its ``model`` option."""
    from evotox.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(model, **options)


def build_oracle(spec: OracleSpec | Mapping[str, Any]) -> Oracle:
    """The toxicity oracle a spec names (see :data:`sfbow_llm.oracles.ORACLES`): ``jigsaw`` (default,
    offline), ``profanity`` (offline) or ``perspective`` (HTTP, key from ``$PERSPECTIVE_API_KEY``)."""
    return typing.cast(Oracle, _spec(OracleSpec, spec, "oracle spec").build())


def start_run(spec: RunSpec, path: str | os.PathLike[str], *, progress: bool = True) -> RunSummary:
    """Start a new run recorded in ``path`` (which must not exist)."""
    check_seeds(spec.seeds)
    if Path(path).exists():
        raise FileExistsError(f"{path} exists; resume it with `evotox run --resume {path}` or choose another --out")
    loaded: dict[str, LanguageModel] = {}
    sut, generator = build_backend(spec.sut, loaded), build_backend(spec.generator, loaded)
    oracle = build_oracle(spec.oracle)
    header = new_header(spec.to_dict(), {"sut": sut.describe(), "generator": generator.describe(),
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
        spec = RunSpec.from_dict(run.config)
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
