"""Encode Dask collections with an SFBoW model, partition by partition, on any Dask scheduler.

The model travels as a :class:`ModelFile`: the path of a file written by :meth:`SFBoW.save` plus the
SHA-256 of its bytes, a few hundred bytes in every task instead of the model itself. Each worker process
loads the file once, into a cache keyed by that checksum, and every later task on that process reuses it;
a worker that reads other bytes than the client (a stale copy) refuses them. :func:`prepare_model`
loads the model on every worker of a ``dask.distributed`` cluster before any task runs, so a worker that
cannot read the file is an error at submission, naming the worker, not a failed job. Workers that join
later (a replacement for a dead one) load the file from the same path in their first task. Workers encode
with the default tokeniser: a custom one is not stored in a model file.

Every partition is encoded by the native path of :meth:`SFBoW.encode` with one thread per task by default:
Dask's worker processes are the parallelism (``LocalCluster(n_workers=..., threads_per_worker=1)``).
Results are lazy Dask collections, one row per input in input order; write them with Dask's own writers
(``vectors.to_zarr(url)``, ``frame.to_parquet(path)``) so that a job larger than memory streams to disk.
The ``encode_*`` functions take the model as :func:`prepare_model` does (nothing for the embedded default
model, ``"minilm"``, a path or a :class:`ModelFile`) and ``client=`` likewise. Needs the ``dask`` extra:
``pip install 'sfbow[dask]'``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfbow_common.extras import install_extra

try:
    import dask
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"sfbow.dask needs Dask with arrays, bags and dataframes: {install_extra('dask')}") from exc

from sfbow.distill import PRETRAINED, pretrained_file
from sfbow.model import SFBoW
from sfbow_common.checks import check_positive_int, check_real
from sfbow_common.hashing import file_sha256

__all__ = [
    "ModelFile",
    "ModelUnavailableError",
    "encode_array",
    "encode_bag",
    "encode_frame",
    "prepare_model",
    "worker_cache_info",
]

#: How many models a worker process keeps loaded (the most recently used ones).
CACHE_SIZE = 2


class ModelUnavailableError(RuntimeError):
    """The model file cannot be used where it must be: on the client or on some Dask workers."""


@dataclass(frozen=True)
class ModelFile:
    """What a task carries instead of the model: where the file is, the SHA-256 of its bytes, and K."""

    path: str
    sha256: str
    dim: int


# -- the worker-side cache ----------------------------------------------------------------------------

_CACHE: OrderedDict[str, SFBoW] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_LOADS: dict[str, int] = {}


def cached_model(path: str, sha256: str) -> SFBoW:
    """The model of ``path`` in this process, loaded on first use and kept under its checksum.

    The file is read once; those bytes are checked against ``sha256`` and loaded, so every process
    encodes with the client's bytes, and a file replaced between the check and the load cannot be
    cached under the other file's checksum (it costs the file's size in memory while loading).
    A first one-sentence encode builds the compiled vocabulary now rather than inside the first task.
    """
    with _CACHE_LOCK:
        model = _CACHE.get(sha256)
        if model is not None:
            _CACHE.move_to_end(sha256)
            return model
        data = Path(path).read_bytes()  # an OSError names the path and its reason (PermissionError ...)
        found = _digest(data)
        if found != sha256:
            raise ModelUnavailableError(
                f"{path} here has SHA-256 {found[:16]}..., not the {sha256[:16]}... of the client's file: "
                "every worker must read the same model file (copy it again, or use a shared filesystem)"
            )
        model = SFBoW.load(path, data=data)  # the bytes just hashed: a file swapped in now is not read
        del data
        model.encode(["warm up"], n_threads=1, show_progress=False)
        _CACHE[sha256] = model
        _LOADS[sha256] = _LOADS.get(sha256, 0) + 1
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return model


def _digest(data: bytes) -> str:
    """Hex SHA-256 of a model file's bytes (the same digest as :func:`file_sha256` of the file)."""
    return hashlib.sha256(data).hexdigest()


#: The path a :class:`ModelFile` carries for the embedded default model: each worker builds that model
#: itself (it is part of the package, no file to send); its ``sha256`` names the sfbow version instead.
DEFAULT_MODEL = "<sfbow default model>"


def _default_identity() -> str:
    from sfbow import __version__

    return f"sfbow {__version__} default model"


@functools.lru_cache(maxsize=1)
def _default_on_worker() -> SFBoW:
    from sfbow import default_model

    model = default_model()
    model.encode(["warm up"], n_threads=1, show_progress=False)
    return model


def worker_model(path: str, sha256: str) -> SFBoW:
    """The model a task names: the embedded default one (built once per process) or a checked file's."""
    if path != DEFAULT_MODEL:
        return cached_model(path, sha256)
    if sha256 != _default_identity():
        raise ModelUnavailableError(f"this worker has {_default_identity()}, the client {sha256}: install the "
                                    "same sfbow version on every worker")
    return _default_on_worker()


