"""The experiment config, validated once for both drivers: generic sections here, the protocol's through its spec."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chainlab.network.config import NetworkConfig
from chainlab.scenarios import chaos, registry
from chainlab.work.config import WorkConfig, from_section

GENERIC_KEYS = frozenset({
    "name", "seed", "description", "deviations", "paper", "dataset", "partition", "network", "work", "live",
    "max_rounds", "sweep", "compare", "seeds", "analysis", "protocol", "chaos",
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


def load_experiment(path: Path) -> Experiment:
    """Read and validate a YAML experiment config."""
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return Experiment.from_mapping(data)
