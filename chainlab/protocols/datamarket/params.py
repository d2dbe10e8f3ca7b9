"""The marketplace's node parameters: chain time, the sealer, the owner's schedule, and each agent's behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.protocols.datamarket.contract import SECONDS_PER_DAY
from chainlab.protocols.params import check_integer, check_known, params_from

BEHAVIOURS = ("good", "bad")


@dataclass(frozen=True)
class MarketParams:
    """Durations in simulated days scale to rounds by `day` (rounds per day; 86,400: one round is one second)."""

    day: int = SECONDS_PER_DAY
    tau_days: float = 1.0
    tau2_days: float = 9.0
    days: float = 400.0  # the run ends here if the data are not used up before
    settle_days: float = 0.0  # after the data are used up, claims go on this long before the test set is revealed
    accuracy_every_days: float = 1.0
    block_rounds: int = 1
    cost_weight: int = 1
    fixed_deposit: int = 0
    reward: int = 1
    reward_fund: int = 10_000
    owner_balance: int = 20_000
    tx_size_mb: float = 0.001
    cid_share: float = 0.0  # share of a contributor's additions made by CID: a sample file Put to storage
    cid_samples: int = 10  # samples in one such file (one input, one deposit [P])
    trainer_every_days: float = 1.0  # an off-chain trainer's period: Get the model and new CID data, train, upload
    trainer_epochs: int = 1  # its perceptron epochs over the new data

    def __post_init__(self) -> None:
        for name in ("day", "block_rounds", "cost_weight"):
            check_integer(self, name, 1)
        for name in ("fixed_deposit", "reward", "reward_fund", "owner_balance"):
            check_integer(self, name, 0)
        for name in ("tau_days", "tau2_days", "days", "accuracy_every_days"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.cid_share) <= 1.0 or not float(self.trainer_every_days) > 0:
            raise ValueError("cid_share must be a share in [0, 1] and trainer_every_days > 0")
        for name in ("cid_samples", "trainer_epochs"):
            check_integer(self, name, 1)
        if float(self.settle_days) < 0:
            raise ValueError(f"settle_days must be >= 0, got {self.settle_days!r}")
        if self.reward_fund > self.owner_balance:
            raise ValueError("reward_fund must not exceed owner_balance")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> MarketParams:
        """Build from the protocol section's remaining keys, naming unknown ones."""
        return params_from(cls, data)

    def rounds(self, days: float) -> int:
        """Days as rounds (at least one)."""
        return max(1, round(days * self.day))

    def seconds(self, seconds: float) -> int:
        """DRT seconds as rounds (at least one)."""
        return max(1, round(seconds * self.day / SECONDS_PER_DAY))

    @property
    def tau(self) -> int:
        """The refund window in rounds."""
        return self.rounds(self.tau_days)

    @property
    def tau2(self) -> int:
        """The any-address claim wait in rounds."""
        return self.rounds(self.tau2_days)


@dataclass(frozen=True)
class AgentParams:
    """One contributor's behaviour (DRT's simulation agents, protocols.md 4.3), in DRT units."""

    behaviour: str = "good"
    balance: int = 10_000
    deposit_mean: float = 50.0  # what it is willing to pay per addition, N(mean, sd)
    deposit_sd: float = 10.0
    wait_mean: float = 600.0  # seconds between attempts, N(mean, sd)
    wait_sd: float = 1.0
    mistake: float = 1e-4  # a good agent's chance of a wrong label
    add_bonus: float = 0.15  # a good agent adds with probability accuracy + add_bonus

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, got {self.behaviour!r}")
        if isinstance(self.balance, bool) or not isinstance(self.balance, int) or self.balance < 0:
            raise ValueError(f"balance must be an integer >= 0, got {self.balance!r}")
        if not float(self.wait_mean) > 0 or float(self.wait_sd) < 0 or float(self.deposit_sd) < 0:
            raise ValueError("wait_mean must be > 0, wait_sd and deposit_sd >= 0")
        if not 0.0 <= float(self.mistake) <= 1.0:
            raise ValueError(f"mistake must be a probability, got {self.mistake!r}")

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> AgentParams:
        """A contributor entry: behaviour good or bad with DRT's defaults for that behaviour, then overrides."""
        check_known(cls, data, "contributor key")
        behaviour = str(data.get("behaviour", "good"))
        defaults: dict[str, Any] = {} if behaviour != "bad" else {"deposit_mean": 100.0, "deposit_sd": 3.0}
        if behaviour == "bad":
            defaults |= {"wait_mean": 3600.0, "wait_sd": 0.0}
        return cls(**(defaults | dict(data)))

    @property
    def honest(self) -> bool:
        """Whether it labels correctly."""
        return self.behaviour == "good"
