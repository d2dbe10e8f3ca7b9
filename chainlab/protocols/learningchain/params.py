"""Protocol parameters shared by every LearningChain node of a network, validated from the config's protocol section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainlab.ledger.pow import DEFAULT_TARGET
from chainlab.protocols.params import check_choice, check_integer, is_number, params_from

AGGREGATORS = ("l_nearest", "multi_krum")
CLIPS = ("per_example", "sum")
BUDGETS = ("fixed", "uniform", "harmonic")
MINER_ATTACKS = ("model", "selection", "forge")


@dataclass(frozen=True)
class LearningChainParams:
    """Rules every node agrees on; defaults are protocols.md 3.3-3.4's [A] readings where the paper is silent."""

    rounds: int = 30  # T: the run ends when the head reaches height T
    select: int = 0  # l; 0: floor(K / 2), protocols.md 3.4
    aggregator: str = "l_nearest"  # or multi_krum, the baseline of Fig. 7
    krum_f: int = 0  # multi-Krum's f (the spec sets it from the true attacker count, capped at (K - 3) // 2)
    lr: float = 0.001  # eta of Eq. 17 (protocols.md 3.3: eta_0 / mean N_k, since Eq. 6 sums over the samples)
    l2: float = 0.0  # lambda; > 0 adds lambda * w_t to Eq. 16's gradient (option include_l2)
    batch: int = 0  # m; 0: the holder's full shard (Eq. 6)
    clip: str = "per_example"  # Appendix A (default) or "sum", Eq. 9 as printed
    bound: float = 1.0  # G
    epsilon: float | None = None  # the per-iteration (LearningChain) or whole-run (LearningChainEx) budget; None: no DP
    budget: str = "fixed"  # fixed: eps every iteration; uniform: eps / T (LearningChainEx); harmonic: eps / (t(t+1))
    sigma: float = 200.0  # a Byzantine holder's N(0, sigma^2) gradient, protocols.md 3.4
    fresh_pseudonyms: bool = True  # a new pseudonym key per (holder, height)
    collect_rounds: int = 2  # rounds a miner waits after its head arrives before aggregating what it holds
    strict: bool = False  # blk.unknown_message rejects (true) or checks the message it never saw (false)
    target: int = DEFAULT_TARGET  # proof of work: H(header) < target
    miner_attack: str = "model"  # what a Byzantine miner falsifies: model (w_{t+1}), selection, forge (a message)
    perturb_scale: float = 1.0  # the model attack's Gaussian noise per weight
    max_orphans: int = 64  # blocks held waiting for their parent
    max_future_messages: int = 4096  # messages of later heights held until this node reaches them
    small_message_size_mb: float = 0.001

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LearningChainParams:
        """Build from config, naming any unknown key, then check every value."""
        params = params_from(cls, data)
        params.check()
        return params

    def check(self) -> None:
        """ValueError naming the first bad value."""
        for name, choices in (
            ("aggregator", AGGREGATORS),
            ("clip", CLIPS),
            ("budget", BUDGETS),
            ("miner_attack", MINER_ATTACKS),
        ):
            check_choice(self, name, choices)
        for name, least in (
            ("rounds", 1),
            ("select", 0),
            ("krum_f", 0),
            ("batch", 0),
            ("collect_rounds", 0),
            ("max_orphans", 0),
            ("max_future_messages", 0),
        ):
            check_integer(self, name, least)
        for name in ("lr", "bound"):
            if not is_number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a number > 0, got {getattr(self, name)!r}")
        for name in ("l2", "sigma", "perturb_scale", "small_message_size_mb"):
            if not is_number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if self.epsilon is not None and (not is_number(self.epsilon) or self.epsilon <= 0):
            raise ValueError(f"epsilon must be a number > 0 or null (no DP), got {self.epsilon!r}")
        if self.budget != "fixed" and self.epsilon is None:
            raise ValueError("budget uniform or harmonic (LearningChainEx) needs an epsilon")
        if isinstance(self.target, bool) or not isinstance(self.target, int) or not 0 < self.target <= 2**256:
            raise ValueError(f"target must be an integer in (0, 2**256], got {self.target!r}")
        for name in ("fresh_pseudonyms", "strict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def selected_count(self, holders: int) -> int:
        """l: the configured one, or floor(K / 2) (at least 1)."""
        return self.select if self.select > 0 else max(1, holders // 2)

    def epsilon_at(self, height: int) -> float | None:
        """eps_t of iteration t = height + 1 (LearningChainEx, seed 003 section V-A): eps, eps / T or eps / (t(t+1))."""
        if self.epsilon is None:
            return None
        if self.budget == "uniform":
            return self.epsilon / self.rounds
        if self.budget == "harmonic":
            t = height + 1
            return self.epsilon / (t * (t + 1))
        return self.epsilon
