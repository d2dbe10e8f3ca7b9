"""Model byte formats: canonical, data-only encodings, and decoders that refuse anything executable.

Both formats are data-only by construction and are checked again here before any library sees them:

- skops archives (scikit-learn models): every node type named in the schema must be on the caller's
  allow-list, skops' own untrusted-type check must agree, and the result must be exactly the expected
  class. Archives are re-packed canonically (sequential object ids, fixed timestamps, stored entries) so
  that the same fitted model always encodes to the same bytes, which matters when bytes are hashed on a
  ledger.
- safetensors (PyTorch state dicts): the JSON header is parsed and bounded here; only float32 tensors pass.

Every failure, whatever raised it, surfaces as ModelCodecError.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

SCHEMA_MEMBER = "schema.json"
META_MEMBER = "chainlab.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_MAX_SAFETENSORS_HEADER = 1 << 20


class ModelCodecError(ValueError):
    """Model bytes that are malformed, of the wrong kind, or would need untrusted code to load."""


# --- skops ---------------------------------------------------------------------------------------------


def encode_skops(obj: Any, meta: Mapping[str, Any]) -> bytes:
    """Serialise a scikit-learn object with skops into a canonical archive carrying `meta` as JSON."""
    import skops.io

    raw = skops.io.dumps(obj)
    with zipfile.ZipFile(io.BytesIO(raw)) as zin:
        schema = json.loads(zin.read(SCHEMA_MEMBER))
        renamed = _renumber(schema)
        members = {new: _zero_padding(zin.read(old)) for old, new in renamed.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
        for name in sorted(members, key=lambda n: int(n.split(".")[0])):
            _write_member(zout, name, members[name])
        _write_member(zout, SCHEMA_MEMBER, json.dumps(schema, separators=(",", ":")).encode())
        _write_member(zout, META_MEMBER, json.dumps(dict(meta), sort_keys=True).encode())
    return out.getvalue()


def _zero_padding(npy: bytes) -> bytes:
    """Re-save a structured .npy with zeroed padding bytes; other members are returned unchanged."""
    # Structured arrays (a tree's node table) have padding that numpy leaves uninitialised; it would make
    # the bytes of identical models differ.
    try:
        array = np.load(io.BytesIO(npy), allow_pickle=False)
    except ValueError:
        return npy
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        return npy
    clean = np.zeros_like(array)
    for name in array.dtype.names:
        clean[name] = array[name]
    out = io.BytesIO()
    np.save(out, clean, allow_pickle=False)
    return out.getvalue()


def _write_member(zout: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zout.writestr(info, data)


def _renumber(schema: Any) -> dict[str, str]:
    """Replace skops' memory-address ids with ids in traversal order; return old -> new member names."""
    ids: dict[int, int] = {}
    renamed: dict[str, str] = {}
    for node in _nodes(schema):
        if "__id__" in node:
            node["__id__"] = ids.setdefault(int(node["__id__"]), len(ids))
        if "file" in node:
            old = str(node["file"])
            stem, _, ext = old.partition(".")
            node["file"] = renamed.setdefault(old, f"{ids.setdefault(int(stem), len(ids))}.{ext}")
    return renamed


def _nodes(schema: Any) -> list[dict[str, Any]]:
    """Every skops node (a dict naming a class) in depth-first, document order; iterative, so depth-safe."""
    found: list[dict[str, Any]] = []
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item:
                found.append(item)
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def decode_skops(
    data: bytes,
    *,
    allowed_types: Collection[tuple[str, str]],
    allowed_loaders: Collection[str],
    trusted: Collection[str],
    expected: type,
) -> tuple[Any, dict[str, Any]]:
    """Load an archive made by encode_skops; return (object, meta). Raise ModelCodecError on anything else.

    `allowed_types` are the (module, class) pairs any schema node may name, `allowed_loaders` the skops node
    kinds that may build them, `trusted` the types passed to skops beyond its defaults.
    """
    import skops.io

    if not isinstance(data, bytes):
        raise ModelCodecError("model data must be bytes")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                # Stored entries cannot expand beyond the archive itself: no zip bombs.
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ModelCodecError(f"compressed archive member {info.filename!r}")
            schema = json.loads(zf.read(SCHEMA_MEMBER))
            meta = json.loads(zf.read(META_MEMBER))
    except ModelCodecError:
        raise
    except Exception as exc:
        raise ModelCodecError(f"not a model archive: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelCodecError("model metadata must be a JSON object")

    allowed = frozenset(allowed_types)
    loaders = frozenset(allowed_loaders)
    for node in _nodes(schema):
        kind = (str(node.get("__module__")), str(node.get("__class__")))
        loader = node.get("__loader__")
        if kind not in allowed or (loader is not None and loader not in loaders):
            raise ModelCodecError(f"model archive contains disallowed type {kind[0]}.{kind[1]} ({loader})")

    try:
        untrusted = set(skops.io.get_untrusted_types(data=data)) - set(trusted)
    except Exception as exc:
        raise ModelCodecError(f"unreadable model archive: {exc}") from exc
    if untrusted:
        raise ModelCodecError(f"model archive contains untrusted types: {sorted(untrusted)}")
    try:
        obj = skops.io.loads(data, trusted=sorted(trusted))
    except Exception as exc:
        raise ModelCodecError(f"cannot load model archive: {exc}") from exc
    if type(obj) is not expected:
        raise ModelCodecError(f"expected a {expected.__name__}, got {type(obj).__name__}")
    return obj, meta


# --- safetensors ---------------------------------------------------------------------------------------


def encode_safetensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> bytes:
    """Serialise float32 tensors with safetensors, carrying `meta` as JSON in the header metadata."""
    from safetensors.torch import save

    plain = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    data: bytes = save(plain, metadata={"chainlab": json.dumps(dict(meta), sort_keys=True)})
    return data


def decode_safetensors(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load bytes made by encode_safetensors as (CPU tensors, meta); raise ModelCodecError otherwise."""
    from safetensors.torch import load

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
    for name, info in header.items():
        if name != "__metadata__" and (not isinstance(info, dict) or info.get("dtype") != "F32"):
            raise ModelCodecError(f"tensor {name!r} is not float32")
    try:
        tensors: dict[str, torch.Tensor] = load(data)
    except Exception as exc:
        raise ModelCodecError(f"bad safetensors data: {exc}") from exc
    return tensors, meta
