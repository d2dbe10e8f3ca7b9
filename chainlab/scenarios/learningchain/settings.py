"""LearningChain's experiment settings: the protocol section's scenario keys (agents, attackers, model), its rules."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.ledger.identity import Identity
from chainlab.protocols.learningchain import LearningChainParams
from chainlab.protocols.params import integer_at_least
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import label_flip_of

SCENARIO_KEYS = ("nodes", "byzantine_holders", "byzantine_miners", "label_flip", "model", "init", "record_every")
MODEL_KEYS = frozenset({"family"})
INITS = ("model", "zeros")


@dataclass(frozen=True)
class LearningChainSettings:
    """How many agents (each holder and miner), which attack, the model, what the summary measures, and the rules."""

    nodes: int  # K = M
    byzantine_holders: int  # the first ones send N(0, sigma^2) gradients
    byzantine_miners: int  # the last ones write a wrong model, selection or message
    label_flip: float  # the first floor(label_flip * K) agents' shards are label-flipped (protocols.md 6)
    model: Mapping[str, Any]
    init: str  # w_0: the federated initialisation from the seed ("model"), or zeros
    record_every: int  # the summary evaluates every record_every-th block's model (and the last)
    params: LearningChainParams

    @classmethod
    def of(cls, exp: Experiment) -> LearningChainSettings:
        """Read and check the protocol section; ValueError naming the bad key or value."""
        section = dict(exp.protocol_params)
        scenario = {k: section.pop(k) for k in SCENARIO_KEYS if k in section}
        nodes = integer_at_least(scenario.get("nodes", 10), "nodes", 1)  # 1: the centralised baseline
        model = scenario.get("model", {"family": "softmax"})
        if not isinstance(model, Mapping) or set(model) - MODEL_KEYS or model.get("family", "softmax") != "softmax":
            raise ValueError("model must be {family: softmax}: LearningChain's gradients are softmax regression's")
        init = str(scenario.get("init", "model"))
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        holders = _count(scenario.get("byzantine_holders", 0), "byzantine_holders", nodes)
        params = LearningChainParams.from_mapping(section)
        if "krum_f" not in section:  # multi-Krum is told the true attacker count (protocols.md 3.4)
            params = dataclasses.replace(params, krum_f=holders)
        settings = cls(
            nodes=nodes,
            byzantine_holders=holders,
            byzantine_miners=_count(scenario.get("byzantine_miners", 0), "byzantine_miners", nodes),
            label_flip=label_flip_of(scenario),
            model=dict(model),
            init=init,
            record_every=integer_at_least(scenario.get("record_every", 1), "record_every", 1),
            params=params,
        )
        if settings.byzantine_miners >= nodes:
            raise ValueError("at least one miner must be honest")
        return settings

    def dishonest(self) -> frozenset[int]:
        """Agents that attack in any way: Byzantine holders, label flippers and Byzantine miners."""
        flipped = math.floor(self.label_flip * self.nodes + 1e-9)
        first = max(self.byzantine_holders, flipped)
        return frozenset(range(first)) | frozenset(range(self.nodes - self.byzantine_miners, self.nodes))

    def byzantine_holder(self, index: int) -> bool:
        """Whether agent index sends N(0, sigma^2) gradients."""
        return index < self.byzantine_holders

    def byzantine_miner(self, index: int) -> bool:
        """Whether agent index writes wrong blocks."""
        return index >= self.nodes - self.byzantine_miners


def identity_of(seed: int, index: int) -> Identity:
    """Agent index's key pair, derived from the experiment seed so that every driver and service agrees."""
    return Identity.from_seed(f"{seed}:learningchain:{index}".encode())


def pseudonym_of(identity: Identity, height: int, fresh: bool) -> bytes:
    """The pseudonym ID P*_k agent `identity` sends height t's message under (as LearningChainNode derives it)."""
    if not fresh:
        return identity.node_id
    return Identity.from_seed(identity.sign(b"learningchain:pseudonym:%d" % height)).node_id


def _count(value: object, name: str, nodes: int) -> int:
    """A count of agents, or a fraction of them in [0, 1) (rounded down)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a count or a fraction in [0, 1), got {value!r}")
    if isinstance(value, float):
        if value >= 1.0:
            raise ValueError(f"{name} as a fraction must lie in [0, 1), got {value!r}")
        return math.floor(value * nodes + 1e-9)
    if value > nodes:
        raise ValueError(f"{name} must be at most nodes = {nodes}, got {value}")
    return value
