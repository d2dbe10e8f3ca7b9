"""DFL's settings: every key lives in the `protocol:` section, checked here; unknown keys are named."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.protocols.dfl import DflParams
from chainlab.protocols.params import integer_at_least
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import PUBLIC_SHARE, label_flip_of

CONFIG_KEYS: frozenset[str] = frozenset({PUBLIC_SHARE})  # the rest lives in the protocol section
ATTACKS = ("none", "data", "model")
SCENARIO_KEYS = frozenset({"nodes", "attack", "attackers", "model", "label_flip"})
DEFAULT_MODEL: Mapping[str, object] = {
    "family": "lenet5",
    "lr": 0.1,
    "lr_policy": "inv",
    "weight_decay": 5e-4,
}  # Caffe's LeNet solver (lr 0.01, momentum 0.9: effective step 0.1) without momentum


@dataclass(frozen=True)
class DflSettings:
    """How many nodes run, who attacks and how, the model, and the protocol's parameters."""

    nodes: int
    attack: str
    attackers: tuple[int, ...]
    model: Mapping[str, object]
    params: DflParams
    label_flip: float = 0.0  # the common attack: the first floor(label_flip * nodes) nodes' shards label-flipped

    @classmethod
    def of(cls, exp: Experiment) -> DflSettings:
        """Read and check the `protocol:` section; ValueError naming what is wrong."""
        section: dict[str, Any] = exp.protocol_params
        nodes = integer_at_least(section.get("nodes", 10), "nodes", 2)
        attack = section.get("attack", "none")
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
        raw = section.get("attackers", [0])
        if not isinstance(raw, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
            raise ValueError(f"attackers must be a list of node indices, got {raw!r}")
        attackers = tuple(sorted(set(raw))) if attack != "none" else ()
        if any(not 0 <= i < nodes for i in attackers):
            raise ValueError(f"attackers must lie in 0..{nodes - 1}, got {list(raw)}")
        if len(attackers) >= nodes:
            raise ValueError("at least one node must be honest")
        model = section.get("model", DEFAULT_MODEL)
        if not isinstance(model, Mapping) or "family" not in model:
            raise ValueError("model must be a mapping {family: ..., lr: ..., ...}")
        given = {k: v for k, v in section.items() if k not in SCENARIO_KEYS}
        # With a report set D_R the comparison measures the history's models on it (chainlab compare's configs).
        given.setdefault("snapshot_history", exp.report_set is not None)
        params = DflParams.from_mapping(given)
        label_flip = label_flip_of(section)
        return cls(nodes, str(attack), attackers, dict(model), params, label_flip)

    @property
    def flippers(self) -> int:
        """How many nodes (the first ones) train on label-flipped shards."""
        return math.floor(self.label_flip * self.nodes + 1e-9)

    def is_attacker(self, index: int) -> bool:
        """Whether node index attacks."""
        return index in self.attackers
