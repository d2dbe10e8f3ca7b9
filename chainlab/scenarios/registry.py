"""Protocol specs by name. Built-ins and plug-ins are imported lazily, by dotted path, so that no driver,
service or CLI module imports a protocol package, directly or through this one."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from chainlab.scenarios.base import ProtocolSpec

ENTRY_POINT_GROUP = "chainlab.protocols"
PLUGINS_ENV = "CHAINLAB_PROTOCOLS"  # "name=module:attribute,...": specs outside the package (tests, research code)

_BUILTIN = {
    "bagchain": "chainlab.scenarios.bagchain.spec:SPEC",
    "dfl": "chainlab.scenarios.dfl.spec:SPEC",
    "bflc": "chainlab.scenarios.bflc.spec:SPEC",
    "datamarket": "chainlab.scenarios.datamarket.spec:SPEC",
    "learningchain": "chainlab.scenarios.learningchain.spec:SPEC",
}
_loaded: dict[str, ProtocolSpec] = {}


def register(spec: ProtocolSpec) -> None:
    """Make spec available under its name in this process (idempotent for the same spec)."""
    existing = _loaded.get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f"a different protocol is registered as {spec.name!r} already")
    _loaded[spec.name] = spec


def _plugins() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for item in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise ValueError(f"{PLUGINS_ENV}: expected name=module:attribute, got {item!r}")
        found[name.strip()] = target.strip()
    return found


def names() -> list[str]:
    """Every protocol that can be loaded."""
    return sorted({*_BUILTIN, *_plugins(), *_loaded})


def get(name: str) -> ProtocolSpec:
    """The spec registered as name; ValueError naming the known ones otherwise."""
    spec = _loaded.get(name)
    if spec is not None:
        return spec
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise ValueError(f"unknown protocol {name!r} (known: {', '.join(names())})")
    module, _, attribute = target.partition(":")
    loaded = getattr(importlib.import_module(module), attribute)
    if not isinstance(loaded, ProtocolSpec) or loaded.name != name:
        raise ValueError(f"{target} is not the ProtocolSpec of {name!r}")
    register(loaded)
    return loaded
