"""The reference engine: a causal LM in torch through transformers (fp32 by default), and its decode loop.

This is the model tests compare the fast engine against, the one the LoRA-rank study trains and scores
(:mod:`sfbow_llm.loglik` takes ``lm.model``), and the one that runs any model transformers can load.
transformers dequantises a GGUF on load (about 15-20 s for the default); the result is cached as a
safetensors model folder named ``<gguf name>-<first 16 hex of its SHA-256>-<dtype>`` (see
:mod:`sfbow_llm.models` for the cache). Importing this module imports torch and transformers (about 15 s on
a busy 2-core machine), which is why :mod:`sfbow_llm.models` imports it only for ``engine="reference"``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfbow_common.extras import install_extra
from sfbow_llm.chat import Completion, Request
from sfbow_llm.generation import finished
from sfbow_llm.models import MARKER, ModelSource, read_marker, require_engine, save_folder_atomically
from sfbow_llm.packaged import MissingPackageError

require_engine("reference")
try:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingPackageError(f"sfbow_llm's reference engine needs torch and transformers ({error}); install the "
                              f"extra: {install_extra('llm')}") from error

__all__ = ["TorchCausalLM", "converted_folder", "load_reference"]


@dataclass
class TorchCausalLM:
    """A loaded causal LM: the torch model (eval mode, fp32 on CPU by default), its tokenizer (with the
    chat template when the source has one), where it came from and the SHA-256 that identifies it."""

    model: Any  # a transformers PreTrainedModel, e.g. LlamaForCausalLM
    tokenizer: Any  # a transformers tokenizer
    source: Path  # the GGUF file or model folder given (the cached copy is an implementation detail)
    sha256: str  # of the GGUF file, or of a folder's files (see sfbow_llm.models.model_sha256)
    name: str
    engine: str = "reference"

    @property
    def context_length(self) -> int | None:
        return int(getattr(self.model.config, "max_position_embeddings", 0)) or None

    def describe(self) -> dict[str, object]:
        """What a run file's header records about the model and the engine that runs it."""
        dtype = str(self.model.dtype).removeprefix("torch.")
        return {"name": self.name, "source": str(self.source), "sha256": self.sha256,
                "architecture": type(self.model).__name__,
                "parameters": sum(p.numel() for p in self.model.parameters()), "dtype": dtype,
                "engine": {"name": "reference", "version": f"transformers {transformers.__version__}, torch "
                           f"{torch.__version__}", "quantization": dtype},
                "transformers": transformers.__version__, "torch": torch.__version__}

    def eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif source is not None:
                ids.update(int(i) for i in source)
        return ids

    def decode_batch(self, requests: Sequence[Request], encoded: list[list[int]], budgets: list[int],
                     temperature: float, top_p: float, seed: int | list[int]) -> list[Completion]:
        """One left-padded batch with a key/value cache (see :func:`sfbow_llm.generation.generate`)."""
        generators = None
        if temperature > 0:
            seeds = seed if isinstance(seed, list) else [seed]
            generators = [torch.Generator(device=self.model.device).manual_seed(s) for s in seeds]
        with torch.inference_mode():
            return _decode_batch(self, requests, encoded, budgets, temperature, top_p, generators,
                                 isinstance(seed, list))


def load_reference(model: ModelSource, cache: Path, *, use_cache: bool = True,
                   dtype: torch.dtype = torch.float32) -> TorchCausalLM:
    """Load ``model`` into torch in ``dtype``; a GGUF's conversion is cached in ``cache`` unless not ``use_cache``."""
    path = model.path
    if path.is_dir():
        return TorchCausalLM(*_load_folder(path, dtype), path, model.sha256, model.name)
    if not use_cache:
        return TorchCausalLM(*_load_gguf(path, dtype), path, model.sha256, model.name)
    folder = converted_folder(model, cache, dtype)
    return TorchCausalLM(*_load_folder(folder, dtype), path, model.sha256, model.name)


