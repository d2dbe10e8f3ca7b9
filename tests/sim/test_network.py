"""Tests for the simulator's network models."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest

from chainlab.network.config import NetworkConfig
from chainlab.network.graphs import complete, erdos_renyi, from_edges
from chainlab.network.links import LinkSpec
from chainlab.sim.network import FullyConnected, NetworkModel, TopologyNetwork, build_network

HUGE = 1e9  # a bandwidth at which any message crosses a link in the minimum of one round


def mid(i: int = 0) -> bytes:
    """A message ID: the draws are keyed by it."""
    return b"message-" + i.to_bytes(4, "big")


def line(n: int = 4, **attrs: float) -> nx.Graph:
    graph = nx.path_graph(n)
    for u, v in graph.edges:
        graph.edges[u, v].update(attrs)
    return graph


# --- fully connected ------------------------------------------------------------------------------------


def test_full_delivers_to_all_others_after_constant_delay() -> None:
    net = FullyConnected(5, 3)
    assert isinstance(net, NetworkModel)
    assert net.broadcast(2, 6.0, now=10, message_id=mid()) == {0: 13, 1: 13, 3: 13, 4: 13}
    assert net.unicast(0, 4, 2.0, now=7, message_id=mid()) == 10
    assert set(net.hops(mid(), 6.0).values()) == {3}


@pytest.mark.parametrize("delay", [0, -1])
def test_full_rejects_delay_below_one(delay: int) -> None:
    with pytest.raises(ValueError, match="delay_rounds"):
        FullyConnected(3, delay)


def test_full_rejects_unknown_nodes_self_unicast_and_bad_ids() -> None:
    net = FullyConnected(3, 1)
    with pytest.raises(ValueError):
        net.broadcast(3, 1.0, 0, mid())
    with pytest.raises(ValueError):
        net.unicast(1, 1, 1.0, 0, mid())
    with pytest.raises(ValueError, match="message ID"):
        net.broadcast(0, 1.0, 0, b"")


# --- topology: timing -----------------------------------------------------------------------------------


def test_line_arrivals_increase_along_the_line() -> None:
    net = TopologyNetwork(line(4), bandwidth_mb=0.5)
    assert isinstance(net, NetworkModel)
    for i in range(20):
        arrivals = net.broadcast(0, 2.0, now=100, message_id=mid(i))
        assert sorted(arrivals) == [1, 2, 3]
        assert 100 < arrivals[1] < arrivals[2] < arrivals[3]
        # 2 MB over a link floored at 0.05 MB/round takes at most 40 rounds.
        assert arrivals[3] - 100 <= 3 * 40


def test_huge_bandwidth_hop_takes_one_round_plus_delay() -> None:
    net = TopologyNetwork(line(4, delay=2), bandwidth_mb=HUGE)
    assert net.broadcast(0, 2.0, now=5, message_id=mid()) == {1: 8, 2: 11, 3: 14}
    assert net.unicast(3, 0, 2.0, now=5, message_id=mid()) == 14


def test_zero_size_message_still_takes_a_round() -> None:
    net = TopologyNetwork(line(2), bandwidth_mb=0.5)
    assert net.broadcast(0, 0.0, now=0, message_id=mid()) == {1: 1}


def test_hop_time_follows_the_drawn_bandwidth_per_message() -> None:
    # b ~ N(0.5, 0.1^2): ceil(2 / b) is 4 for b in [0.5, 0.667), the most likely bucket, and 5 next.
    net = TopologyNetwork(line(2), bandwidth_mb=0.5)
    counts = Counter(net.unicast(0, 1, 2.0, now=0, message_id=mid(i)) for i in range(2000))
    assert [hop for hop, _ in counts.most_common(2)] == [4, 5]
    assert all(hop is not None and 2 <= hop <= 40 for hop in counts)


def test_flooding_takes_the_fast_detour_around_a_slow_edge() -> None:
    net = TopologyNetwork(from_edges(3, [(0, 1, HUGE), (1, 2, HUGE), (0, 2, 0.01)]))
    assert net.broadcast(0, 2.0, now=0, message_id=mid()) == {1: 1, 2: 2}
    assert net.unicast(0, 2, 2.0, now=0, message_id=mid()) == 2


def test_unicast_matches_broadcast_for_the_same_message() -> None:
    net = TopologyNetwork(erdos_renyi(15, 3.0, seed=4), bandwidth_mb=0.5)
    for i in range(10):
        assert net.unicast(3, 11, 2.0, now=0, message_id=mid(i)) == net.broadcast(3, 2.0, 0, mid(i))[11]


def test_small_messages_flood_as_a_fresh_network_draws_them_whatever_was_sent_before() -> None:
    # Messages below every link's bandwidth floor take hops no draw changes: their distances are worked out once per
    # source; each answer must still be what a network that never saw another message gives.
    graph = erdos_renyi(30, 3.0, seed=2)
    net = TopologyNetwork(graph, bandwidth_mb=0.5, seed=3)
    for i, size in enumerate([0.0, 0.01, 0.05, 0.2, 0.01, 0.05]):
        fresh = TopologyNetwork(graph, bandwidth_mb=0.5, seed=3)
        assert net.broadcast(i % 3, size, now=5, message_id=mid(i)) == fresh.broadcast(i % 3, size, 5, mid(i))
    net.set_link(*next(iter(graph.edges)), delay=7)
    slower = TopologyNetwork(graph, bandwidth_mb=0.5, seed=3)
    slower.set_link(*next(iter(graph.edges)), delay=7)
    assert net.broadcast(0, 0.01, now=0, message_id=mid(9)) == slower.broadcast(0, 0.01, 0, mid(9))


def test_same_message_same_result_other_message_or_seed_differs() -> None:
    net = TopologyNetwork(erdos_renyi(30, 3.0, seed=1), bandwidth_mb=0.5, seed=5)
    first = net.broadcast(0, 6.0, now=0, message_id=mid(7))
    assert net.broadcast(0, 6.0, now=0, message_id=mid(7)) == first
    assert any(net.broadcast(0, 6.0, now=0, message_id=mid(i)) != first for i in range(8, 13))
    other_seed = TopologyNetwork(erdos_renyi(30, 3.0, seed=1), bandwidth_mb=0.5, seed=6)
    assert other_seed.broadcast(0, 6.0, now=0, message_id=mid(7)) != first


def test_a_links_hop_does_not_depend_on_other_links_loss_or_partition() -> None:
    # A cut or a lossy link elsewhere must not change what this message draws on the others.
    plain = TopologyNetwork(line(4), bandwidth_mb=0.5)
    chaotic = TopologyNetwork(line(4), bandwidth_mb=0.5)
    chaotic.cut([{3}, {2}])
    chaotic.set_link(0, 1, loss=0.5, bandwidth=3.0)
    for i in range(20):
        assert plain.hops(mid(i), 2.0)[(1, 2)] == chaotic.hops(mid(i), 2.0)[(1, 2)]
        assert plain.hops(mid(i), 2.0)[(2, 3)] == chaotic.hops(mid(i), 2.0)[(2, 3)]


# --- topology: loss, partitions, run-time changes -------------------------------------------------------


def test_total_loss_on_an_edge_isolates_the_far_side() -> None:
    graph = line(4)
    graph.edges[1, 2]["loss"] = 1.0
    net = TopologyNetwork(graph, bandwidth_mb=HUGE)
    for i in range(5):
        assert net.broadcast(0, 2.0, now=0, message_id=mid(i)) == {1: 1}
        assert net.unicast(0, 3, 2.0, now=0, message_id=mid(i)) is None
        assert net.broadcast(3, 2.0, now=0, message_id=mid(i)) == {2: 1}


def test_default_loss_applies_to_every_link() -> None:
    assert TopologyNetwork(complete(4), loss=1.0).broadcast(0, 1.0, 0, mid()) == {}


def test_partial_loss_drops_about_that_fraction() -> None:
    net = TopologyNetwork(line(2), bandwidth_mb=HUGE, loss=0.3)
    lost = sum(net.unicast(0, 1, 1.0, 0, mid(i)) is None for i in range(2000))
    assert 0.25 < lost / 2000 < 0.35


def test_cut_separates_listed_groups_and_heal_restores() -> None:
    net = TopologyNetwork(complete(5), bandwidth_mb=HUGE)
    net.cut([{0, 1}, {2, 3, 4}])
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 1}
    assert net.unicast(0, 3, 2.0, 0, mid()) is None
    # As in netem: nodes in no group keep their links, so a message crosses through them.
    net.cut([{0, 1}, [2]])
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 1, 2: 2, 3: 1, 4: 1}
    net.heal()
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert net.unicast(0, 3, 2.0, 0, mid()) == 1


def test_cut_rejects_a_node_in_two_groups() -> None:
    net = TopologyNetwork(complete(3))
    with pytest.raises(ValueError, match="more than one"):
        net.cut([{0, 1}, {1, 2}])


def test_set_link_changes_delay_bandwidth_and_state() -> None:
    net = TopologyNetwork(line(3), bandwidth_mb=HUGE)
    net.set_link(1, 0, delay=5)
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 6, 2: 7}
    net.set_link(1, 2, bandwidth=1e-3)
    arrivals = net.broadcast(0, 2.0, 0, mid())
    assert arrivals[2] - arrivals[1] > 100
    net.set_link(1, 2, up=False)
    net.heal()  # a switched-off link stays off
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 6}
    net.set_link(1, 2, up=True)
    assert 2 in net.broadcast(0, 2.0, 0, mid())
    assert net.links[(0, 1)] == LinkSpec(latency_rounds=5, bandwidth_mb_per_round=HUGE, loss=0.0)
    assert net.graph.edges[0, 1] == {"bandwidth": HUGE, "delay": 5, "loss": 0.0}
    with pytest.raises(ValueError):
        net.set_link(0, 2, delay=1)
    with pytest.raises(ValueError):
        net.set_link(0, 1, delay=-1)
    assert net.links[(0, 1)].latency_rounds == 5  # a bad call changes nothing


def test_topology_rejects_nodes_not_numbered_from_zero() -> None:
    with pytest.raises(ValueError):
        TopologyNetwork(nx.path_graph([1, 2, 3]))


def test_topology_copies_the_graph() -> None:
    graph = line(3)
    net = TopologyNetwork(graph, bandwidth_mb=HUGE)
    graph.remove_edge(1, 2)
    assert net.broadcast(0, 1.0, 0, mid()) == {1: 1, 2: 2}


# --- building from a config -----------------------------------------------------------------------------


def test_build_full_is_a_constant_delay() -> None:
    net = build_network(NetworkConfig(delay_rounds=2, hop_delay_rounds=3), 4, seed=0)
    assert isinstance(net, FullyConnected)
    assert net.broadcast(0, 6.0, 0, mid()) == {1: 2, 2: 2, 3: 2}


def test_build_topology_applies_hop_delay_and_checks_coverage() -> None:
    config = NetworkConfig(kind="topology", edges=((0, 1), (1, 2)), bandwidth_mb=HUGE, hop_delay_rounds=3)
    net = build_network(config, 3, seed=0)
    assert net.n == 3
    assert net.broadcast(0, 2.0, 0, mid()) == {1: 4, 2: 8}
    with pytest.raises(ValueError, match="cover"):
        build_network(config, 4, seed=0)


def test_build_erdos_renyi_uses_the_experiment_seed_unless_told_otherwise() -> None:
    net = build_network(NetworkConfig(kind="erdos_renyi", avg_degree=3.0), 12, seed=2)
    assert isinstance(net, TopologyNetwork)
    assert net.seed == 2
    assert sorted(net.graph.edges) == sorted(erdos_renyi(12, 3.0, seed=2).edges)
    assert len(net.broadcast(0, 2.0, 0, mid())) == 11
    pinned = build_network(NetworkConfig(kind="erdos_renyi", avg_degree=3.0, topology_seed=5), 12, seed=2)
    assert isinstance(pinned, TopologyNetwork)
    assert sorted(pinned.graph.edges) == sorted(erdos_renyi(12, 3.0, seed=5).edges)
