"""The agents' draws (hash-derived, Box-Muller) and their claims, decided by the model every replica holds."""

from __future__ import annotations

import statistics

from chainlab.ledger.hashing import sha256
from chainlab.protocols.datamarket import AgentParams, MarketParams
from chainlab.protocols.datamarket.agents import Agent, normal, uniform
from chainlab.protocols.datamarket.messages import AddData, Refund, Report
from tests.protocols.datamarket.market import ALICE, BOB, TAU, TAU2, fresh, sample, tx

SEED = sha256(b"agents")


def test_draws_are_deterministic_and_distributed_as_asked() -> None:
    assert uniform(SEED, b"a", b"x", 1) == uniform(SEED, b"a", b"x", 1) != uniform(SEED, b"a", b"x", 2)
    values = [normal(SEED, b"a", b"n", i, 50.0, 10.0) for i in range(4000)]
    assert abs(statistics.fmean(values) - 50.0) < 1.0 and abs(statistics.stdev(values) - 10.0) < 1.0


def test_waits_scale_with_the_day_and_a_bad_agent_flips_every_label() -> None:
    market = MarketParams(day=864)  # 100-fold faster chain time
    good = Agent(AgentParams.of({"behaviour": "good"}), market, SEED, b"g")
    bad = Agent(AgentParams.of({"behaviour": "bad"}), market, SEED, b"b")
    assert good.wait(0) == 6 and bad.wait(0) == 36
    assert all(bad.label(t, 1) == 0 for t in range(20)) and all(bad.wants_to_add(t, 0.0) for t in range(20))
    assert sum(good.label(t, 1) for t in range(200)) == 200
    assert not any(good.wants_to_add(t, -0.15) for t in range(50))


def test_claims_refund_own_agreeing_data_report_others_disagreeing_and_take_after_tau2() -> None:
    market = fresh()
    good_record = market.apply(tx(ALICE, AddData(sample(True), 1), 50), 2).record
    bad_record = market.apply(tx(BOB, AddData(sample(True, 5), 0), 50), 4).record
    alice = Agent(AgentParams(), MarketParams(day=100), SEED, ALICE.node_id)
    bob = Agent(AgentParams(behaviour="bad"), MarketParams(day=100), SEED, BOB.node_id)
    assert alice.claims(market, 3) == []
    assert alice.claims(market, 5 + TAU) == [Refund(good_record), Report(bad_record)]
    assert bob.claims(market, 5 + TAU) == []  # its own record is disagreed with; alice's is agreed with
    assert bob.claims(market, 4 + TAU2) == [Report(good_record), Report(bad_record)]  # takes what is left
