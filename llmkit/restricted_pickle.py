"""Reading third-party pickles through an explicit allow-list of globals, never with a plain ``pickle.load``.

A pickle can name any importable callable and call it while loading. The oracles' wheels ship pickles (a
Keras tokenizer; scikit-learn models saved with joblib), so every global such a file names must be in the
allow-list given here, mapped to the object to use for it; anything else stops the load with
:class:`UnsafePickleError` before it is imported or called. The allow-list may map a third-party class to a
plain local stand-in, so that none of that package's code runs (the Keras tokenizer).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any, BinaryIO

__all__ = ["UnsafePickleError", "restricted_joblib_load", "restricted_load"]

AllowList = Mapping[tuple[str, str], Any]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that the allow-list does not contain."""


def _resolve(allowed: AllowList, module: str, name: str, source: str) -> Any:
    try:
        return allowed[module, name]
    except KeyError:
        raise UnsafePickleError(f"{source} asks for {module}.{name}, which is not on the allow-list of this "
                                "reader; refusing to load it (the file is not what llmkit expects)") from None


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: BinaryIO, allowed: AllowList, source: str) -> None:
        super().__init__(stream)
        self._allowed, self._source = allowed, source

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(self._allowed, module, name, self._source)


def restricted_load(path: str | os.PathLike[str], allowed: AllowList) -> Any:
    """Unpickle ``path`` resolving each global through ``allowed`` only (``{(module, name): object}``)."""
    with open(path, "rb") as stream:
        try:
            return _RestrictedUnpickler(stream, allowed, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not a readable pickle ({type(error).__name__}: {error}); it may be "
                             "truncated: reinstall the package it comes from") from error


def restricted_joblib_load(path: str | os.PathLike[str], allowed: AllowList) -> Any:
    """Load an uncompressed joblib file (a pickle with raw NumPy array buffers between its opcodes) with the
    same allow-list rule; joblib's own array wrapper is always allowed, as it only reads bytes. Nested
    pickles of object arrays go through the same ``find_class`` (joblib >= 1.5 routes them there)."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    permitted = {("joblib.numpy_pickle", "NumpyArrayWrapper"): NumpyArrayWrapper, **allowed}

    class RestrictedJoblibUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            return _resolve(permitted, module, name, str(path))

    with open(path, "rb") as stream:
        try:
            return RestrictedJoblibUnpickler(str(path), stream, ensure_native_byte_order=True).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not a readable joblib file ({type(error).__name__}: {error}); it may "
                             "be truncated: reinstall the package it comes from") from error
