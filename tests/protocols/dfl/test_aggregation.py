"""Eq. (2)-(4): HalfFedAvg, reputation-0.05 with its code-level details, and the fedavg / median baselines."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chainlab.protocols.dfl.aggregation import Buffered, half_fedavg, plan_update

A, B, C = b"a", b"b", b"c"


def entries(*pairs: tuple[bytes, float]) -> list[Buffered]:
    return [Buffered(b"m", accuracy, generator) for generator, accuracy in pairs]


def test_half_fedavg_halves_between_own_and_the_buffer_mean() -> None:
    update = plan_update("halffedavg", entries((A, 0.9), (B, 0.1)), {}, 0.05)
    assert update.rule == "weighted" and update.coefficients == (0.5, 0.25, 0.25)
    assert update.reputation == {} and update.penalised == 0


def test_reputation_weights_use_pre_penalty_reputations_and_ties_all_pay() -> None:
    update = plan_update("reputation", entries((A, 0.8), (B, 0.2), (C, 0.2)), {A: 0.5}, 0.05)
    # weights: 0.5 * 0.8 = 0.4, 1 * 0.2, 1 * 0.2 -> shares 0.5, 0.25, 0.25 of the half
    assert update.coefficients == pytest.approx((0.5, 0.25, 0.125, 0.125))
    assert update.reputation == {A: 0.5, B: 0.95, C: 0.95} and update.penalised == 2


def test_a_sender_twice_in_the_buffer_pays_twice_and_reputation_floors_at_zero() -> None:
    update = plan_update("reputation", entries((A, 0.1), (A, 0.1), (B, 0.9)), {A: 0.05}, 0.05)
    assert update.reputation[A] == 0.0


def test_all_zero_weights_fall_back_to_half_fedavg() -> None:
    update = plan_update("reputation", entries((A, 0.5), (B, 0.5)), {A: 0.0, B: 0.0}, 0.05)
    assert update.coefficients == half_fedavg(2)


def test_twenty_penalties_reach_exactly_zero() -> None:
    reps: dict[bytes, float] = {}
    for _ in range(20):
        reps = plan_update("reputation", entries((A, 0.1), (B, 0.9)), reps, 0.05).reputation
    assert reps[A] == 0.0


def test_baselines() -> None:
    assert plan_update("fedavg", entries((A, 0.1), (B, 0.9)), {}, 0.05).coefficients == (1 / 3, 1 / 3, 1 / 3)
    median = plan_update("median", entries((A, 0.1)), {}, 0.05)
    assert median.rule == "median" and median.coefficients == ()
    with pytest.raises(ValueError, match="unknown aggregation"):
        plan_update("krum", entries((A, 0.1)), {}, 0.05)
    with pytest.raises(ValueError, match="at least one"):
        plan_update("fedavg", [], {}, 0.05)


@given(
    st.lists(st.tuples(st.sampled_from([A, B, C]), st.floats(0, 1)), min_size=1, max_size=8),
    st.sampled_from(["halffedavg", "reputation", "fedavg"]),
)
@example(pairs=[(B, 5e-324)], rule="reputation")  # a subnormal weight: 0.5 * w underflowed to 0
def test_weighted_coefficients_sum_to_one(pairs: list[tuple[bytes, float]], rule: str) -> None:
    update = plan_update(rule, entries(*pairs), {A: 0.3}, 0.05)
    assert sum(update.coefficients) == pytest.approx(1.0)
    assert all(c >= 0 for c in update.coefficients) and len(update.coefficients) == len(pairs) + 1
