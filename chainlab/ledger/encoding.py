"""Canonical encoding: frozen dataclasses to deterministic protobuf bytes and back."""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from chainlab.ledger.hashing import sha256

# A ProtoBacked object is a frozen dataclass whose class attribute PROTO names its protobuf message class.
ProtoBacked = Any
T = TypeVar("T")


class EncodingError(ValueError):
    """Bytes or values that do not form a valid message."""


def to_proto(obj: ProtoBacked, *, exclude: Iterable[str] = ()) -> Message:
    """Build the protobuf message of a dataclass; fields named in `exclude` are left unset."""
    skip = set(exclude)
    msg: Message = obj.PROTO()
    cls: type = type(obj)
    for name in _field_names(cls):
        if name in skip:
            continue
        _set(msg, name, getattr(obj, name))
    return msg


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class (encoding runs for every block a node handles)."""
    return tuple(field.name for field in dataclasses.fields(cls))


def _set(msg: Message, name: str, value: Any) -> None:
    if value is None:
        return
    if dataclasses.is_dataclass(value):
        getattr(msg, name).CopyFrom(to_proto(value))
    elif isinstance(value, tuple):
        target = getattr(msg, name)
        for item in value:
            if dataclasses.is_dataclass(item):
                flat = _scalar_fields(item)
                if flat is not None:  # a Key Block lists a reward and a ranking entry per miner: built in C
                    target.add(**flat)
                else:
                    target.add().CopyFrom(to_proto(item))
            else:
                target.append(item)
    elif isinstance(value, enum.Enum):
        setattr(msg, name, value.value)
    else:
        setattr(msg, name, value)


def _scalar_fields(obj: ProtoBacked) -> dict[str, Any] | None:
    """A dataclass's fields as keyword arguments when every one is a plain scalar (bytes, str, int, float, bool:
    what protobuf sets as is), else None. Unset (None) fields are left out, as _set leaves them unset."""
    cls: type = type(obj)
    values = {name: getattr(obj, name) for name in _field_names(cls)}
    if all(isinstance(v, _SCALARS) and not isinstance(v, enum.Enum) for v in values.values() if v is not None):
        return {name: v for name, v in values.items() if v is not None}
    return None


_SCALARS = (bytes, str, int, float)


def canonical_bytes(obj: ProtoBacked, *, exclude: Iterable[str] = ("signature",)) -> bytes:
    """Deterministic serialization of obj without its signature: the bytes that are hashed and signed."""
    return to_proto(obj, exclude=exclude).SerializeToString(deterministic=True)


def digest(obj: ProtoBacked, *, exclude: Iterable[str] = ("signature",)) -> bytes:
    """SHA-256 of the canonical encoding."""
    return sha256(canonical_bytes(obj, exclude=exclude))


def field_record(number: int, body: bytes) -> bytes:
    """What one element of a repeated message field (field `number`, encoded as `body`) adds to its parent's
    encoding: the field's tag (wire type 2), the length as a varint, then the bytes. A parent's deterministic
    encoding is its set fields' records in field-number order, so it can be assembled from cached parts."""
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode(obj: ProtoBacked) -> bytes:
    """Full wire encoding, signature included."""
    return to_proto(obj).SerializeToString(deterministic=True)


def from_proto(cls: type[T], msg: Message) -> T:
    """Rebuild a dataclass from its protobuf message, checking the field types on the way."""
    values: dict[str, Any] = {}
    target: type = cls
    for name, hint in _field_hints(target):
        values[name] = _get(msg, name, hint)
    return cls(**values)


@functools.cache
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's (field name, resolved type hint) pairs, resolved once per class: every message decoded needs
    them, and typing.get_type_hints re-evaluates the annotations on each call."""
    hints = typing.get_type_hints(cls)
    return tuple((field.name, hints[field.name]) for field in dataclasses.fields(cls))


def _get(msg: Message, name: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return _get(msg, name, inner) if msg.HasField(name) else None
    raw = getattr(msg, name)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return tuple(from_proto(item, m) for m in raw)
        return tuple(item(v) for v in raw)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_proto(hint, raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError as exc:
            raise EncodingError(f"{name}: {raw} is not a {hint.__name__}") from exc
    return hint(raw)


def decode(cls: type[T], data: bytes) -> T:
    """Parse wire bytes into a dataclass; malformed bytes raise EncodingError."""
    msg: Message = cls.PROTO()  # type: ignore[attr-defined]
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise EncodingError(f"malformed {cls.__name__}: {exc}") from exc
    return from_proto(cls, msg)


def encode_tagged(obj: ProtoBacked, kinds: Sequence[type[Any]]) -> bytes:
    """A wire envelope: one tag byte naming obj's type (its 1-based place in kinds), then its canonical bytes."""
    return bytes([kinds.index(type(obj)) + 1]) + encode(obj)


def decode_tagged(data: bytes, kinds: Sequence[type[T]]) -> T:
    """Parse encode_tagged's envelope; EncodingError on an unknown tag or a malformed body."""
    if not data or not 1 <= data[0] <= len(kinds):
        raise EncodingError("unknown message tag")
    return decode(kinds[data[0] - 1], data[1:])
