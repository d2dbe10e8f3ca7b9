"""BFLC's experiment settings: the protocol section's scenario keys (nodes, attackers, model) and its parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.ledger.hashing import sha256
from chainlab.protocols.bflc import BflcParams
from chainlab.protocols.bflc import committee as draws
from chainlab.protocols.params import integer_at_least
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import label_flip_of

SCENARIO_KEYS = ("nodes", "malicious", "model", "standalone", "standalone_epochs", "eval_every", "label_flip")
MODEL_KEYS = frozenset({"family", "lr", "weight_decay", "lr_policy", "gamma", "power", "hidden"})


@dataclass(frozen=True)
class BflcSettings:
    """How many participants, which share attacks, the model, what the summary measures, and the protocol rules."""

    nodes: int
    malicious: float  # share of all nodes that attack (trainers perturb, members collude)
    model: Mapping[str, Any]
    standalone: bool  # also train one model centrally on all the data (Table 1's "Stand-alone")
    standalone_epochs: float
    eval_every: int  # the summary measures every eval_every-th model block (and the last) on the test set
    params: BflcParams
    label_flip: float = 0.0  # the common attack: the first floor(label_flip * nodes) participants' shards flipped

    @property
    def flippers(self) -> int:
        """How many participants (the first ones) train on label-flipped shards."""
        return math.floor(self.label_flip * self.nodes + 1e-9)

    @classmethod
    def of(cls, exp: Experiment) -> BflcSettings:
        """Read and check the protocol section; ValueError naming the bad key or value."""
        section = dict(exp.protocol_params)
        scenario = {k: section.pop(k) for k in SCENARIO_KEYS if k in section}
        model = scenario.get("model", {"family": "softmax"})
        if not isinstance(model, Mapping) or set(model) - MODEL_KEYS:
            raise ValueError(f"model must be a mapping with keys among {', '.join(sorted(MODEL_KEYS))}")
        settings = cls(
            nodes=integer_at_least(scenario.get("nodes", 20), "nodes", 2),
            malicious=_share(scenario.get("malicious", 0.0), "malicious"),
            model=dict(model),
            standalone=bool(scenario.get("standalone", False)),
            standalone_epochs=float(scenario.get("standalone_epochs", 1.0)),
            eval_every=integer_at_least(scenario.get("eval_every", 1), "eval_every", 1),
            params=BflcParams.from_mapping(section),
            label_flip=label_flip_of(scenario),
        )
        if not settings.standalone_epochs > 0:
            raise ValueError(f"standalone_epochs must be > 0, got {settings.standalone_epochs}")
        if round(settings.malicious * settings.nodes) >= settings.nodes:
            raise ValueError("at least one node must be honest (the baselines' aggregator)")
        return settings


def malicious_ids(exp: Experiment, identities: list[bytes]) -> tuple[bytes, ...]:
    """The attackers: round(malicious * N) nodes drawn from the experiment seed, never the baselines' aggregator
    (the lowest ID), so that every method faces the same attackers."""
    settings = BflcSettings.of(exp)
    aggregator = min(identities)
    count = round(settings.malicious * settings.nodes)
    seed = sha256(f"{exp.seed}:bflc:malicious".encode())
    return draws.draw(seed, b"malicious", (i for i in identities if i != aggregator), count)


def _share(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a share in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a share in [0, 1), got {value!r}")
    return float(value)
