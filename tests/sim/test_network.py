"""Tests for the simulator's network models."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np
import pytest

from chainlab.sim.network import (
    FullyConnected,
    NetworkConfig,
    NetworkModel,
    TopologyNetwork,
    attach,
    build_network,
    complete,
    erdos_renyi,
    from_edges,
)

HUGE = 1e9  # a bandwidth at which any message crosses a link in the minimum of one round


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def line(n: int = 4, **attrs: float) -> nx.Graph:
    graph = nx.path_graph(n)
    for u, v in graph.edges:
        graph.edges[u, v].update(attrs)
    return graph


# --- fully connected ------------------------------------------------------------------------------------


def test_full_delivers_to_all_others_after_constant_delay() -> None:
    net = FullyConnected(5, 3)
    assert isinstance(net, NetworkModel)
    assert net.broadcast(2, 6.0, now=10, rng=rng()) == {0: 13, 1: 13, 3: 13, 4: 13}
    assert net.unicast(0, 4, 2.0, now=7, rng=rng()) == 10


@pytest.mark.parametrize("delay", [0, -1])
def test_full_rejects_delay_below_one(delay: int) -> None:
    with pytest.raises(ValueError, match="delay_rounds"):
        FullyConnected(3, delay)


def test_full_rejects_unknown_nodes_and_self_unicast() -> None:
    net = FullyConnected(3, 1)
    with pytest.raises(ValueError):
        net.broadcast(3, 1.0, 0, rng())
    with pytest.raises(ValueError):
        net.unicast(1, 1, 1.0, 0, rng())


# --- topology: timing -----------------------------------------------------------------------------------


def test_line_arrivals_increase_along_the_line() -> None:
    net = TopologyNetwork(line(4), bandwidth_mb=0.5)
    for seed in range(20):
        arrivals = net.broadcast(0, 2.0, now=100, rng=rng(seed))
        assert sorted(arrivals) == [1, 2, 3]
        assert 100 < arrivals[1] < arrivals[2] < arrivals[3]
        # 2 MB over a link clipped at 0.05 MB/round takes at most 40 rounds.
        assert arrivals[3] - 100 <= 3 * 40


def test_huge_bandwidth_hop_takes_one_round_plus_delay() -> None:
    net = TopologyNetwork(line(4, delay=2), bandwidth_mb=HUGE)
    assert net.broadcast(0, 2.0, now=5, rng=rng()) == {1: 8, 2: 11, 3: 14}
    assert net.unicast(3, 0, 2.0, now=5, rng=rng()) == 14


def test_zero_size_message_still_takes_a_round() -> None:
    net = TopologyNetwork(line(2), bandwidth_mb=0.5)
    assert net.broadcast(0, 0.0, now=0, rng=rng()) == {1: 1}


def test_hop_time_follows_the_sampled_bandwidth() -> None:
    # b ~ N(0.5, 0.1^2): ceil(2 / b) is 4 for b in [0.5, 0.667), the most likely bucket, and 5 next.
    net = TopologyNetwork(line(2), bandwidth_mb=0.5)
    generator = rng(1)
    counts = Counter(net.unicast(0, 1, 2.0, now=0, rng=generator) for _ in range(2000))
    assert counts.most_common(2)[0][0] == 4
    assert counts.most_common(2)[1][0] == 5
    assert all(hop is not None and 2 <= hop <= 40 for hop in counts)


def test_flooding_takes_the_fast_detour_around_a_slow_edge() -> None:
    graph = from_edges(3, [(0, 1, HUGE), (1, 2, HUGE), (0, 2, 0.01)])
    net = TopologyNetwork(graph)
    assert net.broadcast(0, 2.0, now=0, rng=rng()) == {1: 1, 2: 2}
    assert net.unicast(0, 2, 2.0, now=0, rng=rng()) == 2


def test_unicast_matches_broadcast_for_the_same_draws() -> None:
    net = TopologyNetwork(erdos_renyi(15, 3.0, seed=4), bandwidth_mb=0.5)
    for seed in range(10):
        flooded = net.broadcast(3, 2.0, now=0, rng=rng(seed))
        assert net.unicast(3, 11, 2.0, now=0, rng=rng(seed)) == flooded[11]


def test_same_seed_same_result_different_seed_differs() -> None:
    net = TopologyNetwork(erdos_renyi(30, 3.0, seed=1), bandwidth_mb=0.5)
    first = net.broadcast(0, 6.0, now=0, rng=rng(7))
    assert net.broadcast(0, 6.0, now=0, rng=rng(7)) == first
    others = [net.broadcast(0, 6.0, now=0, rng=rng(seed)) for seed in range(8, 13)]
    assert any(other != first for other in others)


def test_rng_consumption_does_not_depend_on_loss_or_partition() -> None:
    # A cut or a lossy link must not shift the random numbers of later messages.
    plain = TopologyNetwork(line(4), bandwidth_mb=0.5)
    chaotic = TopologyNetwork(line(4), bandwidth_mb=0.5)
    chaotic.cut([{3}])
    chaotic.set_link(0, 1, loss=0.5)
    a, b = rng(3), rng(3)
    plain.broadcast(0, 2.0, 0, a)
    chaotic.broadcast(0, 2.0, 0, b)
    assert a.random() == b.random()


# --- topology: loss, partitions, run-time changes -------------------------------------------------------


def test_total_loss_on_an_edge_isolates_the_far_side() -> None:
    graph = line(4)
    graph.edges[1, 2]["loss"] = 1.0
    net = TopologyNetwork(graph, bandwidth_mb=HUGE)
    for seed in range(5):
        assert net.broadcast(0, 2.0, now=0, rng=rng(seed)) == {1: 1}
        assert net.unicast(0, 3, 2.0, now=0, rng=rng(seed)) is None
        assert net.broadcast(3, 2.0, now=0, rng=rng(seed)) == {2: 1}


def test_default_loss_applies_to_every_link() -> None:
    assert TopologyNetwork(complete(4), loss=1.0).broadcast(0, 1.0, 0, rng()) == {}


def test_partial_loss_drops_about_that_fraction() -> None:
    net = TopologyNetwork(line(2), bandwidth_mb=HUGE, loss=0.3)
    generator = rng(5)
    lost = sum(net.unicast(0, 1, 1.0, 0, generator) is None for _ in range(2000))
    assert 0.25 < lost / 2000 < 0.35


def test_cut_and_heal() -> None:
    net = TopologyNetwork(complete(5), bandwidth_mb=HUGE)
    net.cut([{0, 1}, [2]])
    assert net.broadcast(0, 2.0, 0, rng()) == {1: 1}
    assert net.broadcast(2, 2.0, 0, rng()) == {}
    assert net.broadcast(3, 2.0, 0, rng()) == {4: 1}
    assert net.unicast(0, 3, 2.0, 0, rng()) is None
    net.heal()
    assert net.broadcast(0, 2.0, 0, rng()) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert net.unicast(0, 3, 2.0, 0, rng()) == 1


def test_cut_rejects_a_node_in_two_groups() -> None:
    net = TopologyNetwork(complete(3))
    with pytest.raises(ValueError, match="more than one"):
        net.cut([{0, 1}, {1, 2}])


def test_set_link_changes_delay_and_bandwidth() -> None:
    net = TopologyNetwork(line(3), bandwidth_mb=HUGE)
    net.set_link(1, 0, delay=5)
    assert net.broadcast(0, 2.0, 0, rng()) == {1: 6, 2: 7}
    net.set_link(1, 2, bandwidth=1e-3)
    arrivals = net.broadcast(0, 2.0, 0, rng())
    assert arrivals[2] - arrivals[1] > 100
    with pytest.raises(ValueError):
        net.set_link(0, 2, delay=1)
    with pytest.raises(ValueError):
        net.set_link(0, 1, delay=-1)


def test_remove_and_add_link() -> None:
    net = TopologyNetwork(line(3), bandwidth_mb=HUGE)
    net.remove_link(1, 2)
    assert net.broadcast(0, 1.0, 0, rng()) == {1: 1}
    net.add_link(0, 2, delay=3)
    assert net.broadcast(0, 1.0, 0, rng()) == {1: 1, 2: 4}
    assert net.graph.edges[0, 2] == {"bandwidth": HUGE, "delay": 3, "loss": 0.0}
    with pytest.raises(ValueError):
        net.add_link(0, 2)
    with pytest.raises(ValueError, match="unknown link attribute"):
        net.add_link(1, 2, latency=1)


def test_topology_rejects_nodes_not_numbered_from_zero() -> None:
    with pytest.raises(ValueError):
        TopologyNetwork(nx.path_graph([1, 2, 3]))


def test_topology_copies_the_graph() -> None:
    graph = line(3)
    net = TopologyNetwork(graph, bandwidth_mb=HUGE)
    graph.remove_edge(1, 2)
    assert net.broadcast(0, 1.0, 0, rng()) == {1: 1, 2: 2}


# --- graph builders -------------------------------------------------------------------------------------


def test_erdos_renyi_connected_with_requested_degree_and_deterministic() -> None:
    graph = erdos_renyi(50, 4.0, seed=3)
    assert nx.is_connected(graph)
    assert sorted(graph.nodes) == list(range(50))
    mean_degree = 2 * graph.number_of_edges() / 50
    assert 2.0 <= mean_degree <= 6.0
    assert sorted(erdos_renyi(50, 4.0, seed=3).edges) == sorted(graph.edges)
    assert sorted(erdos_renyi(50, 4.0, seed=4).edges) != sorted(graph.edges)


def test_erdos_renyi_retries_sparse_graphs_until_connected() -> None:
    for seed in range(5):
        assert nx.is_connected(erdos_renyi(20, 1.5, seed=seed))


def test_erdos_renyi_gives_up() -> None:
    with pytest.raises(ValueError, match="no connected"):
        erdos_renyi(10, 0.01, seed=0)


def test_from_edges_and_attach() -> None:
    graph = from_edges(3, [(0, 1), (1, 2, 2.0)])
    assert graph.edges[1, 2]["bandwidth"] == 2.0
    assert "bandwidth" not in graph.edges[0, 1]
    with pytest.raises(ValueError):
        from_edges(3, [(0, 3)])
    bigger = attach(graph, 3, [0, 2], bandwidth=5.0, delay=1)
    assert sorted(bigger.edges(3, data=True)) == [
        (3, 0, {"bandwidth": 5.0, "delay": 1}),
        (3, 2, {"bandwidth": 5.0, "delay": 1}),
    ]
    assert 3 not in graph
    with pytest.raises(ValueError):
        attach(graph, 1, [0])


# --- configuration --------------------------------------------------------------------------------------


def test_config_from_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="bandwith"):
        NetworkConfig.from_mapping({"kind": "topology", "bandwith": 1.0})
    with pytest.raises(ValueError):
        NetworkConfig.from_mapping({"kind": "ring"})


def test_config_from_mapping_turns_yaml_lists_into_tuples() -> None:
    config = NetworkConfig.from_mapping({"kind": "topology", "edges": [[0, 1], [1, 2]]})
    assert config.edges == ((0, 1), (1, 2))
    hash(config)


def test_build_full() -> None:
    net = build_network(NetworkConfig(delay_rounds=2, hop_delay_rounds=3), 4)
    assert isinstance(net, FullyConnected)
    assert net.broadcast(0, 2.0, 0, rng()) == {1: 5, 2: 5, 3: 5}
    with pytest.raises(ValueError):
        build_network(NetworkConfig(loss=0.1), 4)


def test_build_topology_applies_hop_delay_and_checks_coverage() -> None:
    config = NetworkConfig(kind="topology", edges=((0, 1), (1, 2)), bandwidth_mb=HUGE, hop_delay_rounds=3)
    net = build_network(config, 3)
    assert net.n == 3
    assert net.broadcast(0, 2.0, 0, rng()) == {1: 4, 2: 8}
    with pytest.raises(ValueError, match="cover"):
        build_network(config, 4)
    with pytest.raises(ValueError, match="cover"):
        build_network(config, 2)


def test_build_erdos_renyi() -> None:
    config = NetworkConfig(kind="erdos_renyi", avg_degree=3.0, topology_seed=2)
    net = build_network(config, 12)
    assert isinstance(net, TopologyNetwork)
    assert net.n == 12
    assert sorted(net.graph.edges) == sorted(erdos_renyi(12, 3.0, seed=2).edges)
    assert len(net.broadcast(0, 2.0, 0, rng())) == 11