def worker_cache_info() -> dict[str, Any]:
    """This process's cache: the checksums held (oldest first) and how often each file was loaded."""
    with _CACHE_LOCK:
        return {"models": list(_CACHE), "loads": dict(_LOADS)}


def _load_on_worker(path: str, sha256: str) -> int:
    return worker_model(path, sha256).dim


# -- submission ---------------------------------------------------------------------------------------

def prepare_model(model: str | os.PathLike[str] | ModelFile | None = None, *, client: Any = None,
                  timeout: float = 300.0) -> ModelFile:
    """Check a model file and load it on every worker now; return the :class:`ModelFile` tasks carry.

    ``model``: ``None`` for the embedded default model (as :func:`sfbow.encode`; every worker builds it),
    a pretrained name such as ``"minilm"`` (built into its cache file here on first use, as
    :func:`sfbow.distill.pretrained` does, then sent as that file), a model file's path or a ModelFile.

    ``client``: a ``dask.distributed.Client``; default: the current one if there is one, else the model is
    loaded in this process (for Dask's local schedulers); ``False``: this process only, even when a client
    exists. With a client, every worker loads the file (at
    most ``timeout`` seconds); if any cannot, :class:`ModelUnavailableError` names each such worker and
    why. The path is made absolute; every worker must see the same file at that path. A :class:`ModelFile`
    is checked again on the current workers, which is cheap once they hold it.
    """
    timeout = check_real(timeout, "timeout", minimum=0.0, exclusive_minimum=True)
    if isinstance(model, ModelFile):
        path, sha256 = model.path, model.sha256
    elif model is None:
        path, sha256 = DEFAULT_MODEL, _default_identity()
    else:
        if isinstance(model, str) and model in PRETRAINED and not Path(model).exists():
            model = pretrained_file(model)
        path = os.path.abspath(os.fspath(model))
        if not Path(path).is_file():
            raise FileNotFoundError(f"model file not found: {path} (write one with SFBoW.save)")
        try:
            sha256 = file_sha256(path)
        except OSError as exc:
            raise ModelUnavailableError(f"cannot read the model file {path} on the client: {exc}") from exc
    client = _current_client() if client is None else client
    if client is None or client is False:
        return ModelFile(path, sha256, worker_model(path, sha256).dim)
    dims = _run_on_workers(client, path, sha256, timeout)
    return ModelFile(path, sha256, dims.pop())


def _current_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:  # dask without distributed: local schedulers only
        return None
    try:
        return get_client()
    except ValueError:  # no client in this process
        return None


def _run_on_workers(client: Any, path: str, sha256: str, timeout: float) -> set[int]:
    """Load the model on every worker; raise naming each worker that fails or does not answer."""
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker (newer versions list only the first few)
    except TypeError:  # distributed before n_workers=
        info = client.scheduler_info()
    workers = sorted(info["workers"])
    if not workers:
        raise ModelUnavailableError("the Dask cluster has no workers yet; wait for them "
                                    "(client.wait_for_workers(n)) before encoding")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        answers = pool.submit(client.run, _load_on_worker, path, sha256, workers=workers,
                              on_error="return").result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise ModelUnavailableError(f"the Dask workers did not load the model file {path} within {timeout:g} s; "
                                    "raise timeout= for a slow filesystem, or check the workers") from None
    finally:
        pool.shutdown(wait=False)
    failures = {worker: answer for worker, answer in answers.items() if isinstance(answer, BaseException)}
    silent = sorted(set(workers) - set(answers))
    if failures or silent:
        lines = [f"  {worker}: {type(error).__name__}: {error}" for worker, error in sorted(failures.items())]
        lines += [f"  {worker}: no answer (the worker left)" for worker in silent]
        raise ModelUnavailableError(
            f"the model file {path} cannot be used on {len(lines)} of {len(workers)} Dask workers:\n"
            + "\n".join(lines)
            + "\nevery worker must read the same file at this path (a shared filesystem, or a copy on each machine)"
        )
    return set(answers.values())


# -- the tasks ----------------------------------------------------------------------------------------

def _encode_block(sentences: Any, path: str, sha256: str, n_threads: int, batch_size: int) -> np.ndarray:
    """One partition -> its ``(n, K)`` float32 rows (runs on a worker)."""
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    elif not isinstance(sentences, Sequence):  # a bag partition may be an iterator
        sentences = list(sentences)
    return worker_model(path, sha256).encode(sentences, n_threads=n_threads, batch_size=batch_size,
                                             show_progress=False)


