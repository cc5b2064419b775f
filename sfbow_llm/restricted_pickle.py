"""Reading third-party pickles through an explicit allow-list of globals, never with a plain ``pickle.load``.

A pickle can name any importable callable and call it while loading. The oracles' wheels ship pickles (a
Keras tokenizer; scikit-learn models saved with joblib), so every global such a file names must be in the
allow-list given here, mapped to the object to use for it; anything else stops the load with
:class:`UnsafePickleError` before it is imported or called. The allow-list may map a third-party class to a
plain local stand-in, so that none of that package's code runs (the Keras tokenizer).

A pickle also states sizes (a string of ``2**62`` bytes, a joblib array of ``2**33`` elements) that an
unpickler allocates before reading them. The file is read through :class:`_BoundedReader`, which refuses a
read of more bytes than the file has left, and a joblib array is checked against those bytes before its
buffer exists: a size claim the file cannot hold is a ``ValueError`` naming the file, not a MemoryError.
(CPython's unpickler sizes a ``BINBYTES8`` / ``BYTEARRAY8`` object before reading it: a claim beyond
memory is then the same ``ValueError``; a smaller one only reserves address space until the short read.)
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Mapping
from typing import Any, BinaryIO

__all__ = ["UnsafePickleError", "restricted_joblib_load", "restricted_load"]

AllowList = Mapping[tuple[str, str], Any]
_LOAD_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, MemoryError,
                OverflowError, RecursionError, IndexError, KeyError)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that the allow-list does not contain."""


class _SizeClaimError(ValueError):
    """The pickle claims more bytes than its file holds."""


class _BoundedReader:
    """A read-only view of an open file that refuses to read past its end before allocating anything."""

    def __init__(self, stream: BinaryIO, source: str) -> None:
        self._stream, self._source = stream, source
        self._size = os.fstat(stream.fileno()).st_size

    def remaining(self) -> int:
        return self._size - self._stream.tell()

    def claim(self, n: int, what: str) -> None:
        """Refuse ``n`` bytes of ``what`` if the file has fewer left."""
        left = self.remaining()
        if n > left:
            raise _SizeClaimError(f"it claims {n} bytes of {what} with only {left} left in the file")

    def read(self, n: int = -1) -> bytes:
        if n is not None and n >= 0:
            self.claim(n, "data")
        return self._stream.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self._stream.readline(limit)

    def tell(self) -> int:
        return self._stream.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)


def _resolve(allowed: AllowList, module: str, name: str, source: str) -> Any:
    try:
        return allowed[module, name]
    except KeyError:
        raise UnsafePickleError(f"{source} asks for {module}.{name}, which is not on the allow-list of this "
                                "reader; refusing to load it (the file is not what sfbow_llm expects)") from None


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: Any, allowed: AllowList, source: str) -> None:
        super().__init__(stream)
        self._allowed, self._source = allowed, source

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(self._allowed, module, name, self._source)


def _unreadable(path: str | os.PathLike[str], kind: str, error: BaseException) -> ValueError:
    if isinstance(error, _SizeClaimError):
        problem = str(error)
    elif isinstance(error, MemoryError):  # the C unpickler sizes a bytes object before reading it
        problem = "it claims an object larger than memory can hold"
    else:
        problem = f"{type(error).__name__}: {error}"
    return ValueError(f"{path} is not a readable {kind} ({problem}); it may be truncated or corrupt: "
                      "reinstall the package it comes from")


def restricted_load(path: str | os.PathLike[str], allowed: AllowList) -> Any:
    """Unpickle ``path`` resolving each global through ``allowed`` only (``{(module, name): object}``)."""
    with open(path, "rb") as stream:
        try:
            return _RestrictedUnpickler(_BoundedReader(stream, str(path)), allowed, str(path)).load()
        except UnsafePickleError:
            raise
        except _LOAD_ERRORS as error:
            raise _unreadable(path, "pickle", error) from error


def restricted_joblib_load(path: str | os.PathLike[str], allowed: AllowList) -> Any:
    """Load an uncompressed joblib file (a pickle with raw NumPy array buffers between its opcodes) with the
    same allow-list rule; joblib's own array wrapper is always allowed, as it only reads bytes (once its
    size is checked against the file). Nested pickles of object arrays go through the same ``find_class``
    (joblib >= 1.5 routes them there)."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class BoundedArrayWrapper(NumpyArrayWrapper):
        def read_array(self, unpickler: Any, ensure_native_byte_order: bool) -> Any:
            if not (isinstance(self.shape, tuple) and all(type(n) is int and n >= 0 for n in self.shape)):
                raise _SizeClaimError(f"an array has the shape {self.shape!r}")
            if not self.dtype.hasobject:
                reader.claim(math.prod(self.shape) * self.dtype.itemsize, f"a {self.dtype} array {self.shape}")
            return super().read_array(unpickler, ensure_native_byte_order)

    permitted = {("joblib.numpy_pickle", "NumpyArrayWrapper"): BoundedArrayWrapper, **allowed}

    class RestrictedJoblibUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            return _resolve(permitted, module, name, str(path))

    with open(path, "rb") as stream:
        reader = _BoundedReader(stream, str(path))
        try:
            return RestrictedJoblibUnpickler(str(path), reader, ensure_native_byte_order=True).load()
        except UnsafePickleError:
            raise
        except _LOAD_ERRORS as error:
            raise _unreadable(path, "joblib file", error) from error
