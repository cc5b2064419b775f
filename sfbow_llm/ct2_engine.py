"""The fast engine: CTranslate2 (int8 weights by default) on a converted copy of the model.

A model is converted once (through the reference engine's fp32 folder for a GGUF; transformers and torch
are imported only then) into a cache folder named ``<model>-<first 16 hex of its SHA-256>-ctranslate2-
<ctranslate2 version>-<quantization>``, holding CTranslate2's ``model.bin``, ``tokenizer.json`` and the
chat template (:mod:`sfbow_llm.chat_tokenizer`), and a marker recording the source's SHA-256, the engine, its
version, the quantization and the weights' SHA-256. Loading that folder imports only ``ctranslate2``,
``tokenizers`` and ``jinja2``. A folder whose marker records another engine version or quantization is
rebuilt, never reused; a conversion interrupted or failed leaves no folder (see
:func:`sfbow_llm.models.save_folder_atomically`).

Generation uses ``Generator.generate_batch`` (rows of different lengths batched natively, no padding) with
a per-token callback that applies the stop strings, EOS and per-row budgets exactly as the reference does,
ending a finished row at once. CTranslate2 seeds each worker thread's random generator once, when it
first samples, from the process-wide ``ctranslate2.set_random_seed``; so a seeded sampling call runs on a
freshly opened ``Generator`` (0.1-0.4 s from the page cache) seeded just before, which makes the same seed
give the same text whatever ran before. Per-row seeds decode each row on its own fresh generator. ``sequence_log_likelihoods`` scores with
``Generator.score_batch`` (exact for the int8 model; they differ from the fp32 reference's, see docs).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfbow_common.hashing import file_sha256
from sfbow_llm.chat import Completion, Request
from sfbow_llm.chat_tokenizer import ChatTokenizer, save_specials
from sfbow_llm.generation import finished
from sfbow_llm.models import MARKER, ModelSource, read_marker, require_engine, save_folder_atomically

__all__ = ["DEFAULT_QUANTIZATION", "CT2CausalLM", "load_ct2"]

#: int8 weights with float32 activations: the fastest CPU format measured (benchmarks/llm_generation.py).
DEFAULT_QUANTIZATION = "int8"
_RANDOM_LOCK = threading.Lock()  # ctranslate2's sampling seed is process-wide: seed and decode under one lock
_OPEN: weakref.WeakSet[CT2CausalLM] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Release every generator before the interpreter shuts down: one still alive then, after a decode
    ended early by its callback (every stop string or EOS does), aborts the process in ctranslate2 4.8
    ("terminate called without an active exception")."""
    for lm in list(_OPEN):
        lm.generator = None


