"""Model byte formats: data-only encodings, and decoders that refuse anything executable.

Both are safetensors files, whose JSON header is parsed and bounded here before the library sees the data:

- numpy arrays (a decision tree's node table, `encode_arrays`): each tensor must have exactly the name and
  dtype the caller expects. The bytes depend on the values alone, so the same model always encodes to the
  same bytes, which matters when they are hashed on a ledger. (skops was used before; its archives depend
  on memory addresses and changed under thread load.)
- PyTorch state dicts (`encode_safetensors`): only float32 tensors pass.

Every failure, whatever raised it, surfaces as ModelCodecError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_MAX_SAFETENSORS_HEADER = 1 << 20


class ModelCodecError(ValueError):
    """Model bytes that are malformed, of the wrong kind, or would need untrusted code to load."""


# --- safetensors ---------------------------------------------------------------------------------------


def encode_safetensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> bytes:
    """Serialise float32 tensors with safetensors, carrying `meta` as JSON in the header metadata."""
    from safetensors.torch import save

    plain = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    data: bytes = save(plain, metadata={"chainlab": json.dumps(dict(meta), sort_keys=True)})
    return data


def read_header(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The safetensors JSON header and the chainlab metadata in it, bounds-checked before any parse."""
    if not isinstance(data, bytes) or len(data) < 8:
        raise ModelCodecError("not a safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size > _MAX_SAFETENSORS_HEADER or 8 + size > len(data):
        raise ModelCodecError("safetensors header length out of range")
    try:
        header = json.loads(data[8 : 8 + size])
        meta = json.loads(header["__metadata__"]["chainlab"])
    except Exception as exc:
        raise ModelCodecError(f"bad safetensors header: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(meta, dict):
        raise ModelCodecError("bad safetensors header")
    return header, meta


def _check_dtypes(header: Mapping[str, Any], expected: Mapping[str, str] | str) -> None:
    """Every tensor has the dtype expected of it (one for all, or one per name), and no tensor is extra."""
    names = {n for n in header if n != "__metadata__"}
    if not isinstance(expected, str) and names != set(expected):
        raise ModelCodecError(f"unexpected tensors: {sorted(names ^ set(expected))}")
    for name in names:
        info = header[name]
        want = expected if isinstance(expected, str) else expected[name]
        if not isinstance(info, dict) or info.get("dtype") != want:
            raise ModelCodecError(f"tensor {name!r} is not {want}")


def encode_arrays(arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> bytes:
    """Serialise numpy arrays with safetensors; the bytes depend on the values alone."""
    from safetensors.numpy import save

    plain = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    data: bytes = save(plain, metadata={"chainlab": json.dumps(dict(meta), sort_keys=True)})
    return data


def decode_arrays(data: bytes, dtypes: Mapping[str, str]) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    """Load bytes made by encode_arrays whose tensors are exactly `dtypes` (name -> safetensors dtype)."""
    from safetensors.numpy import load

    header, meta = read_header(data)
    _check_dtypes(header, dtypes)
    try:
        arrays: dict[str, np.ndarray[Any, Any]] = load(data)
    except Exception as exc:
        raise ModelCodecError(f"bad safetensors data: {exc}") from exc
    return arrays, meta


def decode_safetensors(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load bytes made by encode_safetensors as (CPU tensors, meta); raise ModelCodecError otherwise."""
    from safetensors.torch import load

    header, meta = read_header(data)
    _check_dtypes(header, "F32")
    try:
        tensors: dict[str, torch.Tensor] = load(data)
    except Exception as exc:
        raise ModelCodecError(f"bad safetensors data: {exc}") from exc
    return tensors, meta
