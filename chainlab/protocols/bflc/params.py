"""Protocol parameters shared by every BFLC node of a network, validated from the config's protocol section."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.protocols.params import check_choice, check_integer, is_number, params_from

METHODS = ("bflc", "basic_fl", "cwmed")
SELECTIONS = ("rank", "stream")
FLOORS = ("model", "none")
WEIGHTINGS = ("samples", "unweighted")
ELECTIONS = ("score", "random")
COLLUSIONS = ("high", "zero")


@dataclass(frozen=True)
class BflcParams:
    """Rules every node agrees on. Defaults follow protocols.md 2.3-2.5 (the [A] readings) where the paper is silent."""

    rounds: int = 10  # FL rounds t = 1..rounds are written; the run is done then
    active: float = 0.1  # share of all nodes that train per round (the paper's k %)
    committee: float = 0.4  # committee seats M = round(committee * |A_t|)
    method: str = "bflc"  # bflc, or the baselines basic_fl (FedAvg of all) and cwmed (coordinate-wise median)
    selection: str = "rank"  # rank: top ceil(k_share |A_t|) by S_i; stream: every S_i >= theta, at most that many
    k_share: float = 0.5
    theta: float = 0.0  # stream mode's qualifying score
    # "model": an update qualifies only if S_i >= the committee's median score of w_t itself (protocols.md 2.3(5)'s
    # theta, applied in both modes): an update that makes the model worse is never packed, even when fewer than k
    # honest updates arrive. "none": rank alone.
    floor: str = "model"
    weighting: str = "samples"  # FedAvg weights: n_samples (self-reported), or unweighted
    election: str = "score"  # score: top M by S_i; random: a hash-seeded draw among the scored providers
    # Providers scoring below this are expelled: an honest local model scores well above chance (0.1 on 10 classes)
    # even from w_0, a Gaussian-noised one near chance; 0.05 expels only the hopeless. 0 disables the blacklist.
    blacklist_below: float = 0.05
    reward: float = 100.0  # R: profit shares per round, split by score
    fee: int = 1  # the permission fee a Join must pay
    sigma: float = 1.0  # a malicious trainer's Gaussian noise, in weight units
    collusion: str = "high"  # malicious members score malicious updates U(0.9, 1); high: honest ones honestly, zero: 0
    local_epochs: float = 1.0  # local training, as steps = ceil(epochs * n_samples / batch_size)
    local_steps: int = 0  # if > 0, overrides local_epochs
    batch_size: int = 32
    round_deadline: int = 20  # rounds a member waits for updates before scoring what it has
    leader_deadline: int = 20  # further rounds before the next member (by ID) takes over as leader
    # A trainer whose round is still open after resend_after rounds sends its update again, every resend_after
    # rounds until the round closes (at most resend_limit times): a member that was not listening yet (live
    # services start seconds apart under load) or lost it gets it then. Closed rounds send nothing.
    resend_after: int = 10  # before round_deadline, so a resent copy is still scored
    resend_limit: int = 1000
    model_size_mb: float = 0.03  # declared size of a model-carrying message (softmax on MNIST: 31 KB)
    small_message_size_mb: float = 0.001
    score_decimals: int = 6  # scores are rounded so every node computes the same median

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BflcParams:
        """Build from config, naming any unknown key, then check every value."""
        params = params_from(cls, data)
        params.check()
        return params

    def check(self) -> None:
        """ValueError naming the first bad value."""
        for name, choices in (
            ("method", METHODS),
            ("selection", SELECTIONS),
            ("weighting", WEIGHTINGS),
            ("election", ELECTIONS),
            ("collusion", COLLUSIONS),
            ("floor", FLOORS),
        ):
            check_choice(self, name, choices)
        for name in ("active", "committee", "k_share"):
            value = getattr(self, name)
            if not is_number(value) or not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be a share in (0, 1], got {value!r}")
        for name in ("theta", "blacklist_below"):
            value = getattr(self, name)
            if not is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        for name in ("sigma", "reward", "local_epochs", "model_size_mb", "small_message_size_mb"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        for name, least in (
            ("rounds", 1),
            ("batch_size", 1),
            ("round_deadline", 1),
            ("leader_deadline", 1),
            ("resend_after", 0),
            ("resend_limit", 0),
            ("local_steps", 0),
            ("fee", 0),
            ("score_decimals", 1),
        ):
            check_integer(self, name, least)
        if self.local_steps == 0 and self.local_epochs <= 0:
            raise ValueError("local training needs local_steps > 0 or local_epochs > 0")

    def steps_for(self, n_samples: int) -> int:
        """Local SGD steps of a trainer holding n_samples."""
        if self.local_steps > 0:
            return self.local_steps
        return max(1, math.ceil(self.local_epochs * n_samples / self.batch_size))

    def round_score(self, value: float) -> float:
        """A score as written in blocks."""
        return round(float(value), self.score_decimals)

    @property
    def scored(self) -> bool:
        """Whether a committee scores updates (BFLC), or one aggregator packs them all (the baselines)."""
        return self.method == "bflc"

    @property
    def aggregate_rule(self) -> str:
        """The Aggregate op's rule: the coordinate-wise median for CwMed, a weighted sum otherwise."""
        return "median" if self.method == "cwmed" else "weighted"