@dataclass(eq=False)  # identity hashing: kept in a WeakSet
class CT2CausalLM:
    """A model loaded on CTranslate2: the ``ctranslate2.Generator``, its :class:`ChatTokenizer`, the
    source and SHA-256 that identify it, and what the conversion recorded (see :meth:`describe`)."""

    generator: Any
    tokenizer: ChatTokenizer
    source: Path
    sha256: str
    name: str
    folder: Path  # the converted cache folder
    marker: dict[str, Any]
    threads: int
    engine: str = field(default="ctranslate2")
    _fresh: bool = field(default=True, repr=False)  # the generator has not decoded yet (its RNG is unseeded)
    _temporary: Any = field(default=None, repr=False)  # with use_cache=False: the folder, removed with the model

    @property
    def context_length(self) -> int | None:
        return self.marker.get("context_length")

    def describe(self) -> dict[str, object]:
        """What a run file's header records: the model and the engine's identity (name, version,
        quantization, SHA-256 of the converted weights)."""
        return {"name": self.name, "source": str(self.source), "sha256": self.sha256,
                "architecture": self.marker.get("architecture"), "dtype": self.marker["quantization"],
                "engine": {"name": "ctranslate2", "version": self.marker["engine_version"],
                           "quantization": self.marker["quantization"],
                           "weights_sha256": self.marker["weights_sha256"]}, "threads": self.threads}

    def decode_batch(self, requests: Sequence[Request], encoded: list[list[int]], budgets: list[int],
                     temperature: float, top_p: float, seed: int | list[int]) -> list[Completion]:
        """Decode the rows (see :func:`sfbow_llm.generation.generate`); per-row seeds decode row by row."""
        if temperature > 0 and isinstance(seed, list):
            done: list[Completion] = []
            for row in range(len(requests)):
                done += self._decode([requests[row]], [encoded[row]], [budgets[row]], temperature, top_p, seed[row])
            return done
        batch_seed = seed if isinstance(seed, int) else 0  # a list here means greedy decoding: no seed is used
        return self._decode(requests, encoded, budgets, temperature, top_p, batch_seed)

    def _decode(self, requests: Sequence[Request], encoded: list[list[int]], budgets: list[int],
                temperature: float, top_p: float, seed: int) -> list[Completion]:
        eos = set(self.marker["eos_token_ids"])
        generated: list[list[int]] = [[] for _ in requests]
        results: list[Completion | None] = [None] * len(requests)

        def step(result: Any) -> bool:  # called for every generated token; True ends that row
            row = result.batch_id
            if results[row] is not None:
                return True
            ids = generated[row]
            ids.append(result.token_id)
            done = finished(self.tokenizer.decode, requests[row], ids, result.token_id in eos, budgets[row])
            if done is None:
                return False
            text, reason, stop = done
            results[row] = Completion(text, len(encoded[row]), len(ids), 0.0, reason, stop)  # seconds: set by generate
            return True

        sampling = ({"sampling_topk": 0, "sampling_topp": top_p, "sampling_temperature": temperature}
                    if temperature > 0 else {"sampling_topk": 1})
        with _RANDOM_LOCK:
            if temperature > 0:
                import ctranslate2

                if not self._fresh:
                    self.generator = _generator(self.folder, self.marker, self.threads)
                ctranslate2.set_random_seed(seed)
            self._fresh = False
            self.generator.generate_batch([self.tokenizer.tokens(ids) for ids in encoded], max_length=max(budgets),
                                          end_token=sorted(eos), return_end_token=True,
                                          include_prompt_in_result=False, callback=step, **sampling)
        for row, result in enumerate(results):
            if result is None:  # ended by the engine without a last callback (cannot happen with a budget)
                text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
                results[row] = Completion(text, len(encoded[row]), len(generated[row]), 0.0, "length")
        return [r for r in results if r is not None]

    def sequence_log_likelihoods(self, token_ids: Sequence[Sequence[int]], *, batch_size: int = 16) -> Any:
        """Sum of ``log p(x_t | x_<t)`` over t >= 1 of each id sequence under this (quantized) model, as
        :func:`sfbow_llm.loglik.sequence_log_likelihoods` gives for a torch model (same ``SentenceScores``)."""
        import numpy as np

        from sfbow_llm.loglik import SentenceScores, check_sequences

        lengths = check_sequences(token_ids)
        results = self.generator.score_batch([self.tokenizer.tokens(ids) for ids in token_ids],
                                             max_batch_size=batch_size, max_input_length=0)
        totals = np.array([float(np.sum(np.asarray(r.log_probs, dtype=np.float64))) for r in results])
        return SentenceScores(log_likelihood=totals, num_tokens=lengths - 1)


