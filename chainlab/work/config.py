"""The `work:` section of a config: what ML work and mining cost in rounds, shared by both drivers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from chainlab.protocols.effects import PrivateGradient, TrainModel, TrainSteps, WorkOp

Section = TypeVar("Section")


def from_section(cls: type[Section], data: Mapping[str, object], section: str) -> Section:
    """A config section as the dataclass cls, naming unknown keys; cls's own checks name bad values."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(f"unknown {section} parameter(s): {', '.join(unknown)}; known: {sorted(known)}")
    values: dict[str, Any] = {str(k): v for k, v in data.items()}
    return cls(**values)


@dataclass(frozen=True)
class WorkConfig:
    """How work maps to rounds (section VII-A counts time in rounds). Live uses hash_trials_per_round only:
    there training and evaluation take the time they take."""

    train_rounds: int = 10
    hash_trials_per_round: int = 1  # q
    # Section II-D assumes Fetch completes within an acceptable delay: it takes this many rounds whenever
    # the network can route it (a partition or a dead link still makes it fail).
    fetch_rounds: int = 1
    step_rounds: int = 0  # a TrainSteps job (the federated protocols' local SGD); 0: done within its round

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"work.{f.name} must be an integer, got {value!r}")
        if min(self.train_rounds, self.fetch_rounds, self.step_rounds) < 0:
            raise ValueError("work.train_rounds, work.fetch_rounds and work.step_rounds must be >= 0")
        if self.hash_trials_per_round < 1:
            raise ValueError(f"work.hash_trials_per_round must be >= 1, got {self.hash_trials_per_round}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> WorkConfig:
        """Build from config, naming unknown keys."""
        return from_section(cls, data, "work")

    def rounds(self, op: WorkOp) -> int:
        """Simulated rounds an operation takes: training costs train_rounds (a base model) or step_rounds (SGD
        steps); evaluating and combining models are instant."""
        match op:
            case TrainModel():
                return self.train_rounds
            case TrainSteps() | PrivateGradient():  # a LearningChain holder's gradient costs as SGD steps do
                return self.step_rounds
            case _:
                return 0