def converted_folder(model: ModelSource, cache: Path, dtype: torch.dtype = torch.float32) -> Path:
    """The cached transformers folder of the GGUF ``model`` in ``dtype``, converted first if absent."""
    folder = cache / f"{model.name}-{model.sha256[:16]}-{str(dtype).removeprefix('torch.')}"
    if folder.is_dir():
        marker = read_marker(folder)
        if marker is None:
            raise ValueError(f"{folder} is in the sfbow_llm cache but has no valid {MARKER}; it was not written by "
                             "sfbow_llm: delete it")
        if marker.get("sha256") != model.sha256:
            raise ValueError(f"{folder} caches a model with SHA-256 {marker.get('sha256')}, not {model.sha256}; "
                             "delete it")
        return folder
    converted, tokenizer = _load_gguf(model.path, dtype)

    def write(tmp: Path) -> None:
        converted.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    save_folder_atomically(folder, write, {"source": str(model.path), "sha256": model.sha256,
                                           "transformers": transformers.__version__})
    return folder


def _require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise MissingPackageError("loading a GGUF file needs the gguf package; install the extra: "
                                  f"{install_extra('llm')} (or pip install gguf)")


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Dequantise a GGUF into a torch model, with the quantizer marks cleared (the weights are plain
    tensors now, and the marks would make ``save_pretrained`` refuse)."""
    _require_gguf()
    import gguf

    try:
        gguf.GGUFReader(path)  # parses the header and maps every tensor: a truncated file fails here
    except (ValueError, IndexError, OSError) as error:
        raise ValueError(f"{path} is not a readable GGUF file ({type(error).__name__}: {error}); it may be "
                         "truncated or not a GGUF at all: download or reinstall it") from error
    kwargs = {"gguf_file": path.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=dtype, **kwargs)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(f"transformers cannot load {path} as a causal LM ({type(error).__name__}: {error}); "
                         "its architecture may not be supported for GGUF by this transformers version") from error
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model, "quantization_method"):
        del model.quantization_method
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return _prepared(model, tokenizer)


def check_causal_folder(folder: Path) -> Any:
    """The config of a transformers model folder, refusing one that is not a causal LM."""
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder} is not a transformers model folder ({error}); it needs a config.json") from error
    architectures = config.architectures or []
    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
    causal_names = {causal} if isinstance(causal, str) else set(causal or ())
    if causal is None or (architectures and not any(a in causal_names for a in architectures)):
        raise ValueError(f"{folder} holds a {'/'.join(architectures) or config.model_type} model, not a causal "
                         f"language model (expected one of: {', '.join(sorted(causal_names)) or 'none for this type'})")
    return config


def _load_folder(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    check_causal_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    return _prepared(model, tokenizer)


def _prepared(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """Eval mode, and a pad token (the EOS when the tokenizer has none) so batches can be padded."""
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _decode_batch(lm: TorchCausalLM, requests: Sequence[Request], encoded: list[list[int]], budgets: list[int],
                  temperature: float, top_p: float, generators: list[torch.Generator] | None,
                  per_row: bool) -> list[Completion]:
    tokenizer, model = lm.tokenizer, lm.model
    device = model.device
    eos_ids = lm.eos_ids()
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()  # filled in place by every forward call
    cache_argument = {_cache_keyword(model): cache}
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **cache_argument)
    logits = out.logits[:, -1, :]
    active = list(range(len(requests)))  # original row of each row still in the batch
    generated: list[list[int]] = [[] for _ in requests]
    results: list[Completion | None] = [None] * len(requests)
    while True:
        if generators is not None and per_row:  # each row draws from its own seeded generator
            next_ids = torch.cat([_next_tokens(logits[slot:slot + 1], temperature, top_p, generators[row])
                                  for slot, row in enumerate(active)])
        else:
            next_ids = _next_tokens(logits, temperature, top_p, generators[0] if generators else None)
        keep = []
        for slot, row in enumerate(active):
            token = int(next_ids[slot])
            generated[row].append(token)
            done = finished(tokenizer.decode, requests[row], generated[row], token in eos_ids, budgets[row])
            if done is None:
                keep.append(slot)
            else:
                text, reason, stop = done
                results[row] = Completion(text, len(encoded[row]), len(generated[row]),
                                          0.0, reason, stop)  # seconds: set by generate
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, positions, next_ids = mask[index], positions[index], next_ids[index]
            active = [active[slot] for slot in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                    **cache_argument)
        logits = out.logits[:, -1, :]
    return [r for r in results if r is not None]


def _cache_keyword(model: Any) -> str:
    """transformers 5.x calls the key/value cache argument ``cache``; earlier versions ``past_key_values``.
    A PEFT wrapper's ``forward`` takes ``**kwargs`` and passes them on, so look at the model it wraps."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or a temperature / nucleus sample drawn with ``generator``."""
    if generator is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # tokens after the nucleus is full
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
