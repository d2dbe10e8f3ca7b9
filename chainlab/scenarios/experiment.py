"""The experiment config, validated once for both drivers: generic sections here, the protocol's through its spec."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chainlab.network.config import NetworkConfig
from chainlab.scenarios import chaos, registry
from chainlab.work.config import WorkConfig, from_section

GENERIC_KEYS = frozenset({
    "name", "seed", "description", "deviations", "paper", "dataset", "partition", "network", "work", "live",
    "max_rounds", "sweep", "compare", "seeds", "analysis", "protocol", "chaos", "report_set",
})  # fmt: skip
DEFAULT_PROTOCOL = "bagchain"
DEFAULT_ROUND_SECONDS = 0.1


@dataclass(frozen=True)
class LiveConfig:
    """The `live:` section: how real services map protocol time to wall time."""

    round_seconds: float = DEFAULT_ROUND_SECONDS

    def __post_init__(self) -> None:
        value = self.round_seconds
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"live.round_seconds must be a number of seconds > 0, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> LiveConfig:
        """Build from config, naming unknown keys."""
        return from_section(cls, data, "live")


@dataclass(frozen=True)
class PartitionConfig:
    """The `partition:` section (seed 000's appendix): public ratio kappa, private ratio zeta, phi subsets."""

    scheme: str = "iid"
    kappa: float = 0.1
    zeta: float = 0.06
    phi: int | None = None
    beta: float = 0.5

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> PartitionConfig:
        """Build from config, naming unknown keys (values are checked by the partitioner)."""
        return from_section(cls, data, "partition")


@dataclass(frozen=True)
class Experiment:
    """One run's configuration. from_mapping checks every section, the protocol's included, before anything runs."""

    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Experiment:
        """Validate the generic sections, then ask the protocol's spec to validate its own keys."""
        exp = cls(data)
        spec = registry.get(exp.protocol_name)
        unknown = set(data) - GENERIC_KEYS - spec.config_keys
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(map(str, unknown)))}")
        if not isinstance(data.get("protocol", {}), Mapping):
            raise ValueError("protocol must be a mapping")
        exp.check_sections()
        if exp.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {exp.max_rounds}")
        analysis = data.get("analysis")
        if analysis is not None and analysis not in spec.analyses:
            known = ", ".join(spec.analyses) or "none"
            raise ValueError(f"analysis must be one of the protocol's analyses ({known}), got {analysis!r}")
        seeds = data.get("seeds", [])
        if not isinstance(seeds, list) or not all(type(x) is int for x in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be a list of distinct integers (each point runs once per seed)")
        report_set = data.get("report_set")
        if report_set is not None and (type(report_set) is not int or report_set < 1):
            raise ValueError(f"report_set must be a number of test samples >= 1, got {report_set!r}")
        deviations = data.get("deviations", [])
        if not isinstance(deviations, list) or not all(isinstance(d, str) for d in deviations):
            raise ValueError("deviations must be a list of strings")
        spec.validate(exp)
        chaos.check_against(chaos.parse_chaos(data.get("chaos")), spec, exp)
        return exp

    def check_sections(self) -> None:
        """Build each generic section once, so that a bad key or value is named now rather than mid-run."""
        NetworkConfig.from_mapping(self.get("network", {}))
        WorkConfig.from_mapping(self.get("work", {}))
        LiveConfig.from_mapping(self.get("live", {}))
        PartitionConfig.from_mapping(self.get("partition", {}))

    def get(self, key: str, default: Any = None) -> Any:
        """A raw top-level value (protocol specs read their own keys through this)."""
        return self.raw.get(key, default)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return str(self.get("name", "experiment"))

    @property
    def seed(self) -> int:
        """The seed of everything random in the run."""
        return int(self.get("seed", 0))

    @property
    def protocol_name(self) -> str:
        """Which registered protocol runs: protocol.name, BagChain by default."""
        section = self.get("protocol", {})
        return str(section.get("name", DEFAULT_PROTOCOL)) if isinstance(section, Mapping) else DEFAULT_PROTOCOL

    @property
    def protocol_params(self) -> dict[str, Any]:
        """The protocol section without its name: the protocol's own parameters."""
        return {k: v for k, v in dict(self.get("protocol", {})).items() if k != "name"}

    @property
    def network(self) -> NetworkConfig:
        """The network section, validated (an absent topology_seed means the experiment seed: graph_seed)."""
        return NetworkConfig.from_mapping(self.get("network", {}))

    @property
    def work(self) -> WorkConfig:
        """The work section, validated."""
        return WorkConfig.from_mapping(self.get("work", {}))

    @property
    def live(self) -> LiveConfig:
        """The live section, validated."""
        return LiveConfig.from_mapping(self.get("live", {}))

    @property
    def partition(self) -> PartitionConfig:
        """The partition section."""
        return PartitionConfig.from_mapping(self.get("partition", {}))

    @property
    def max_rounds(self) -> int:
        """Simulated rounds after which a run stops and is marked truncated."""
        return int(self.get("max_rounds", 1_000_000))

    @property
    def report_set(self) -> int | None:
        """How many samples of the original test set are held out as the report set D_R (None: no D_R)."""
        value = self.get("report_set")
        return None if value is None else int(value)

    @property
    def deviations(self) -> list[str]:
        """Where and why this experiment departs from its paper's setting."""
        return list(self.get("deviations", []))

    def with_value(self, path: str, value: Any) -> Experiment:
        """A validated copy with one dotted key (e.g. protocol.cfs) set: one point of a sweep."""
        data = copy.deepcopy(dict(self.raw))
        data.pop("sweep", None)
        data.pop("compare", None)
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        return Experiment.from_mapping(data)


def load_experiment(path: Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read a YAML experiment config, apply `--set key.path=value` overrides, and validate the result."""
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return with_overrides(data, overrides)


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` as (path, value); the value is YAML, so 100 is an int, true a bool, [1, 2] a list."""
    path, sep, value_text = text.partition("=")
    if not sep:
        raise ValueError(f"--set {text}: expected key.path=value")
    path = path.strip()
    if not path or not all(path.split(".")):
        raise ValueError(f"--set {text}: empty key in {path!r} (expected key.path=value)")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(f"--set {text}: the value is not YAML ({reason})") from exc
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A deep copy of a config mapping with each (dotted path, value) set in turn, missing sections created."""
    out = copy.deepcopy(dict(data))
    for path, value in overrides:
        node = out
        *parents, leaf = path.split(".")
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{'.'.join(parents[: depth + 1])} is {child!r}, not a section with keys")
            node = child
        node[leaf] = value
    return out


def with_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> Experiment:
    """Validate a config mapping after `--set` overrides; an error names the override(s) it is due to."""
    if not overrides:
        return Experiment.from_mapping(data)
    pairs = [(text, parse_override(text)) for text in overrides]
    changed = dict(data)
    for text, pair in pairs:
        try:
            changed = apply_overrides(changed, [pair])
        except ValueError as exc:
            raise ValueError(f"--set {text}: {exc}") from exc
    protocol = changed.get("protocol", {})
    name = protocol.get("name", DEFAULT_PROTOCOL) if isinstance(protocol, Mapping) else DEFAULT_PROTOCOL
    if name in registry.names():  # an unknown protocol is named by validation below
        known = GENERIC_KEYS | registry.get(str(name)).config_keys
        for text, (path, _) in pairs:
            top = path.split(".", 1)[0]
            if top not in known:
                raise ValueError(f"--set {text}: unknown key {top!r}; known: {', '.join(sorted(known))}")
    try:
        return Experiment.from_mapping(changed)
    except ValueError as exc:
        blamed = _blame(data, pairs)
        if not blamed:
            raise  # the file's own error, which no override touches
        raise ValueError(f"{blamed}: {exc}") from exc


def _error_of(data: Mapping[str, Any]) -> str | None:
    try:
        Experiment.from_mapping(data)
    except ValueError as exc:
        return str(exc)
    return None


def _blame(data: Mapping[str, Any], pairs: Sequence[tuple[str, tuple[str, Any]]]) -> str:
    """The overrides a validation error is due to: each that fails on its own in a way the file alone does not,
    else (a combination's fault) all of them; empty when the file fails the same way with or without them."""
    before = _error_of(data)
    alone = [text for text, pair in pairs if _error_of(apply_overrides(data, [pair])) not in (None, before)]
    if alone:
        return " ".join(f"--set {text}" for text in alone)
    after = _error_of(apply_overrides(data, [pair for _, pair in pairs]))
    return "" if after == before else " ".join(f"--set {text}" for text, _ in pairs)