def _encode_series(series: pd.Series, path: str, sha256: str, n_threads: int, batch_size: int,
                   columns: list[str]) -> pd.DataFrame:
    """One dataframe partition -> a frame of K float32 columns with the partition's index."""
    missing = series.isna().to_numpy()
    if missing.any():
        raise ValueError(f"column {series.name!r} holds a missing value at index {series.index[missing][0]!r}; "
                         "fill it (frame[column].fillna('')) or drop those rows before encoding")
    vectors = _encode_block(series.tolist(), path, sha256, n_threads, batch_size)
    return pd.DataFrame(vectors, index=series.index, columns=columns)


def _partition_length(partition: Any) -> list[int]:
    return [len(partition) if isinstance(partition, Sequence) else sum(1 for _ in partition)]


def _options(n_threads: int, batch_size: int) -> tuple[int, int]:
    return check_positive_int(n_threads, "n_threads"), check_positive_int(batch_size, "batch_size")


# -- the public encoders ------------------------------------------------------------------------------

def encode_bag(bag: db.Bag, model: str | os.PathLike[str] | ModelFile | None = None, *, lengths: bool = False,
               n_threads: int = 1, batch_size: int = 65_536, client: Any = None) -> da.Array:
    """Encode a bag of strings into a lazy ``(n, K)`` float32 Dask array, one chunk per partition, in order.

    A bag does not know its partitions' lengths, so the array's row chunks are unknown (NaN) unless
    ``lengths=True``, which counts them first (one pass over the input, no encoding); ``to_zarr`` needs
    them known, while ``dd.from_dask_array(vectors).to_parquet(path)`` does not.
    """
    if not isinstance(bag, db.Bag):
        raise TypeError(f"bag must be a dask.bag.Bag of strings, got {type(bag).__name__}")
    n_threads, batch_size = _options(n_threads, batch_size)
    ref = prepare_model(model, client=client)
    counts: list[float] = bag.map_partitions(_partition_length).compute() if lengths else [np.nan] * bag.npartitions
    encode = dask.delayed(_encode_block, pure=True)
    blocks = [
        da.from_delayed(encode(part, ref.path, ref.sha256, n_threads, batch_size), shape=(count, ref.dim),
                        dtype=np.float32, meta=np.empty((0, ref.dim), dtype=np.float32))
        for part, count in zip(bag.to_delayed(), counts)
    ]
    return da.concatenate(blocks, axis=0, allow_unknown_chunksizes=True)


def encode_array(strings: da.Array, model: str | os.PathLike[str] | ModelFile | None = None, *, n_threads: int = 1,
                 batch_size: int = 65_536, client: Any = None) -> da.Array:
    """Encode a 1-D Dask array of strings into an ``(n, K)`` float32 array with the same row chunks."""
    if not isinstance(strings, da.Array) or strings.ndim != 1:
        got = f"a {strings.ndim}-D Dask array" if isinstance(strings, da.Array) else type(strings).__name__
        raise TypeError(f"strings must be a 1-D dask.array of str, got {got}")
    if strings.dtype.kind not in "OUT":
        raise TypeError(f"strings must hold str (dtype object or <U), got dtype {strings.dtype}")
    n_threads, batch_size = _options(n_threads, batch_size)
    ref = prepare_model(model, client=client)
    return da.map_blocks(_encode_block, strings, ref.path, ref.sha256, n_threads, batch_size, dtype=np.float32,
                         chunks=(strings.chunks[0], (ref.dim,)), new_axis=1,
                         meta=np.empty((0, ref.dim), dtype=np.float32))


def encode_frame(frame: dd.DataFrame | dd.Series, model: str | os.PathLike[str] | ModelFile | None = None, *,
                 column: str | None = None, prefix: str = "v", n_threads: int = 1, batch_size: int = 65_536,
                 client: Any = None) -> dd.DataFrame:
    """Encode a text column into a Dask dataframe of K float32 columns ``{prefix}0 .. {prefix}K-1``.

    ``frame`` is a Dask dataframe with ``column`` naming its text column, or a Dask series of strings.
    The result has the input's index and partitions, so rows stay in input order and line up with the
    input for ``frame.join`` or ``concat``. A missing value (NaN, None) is an error naming its index.
    """
    if isinstance(frame, dd.DataFrame):
        if column is None or column not in frame.columns:
            raise KeyError(f"column= must name the text column, one of {list(frame.columns)}; got {column!r}")
        series = frame[column]
    elif isinstance(frame, dd.Series):
        series = frame
    else:
        raise TypeError(f"frame must be a dask DataFrame (with column=) or a dask Series, got {type(frame).__name__}")
    n_threads, batch_size = _options(n_threads, batch_size)
    ref = prepare_model(model, client=client)
    columns = [f"{prefix}{i}" for i in range(ref.dim)]
    meta = pd.DataFrame(np.empty((0, ref.dim), dtype=np.float32), columns=columns)
    return series.map_partitions(_encode_series, ref.path, ref.sha256, n_threads, batch_size, columns, meta=meta)