def load_ct2(model: ModelSource, cache: Path, *, use_cache: bool = True, threads: int | None = None,
             quantization: str = DEFAULT_QUANTIZATION) -> CT2CausalLM:
    """Load ``model`` on CTranslate2 with ``quantization`` weights on ``threads`` threads (``None``: the
    ``OMP_NUM_THREADS`` or CTranslate2's default), converting it into ``cache`` first when needed."""
    require_engine("ctranslate2")
    import ctranslate2

    from sfbow_common.checks import check_positive_int

    supported = sorted(ctranslate2.get_supported_compute_types("cpu"))
    if quantization not in supported:
        raise ValueError(f"quantization must be one this CPU supports under ctranslate2 "
                         f"{ctranslate2.__version__}: {', '.join(supported)}; got {quantization!r}")
    if threads is None:
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    else:
        threads = check_positive_int(threads, "threads")
    identity = {"sha256": model.sha256, "engine": "ctranslate2", "engine_version": ctranslate2.__version__,
                "quantization": quantization}
    if not use_cache:
        temporary = tempfile.TemporaryDirectory(prefix="sfbow-llm-ct2-")  # the fp32 step too stays in it
        folder = Path(temporary.name) / "ct2"
        converted = {**identity, **_convert(model, folder, Path(temporary.name) / "fp32", quantization)}
        shutil.rmtree(Path(temporary.name) / "fp32", ignore_errors=True)
        lm = _open(model, folder, converted, threads)
        lm._temporary = temporary  # kept for reopening (seeded sampling); removed when lm is collected
        return lm
    folder = cache / f"{model.name}-{model.sha256[:16]}-ctranslate2-{ctranslate2.__version__}-{quantization}"
    marker = read_marker(folder) if folder.is_dir() else None
    if folder.is_dir() and marker is None:
        raise ValueError(f"{folder} is in the sfbow_llm cache but has no valid {MARKER}; it was not written by "
                         "sfbow_llm: delete it")
    if marker is None or any(marker.get(k) != v for k, v in identity.items()):
        written: dict[str, Any] = {}

        def write(tmp: Path) -> None:
            written.update(identity, **_convert(model, tmp, cache, quantization))

        save_folder_atomically(folder, write, written, replace=marker is not None)  # a stale one is rebuilt
        marker = read_marker(folder)
    if marker is None:  # pragma: no cover - the folder was just written
        raise ValueError(f"{folder} has no valid {MARKER} after conversion; delete it and load again")
    return _open(model, folder, marker, threads)


def _open(model: ModelSource, folder: Path, marker: dict[str, Any], threads: int) -> CT2CausalLM:
    import ctranslate2

    try:
        generator = _generator(folder, marker, threads)
        tokenizer = ChatTokenizer(folder)
    except (RuntimeError, ValueError, OSError, KeyError) as error:
        raise ValueError(f"ctranslate2 {ctranslate2.__version__} cannot load the converted copy {folder} of "
                         f"{model.path} ({error}); delete that folder and load again to rebuild it") from error
    lm = CT2CausalLM(generator, tokenizer, model.path, model.sha256, model.name, folder, marker, threads)
    _OPEN.add(lm)
    return lm


def _generator(folder: Path, marker: dict[str, Any], threads: int) -> Any:
    import ctranslate2

    return ctranslate2.Generator(str(folder), device="cpu", compute_type=marker["quantization"],
                                 intra_threads=threads, inter_threads=1)


def _convert(model: ModelSource, out: Path, cache: Path, quantization: str) -> dict[str, Any]:
    """Convert ``model`` into the folder ``out``; return what the marker records about it. A model
    CTranslate2 cannot run is a ``ValueError`` naming the file and the engine."""
    import ctranslate2
    import ctranslate2.converters

    from sfbow_llm import reference

    if model.path.is_dir():
        source = model.path
        reference.check_causal_folder(source)
    else:
        source = reference.converted_folder(model, cache)  # the fp32 transformers folder (cached too)
    config = reference.check_causal_folder(source)
    try:
        converter = ctranslate2.converters.TransformersConverter(str(source), low_cpu_mem_usage=True)
        converter.convert(str(out), quantization=quantization, force=True)
    except (ValueError, NotImplementedError, KeyError, TypeError) as error:
        raise ValueError(f"the engine ctranslate2 {ctranslate2.__version__} cannot run {model.path} "
                         f"({type(error).__name__}: {error}); load it with engine='reference'") from error
    tokenizer = reference.AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    save_specials(tokenizer, out)
    generation = reference.transformers.GenerationConfig.from_model_config(config)
    eos = {tokenizer.eos_token_id} | set(_as_list(generation.eos_token_id))
    for stray in out.iterdir():  # keep only what loading needs
        if stray.name not in {"model.bin", "config.json", "vocabulary.json", "tokenizer.json",
                              "sfbow-llm-tokenizer.json"}:
            shutil.rmtree(stray) if stray.is_dir() else stray.unlink()
    return {"source": str(model.path), "architecture": (config.architectures or [config.model_type])[0],
            "context_length": int(getattr(config, "max_position_embeddings", 0)) or None,
            "eos_token_ids": sorted(int(i) for i in eos if i is not None),
            "weights_sha256": file_sha256(out / "model.bin")}


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)
