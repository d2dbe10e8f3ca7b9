"""BagChain's own config keys (top level) and protocol parameters, validated."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from chainlab.learning.bagging import RULES
from chainlab.learning.metrics import METRICS
from chainlab.protocols.bagchain import BagChainParams
from chainlab.protocols.params import integer_at_least
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import label_flip_of

CONFIG_KEYS = frozenset(
    {"model", "aggregate", "metric", "metric_min", "tasks", "miners", "validators", "fee", "requester_balance"}
)
# The requester's genesis allocation when the config names none: its planned tasks and this many more at run time.
SPARE_TASKS = 100


@dataclass(frozen=True)
class BagChainSettings:
    """The task a requester publishes, how many nodes of each role run, and the protocol's parameters."""

    miners: int
    validators: int
    tasks: int
    model: ModelSpec
    aggregate: str
    metric: str
    metric_min: float
    fee: int
    requester_balance: int  # the requester's genesis allocation, which its fees are paid from
    params: BagChainParams
    label_flip: float = 0.0  # the common attack: the first floor(label_flip * miners) miners' D_Mi label-flipped

    @property
    def flippers(self) -> int:
        """How many miners (the first ones) hold label-flipped private data."""
        return math.floor(self.label_flip * self.miners + 1e-9)

    @classmethod
    def of(cls, exp: Experiment) -> BagChainSettings:
        """Read and check exp's BagChain keys; ValueError naming the bad one."""
        model = exp.get("model", {"family": "decision_tree"})
        if not isinstance(model, dict) or "family" not in model or set(model) - {"family", "params"}:
            raise ValueError("model must be a mapping {family: ..., params: {...}}")
        settings = cls(
            miners=_count(exp, "miners", 10, least=1),
            validators=_count(exp, "validators", 0, least=0),
            tasks=_count(exp, "tasks", 3, least=1),
            model=ModelSpec.of(str(model["family"]), model.get("params", {})),
            aggregate=str(exp.get("aggregate", "majority")),
            metric=str(exp.get("metric", "accuracy")),
            metric_min=float(exp.get("metric_min", 0.5)),
            fee=_count(exp, "fee", 100, least=1),
            requester_balance=0,
            params=BagChainParams.from_mapping({k: v for k, v in exp.protocol_params.items() if k != "label_flip"}),
            label_flip=label_flip_of(exp.protocol_params),
        )
        default_balance = settings.fee * (settings.tasks + SPARE_TASKS)
        balance = _count(exp, "requester_balance", default_balance, least=settings.fee * settings.tasks)
        settings = dataclasses.replace(settings, requester_balance=balance)
        if settings.aggregate not in RULES:
            raise ValueError(f"aggregate must be one of {RULES}, got {settings.aggregate!r}")
        if settings.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {settings.metric!r}")
        if not 0.0 <= settings.metric_min < 1.0:
            raise ValueError(f"metric_min must lie in [0, 1), got {settings.metric_min}")
        return settings


def _count(exp: Experiment, key: str, default: int, *, least: int) -> int:
    return integer_at_least(exp.get(key, default), key, least)
