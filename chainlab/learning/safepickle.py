"""Restricted unpickling for the data files that only exist as pickles (MNIST, CIFAR-10)."""

from __future__ import annotations

import io
import pickle
from collections.abc import Collection
from typing import Any, Protocol

# What a pickled numpy array refers to, under numpy 1.x and 2.x module names. `_reconstruct`, `ndarray` and
# `dtype` are what protocols 0-4 emit; `_frombuffer` is what protocol 5 emits. None of them runs user code.
NUMPY_ARRAY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)

# Python 3 writes `bytes` into protocol-2 pickles as `_codecs.encode(str, "latin1")`, and the empty bytes
# object as a call to `bytes()`; re-saved CIFAR batches are often protocol 2.
BYTES_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")}
)


class ReadableFile(Protocol):
    """The file interface pickle reads from."""

    def read(self, size: int = ..., /) -> bytes:
        """Read up to `size` bytes."""
        ...

    def readline(self, size: int = ..., /) -> bytes:
        """Read one line."""
        ...


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals, so a pickle cannot call arbitrary code."""

    def __init__(self, file: ReadableFile, *, allowed: Collection[tuple[str, str]], encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = frozenset(allowed)

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global only if it is on the allow-list; everything else is refused."""
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a pickle")
        return super().find_class(module, name)


def restricted_load(file: ReadableFile, *, allowed: Collection[tuple[str, str]], encoding: str = "bytes") -> Any:
    """Unpickle one object from `file`, allowing only the globals in `allowed`."""
    return RestrictedUnpickler(file, allowed=allowed, encoding=encoding).load()


def restricted_loads(data: bytes, *, allowed: Collection[tuple[str, str]], encoding: str = "bytes") -> Any:
    """Unpickle one object from `data`, allowing only the globals in `allowed`."""
    return restricted_load(io.BytesIO(data), allowed=allowed, encoding=encoding)
