"""The model update of section 5 (Eq. 2-4): coefficients over (m_prev, buffered models) and reputation penalties."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INITIAL_REPUTATION = 1.0  # [C]: every peer starts fully trusted


@dataclass(frozen=True)
class Buffered:
    """One FedAvg buffer entry: a neighbour's model, the accuracy this node measured for it, its generator."""

    model: bytes
    accuracy: float
    generator: bytes


@dataclass(frozen=True)
class Update:
    """How to combine (m_prev, *buffered models): the Aggregate rule, its coefficients, the reputations after."""

    rule: str
    coefficients: tuple[float, ...]
    reputation: dict[bytes, float]
    penalised: int  # buffer entries whose generator lost reputation


def half_fedavg(n: int) -> tuple[float, ...]:
    """Eq. (2): m_next = 1/2 (m_prev + 1/N sum m_n)."""
    return (0.5, *([0.5 / n] * n))


def plan_update(
    aggregation: str, entries: Sequence[Buffered], reputation: Mapping[bytes, float], penalty: float
) -> Update:
    """The update for a buffer (non-empty) under one of halffedavg, reputation, fedavg (plain mean), median."""
    n = len(entries)
    if n == 0:
        raise ValueError("an update needs at least one buffered model")
    reps = dict(reputation)
    if aggregation == "halffedavg":
        return Update("weighted", half_fedavg(n), reps, 0)
    if aggregation == "fedavg":
        return Update("weighted", tuple([1.0 / (n + 1)] * (n + 1)), reps, 0)
    if aggregation == "median":
        return Update("median", (), reps, 0)
    if aggregation != "reputation":
        raise ValueError(f"unknown aggregation {aggregation!r}")
    # Eq. (3): the weights use the reputations as they stood before this update's penalty [C].
    weights = [reps.get(e.generator, INITIAL_REPUTATION) * e.accuracy for e in entries]
    total = sum(weights)
    # w / total first: 0.5 * w underflows to 0 for subnormal weights, and the shares would not sum to one.
    coefficients = (0.5, *(0.5 * (w / total) for w in weights)) if total > 0 else half_fedavg(n)
    # Eq. (4): every entry at the buffer's minimum accuracy costs its generator; ties all pay, twice if sent twice.
    worst = min(e.accuracy for e in entries)
    penalised = 0
    for entry in entries:
        if entry.accuracy == worst:
            # Rounded so that twenty penalties of 0.05 reach exactly 0 (and the fallback) rather than 1e-16.
            reps[entry.generator] = max(0.0, round(reps.get(entry.generator, INITIAL_REPUTATION) - penalty, 9))
            penalised += 1
    return Update("weighted", coefficients, reps, penalised)
