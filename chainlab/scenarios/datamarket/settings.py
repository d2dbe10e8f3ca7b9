"""The marketplace's experiment settings: contributors, the owner's initial share of the data, and the parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chainlab.ledger.identity import Identity
from chainlab.protocols.datamarket import AgentParams, MarketParams
from chainlab.protocols.params import integer_at_least
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import label_flip_of

SCENARIO_KEYS = ("contributors", "initial", "contribute", "epochs", "label_flip", "task", "trainers")
TASKS = ("binary", "multiclass")  # DRT's "digit < 5" stand-in for IMDB; the 10 digits of the common experiment
DEFAULT_CONTRIBUTORS: tuple[Mapping[str, Any], ...] = ({"behaviour": "good"}, {"behaviour": "bad"})


@dataclass(frozen=True)
class MarketSettings:
    """Who contributes (DRT's agents), how much of the training set the owner starts from, and the market rules."""

    contributors: tuple[AgentParams, ...]
    initial: float  # share of the training set the owner's initial model is fit on (DRT 8 %, seed 004 80 %)
    contribute: int | None  # cap on the samples the contributors hold between them (None: all the rest)
    epochs: int  # passes of the owner's initial perceptron fit
    label_flip: float
    params: MarketParams
    task: str = "binary"
    trainers: int = 0  # off-chain trainers (user B)

    @classmethod
    def of(cls, exp: Experiment) -> MarketSettings:
        """Read and check the protocol section; ValueError naming the bad key or value."""
        section = dict(exp.protocol_params)
        scenario = {k: section.pop(k) for k in SCENARIO_KEYS if k in section}
        entries = scenario.get("contributors", DEFAULT_CONTRIBUTORS)
        if not isinstance(entries, Sequence) or not entries or not all(isinstance(e, Mapping) for e in entries):
            raise ValueError("contributors must be a non-empty list of {behaviour: good|bad, balance, ...}")
        flip = label_flip_of(scenario)
        agents = [AgentParams.of(e) for e in entries]
        flipped = math.floor(flip * len(agents) + 1e-9)
        agents = [
            AgentParams.of({**entries[i], "behaviour": "bad"}) if i < flipped else a for i, a in enumerate(agents)
        ]
        initial = scenario.get("initial", 0.08)
        if isinstance(initial, bool) or not isinstance(initial, int | float) or not 0.0 < float(initial) < 1.0:
            raise ValueError(f"initial must be a share in (0, 1), got {initial!r}")
        contribute = scenario.get("contribute")
        if contribute is not None and (type(contribute) is not int or contribute < len(agents)):
            raise ValueError(f"contribute must be an integer >= the number of contributors, got {contribute!r}")
        epochs = integer_at_least(scenario.get("epochs", 3), "epochs", 1)
        task = scenario.get("task", "binary")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        trainers = integer_at_least(scenario.get("trainers", 0), "trainers", 0)
        params = MarketParams.from_mapping(section)
        return cls(tuple(agents), float(initial), contribute, epochs, flip, params, str(task), trainers)

    def shares(self) -> list[float]:
        """Each contributor's share of the data to contribute: its expected rate of attempts (1 / mean wait), so
        that the streams run out together as DRT's one shared stream would."""
        rates = [1.0 / a.wait_mean for a in self.contributors]
        return [r / sum(rates) for r in rates]


def owner_identity(seed: int) -> Identity:
    """The model owner's key pair, from the experiment seed."""
    return Identity.from_seed(f"{seed}:datamarket:owner".encode())


def sealer_identity(seed: int) -> Identity:
    """The PoA sealer's key pair."""
    return Identity.from_seed(f"{seed}:datamarket:sealer".encode())


def contributor_identity(seed: int, index: int) -> Identity:
    """Contributor index's key pair."""
    return Identity.from_seed(f"{seed}:datamarket:contributor:{index}".encode())


def trainer_identity(seed: int, index: int) -> Identity:
    """Off-chain trainer index's key pair."""
    return Identity.from_seed(f"{seed}:datamarket:trainer:{index}".encode())


def allocation(exp: Experiment, settings: MarketSettings) -> dict[bytes, int]:
    """The genesis balances: the owner's and each contributor's start balance (the sealer holds nothing)."""
    balances = {owner_identity(exp.seed).node_id: settings.params.owner_balance}
    for i, agent in enumerate(settings.contributors):
        balances[contributor_identity(exp.seed, i).node_id] = agent.balance
    return balances
