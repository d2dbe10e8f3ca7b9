"""Protocol parameters from a config section: unknown keys named, a text PoW `target` parsed, values checked."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from chainlab.ledger.pow import parse_target

P = TypeVar("P")


def check_known(cls: type, data: Mapping[str, Any], what: str = "protocol parameter") -> None:
    """ValueError naming every key of data that is no field of the dataclass cls."""
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(sorted(map(str, unknown)))}")


def params_from(cls: type[P], data: Mapping[str, Any], what: str = "protocol parameter") -> P:
    """The dataclass cls built from data, after check_known; a string `target` ('2**244-1') becomes its integer."""
    check_known(cls, data, what)
    values = dict(data)
    if isinstance(values.get("target"), str):
        values["target"] = parse_target(values["target"])
    return cls(**values)


def is_number(value: object) -> bool:
    """Whether value is a finite int or float (a bool is no number)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_choice(params: object, name: str, allowed: Sequence[str]) -> None:
    """ValueError unless the field `name` of params is one of allowed."""
    value = getattr(params, name)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_integer(params: object, name: str, least: int) -> None:
    """ValueError unless the field `name` of params is an integer (not a bool) >= least."""
    integer_at_least(getattr(params, name), name, least)


def integer_at_least(value: object, name: str, least: int) -> int:
    """value, once checked to be an integer (not a bool) >= least; else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return value
