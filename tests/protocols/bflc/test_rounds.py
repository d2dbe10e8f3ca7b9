"""Whole rounds among in-process BFLC cores (fake learner): the committee filters attackers, the baselines do not,
a silent leader is replaced, a silent committee is reported as stalled, and every node ends on one chain."""

from __future__ import annotations

import pytest

from chainlab.ledger import encoding
from chainlab.protocols.bflc import committee
from chainlab.protocols.bflc.messages import Chain, ChainRequest
from tests.protocols.bflc.net import accuracy, network, unpack


@pytest.mark.parametrize("method", ["bflc", "basic_fl", "cwmed"])
def test_an_honest_network_writes_every_round_on_one_chain(method: str) -> None:
    net = network(10, method=method).start().run()
    assert {n.chain.round for n in net.nodes} == {3}
    assert len({n.chain.tip.hash for n in net.nodes}) == 1
    assert net.rejections() == []
    weights = unpack(net.nodes[0].chain.tip.weights)
    assert weights is not None and accuracy(weights) == pytest.approx(0.8)  # 3 halvings of the distance to TARGET
    assert sum(1 for _, r in net.records if r.event == "round_committed") == 3
    assert all(n.status().height == 3 and n.status().done for n in net.nodes)


def test_the_rank_rule_packs_the_top_half_and_elects_the_next_committee_from_it() -> None:
    net = network(20, rounds=2, active=0.5, committee=0.4).start().run()
    chain = net.nodes[0].chain
    first = chain.rounds[0]
    assert len(first.update_blocks) == 5  # ceil(0.5 * 10)
    scores = [ub.score for ub in first.update_blocks]
    assert scores == sorted(scores, reverse=True)
    assert set(first.model_block.committee) <= {ub.uploader for ub in first.update_blocks}
    assert len(first.model_block.committee) == committee.seats(0.4, 10)
    assert not set(first.model_block.committee) & set(
        chain.genesis.committee
    )  # members of C_t never re-elected at once
    assert sum(r.amount for r in first.model_block.rewards) == pytest.approx(100.0, abs=1e-3)
    assert chain.balances


def test_bflc_keeps_attackers_out_while_basic_fl_averages_them_in() -> None:
    bad = range(1, 7)
    results = {}
    for method in ("bflc", "basic_fl"):
        net = network(20, malicious=bad, method=method, rounds=4, active=0.5, sigma=2.0).start().run()
        ids = {net.nodes[i].node_id for i in bad}
        packed = sum(ub.uploader in ids for rb in net.nodes[0].chain.rounds for ub in rb.update_blocks)
        weights = unpack(net.nodes[0].chain.tip.weights)
        assert weights is not None
        results[method] = (packed, accuracy(weights))
    assert results["bflc"][0] < results["basic_fl"][0]
    assert results["bflc"][1] > results["basic_fl"][1]


def test_a_silent_leader_is_replaced_by_the_next_member() -> None:
    net = network(20, rounds=1, active=0.5, committee=0.4)
    leader = committee.leader(net.nodes[0].chain.committee, 0)
    net.drop.add(leader)
    net.start().run()
    live = [n for n in net.nodes if n.node_id != leader]
    assert {n.chain.round for n in live} == {1}
    assert live[0].chain.tip.attempt == 1


def test_a_member_that_missed_every_first_update_gets_the_resends_and_the_round_completes() -> None:
    net = network(10, rounds=1)
    net.lose_first_update_to.update(net.nodes[0].chain.committee)
    net.start().run()
    assert {n.chain.round for n in net.nodes} == {1}
    assert net.rejections() == []  # a resent copy is not a second update
    assert len(net.nodes[0].chain.rounds[0].update_blocks) > 0


def test_a_silent_committee_is_reported_as_stalled() -> None:
    net = network(10, rounds=1)
    members = net.nodes[0].chain.committee
    net.drop.update(members[1:])  # the leader alone cannot gather a majority of endorsements
    net.start().run()
    assert any(r.event == "stalled" for _, r in net.records)
    assert all(n.chain.round == 0 for n in net.nodes)


def test_the_chain_is_served_to_the_results_reader() -> None:
    net = network(10, rounds=2).start().run()
    node = net.nodes[3]
    answer = node.on_request(b"reader", ChainRequest(0), 0)
    assert isinstance(answer, bytes)
    chain = encoding.decode(Chain, answer)
    assert chain.genesis == node.chain.genesis and len(chain.rounds) == 2
    assert node.on_request(b"reader", object(), 0) is None


@pytest.mark.parametrize(
    "options",
    [
        {"selection": "stream", "theta": 0.1},
        {"election": "random"},
        {"weighting": "unweighted"},
        {"collusion": "zero", "blacklist_below": 0.3},
    ],
)
def test_every_rule_variant_runs_to_the_end(options: dict[str, object]) -> None:
    net = network(20, malicious=[2, 3], rounds=3, **options).start().run()
    assert {n.chain.round for n in net.nodes} == {3}
    assert len({n.chain.tip.hash for n in net.nodes}) == 1 and net.rejections() == []


def test_the_blacklist_expels_hopeless_providers_from_later_draws() -> None:
    net = network(20, malicious=range(1, 7), rounds=4, sigma=50.0, blacklist_below=0.05).start().run()
    chain = net.nodes[0].chain
    assert chain.blacklist
    for later in chain.rounds[1:]:
        assert not {ub.uploader for ub in later.update_blocks} & set(chain.rounds[0].model_block.blacklisted)
