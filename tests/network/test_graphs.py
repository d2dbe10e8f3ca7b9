"""Tests for the shared graph generators and their validators."""

import networkx as nx
import numpy as np
import pytest

from chainlab.network import graphs


def test_erdos_renyi_is_connected_and_deterministic() -> None:
    a = graphs.erdos_renyi(12, 3.0, seed=5)
    b = graphs.erdos_renyi(12, 3.0, seed=5)
    assert nx.is_connected(a)
    assert sorted(a.edges) == sorted(b.edges)
    assert set(a.nodes) == set(range(12))


def test_erdos_renyi_connected_with_requested_degree() -> None:
    graph = graphs.erdos_renyi(50, 4.0, seed=3)
    assert nx.is_connected(graph)
    assert 2.0 <= 2 * graph.number_of_edges() / 50 <= 6.0
    assert sorted(graphs.erdos_renyi(50, 4.0, seed=4).edges) != sorted(graph.edges)


def test_erdos_renyi_retries_sparse_graphs_until_connected_or_gives_up() -> None:
    for seed in range(5):
        assert nx.is_connected(graphs.erdos_renyi(20, 1.5, seed=seed))
    with pytest.raises(ValueError, match="no connected"):
        graphs.erdos_renyi(10, 0.01, seed=0)


def test_erdos_renyi_caps_p_at_one_and_handles_one_node() -> None:
    assert graphs.erdos_renyi(5, 50.0, seed=0).number_of_edges() == 10
    assert graphs.erdos_renyi(1, 3.0, seed=0).number_of_nodes() == 1


@pytest.mark.parametrize(("n", "degree"), [(0, 3.0), (4, 0.0), (4, float("nan")), (True, 3.0), (2.5, 3.0)])
def test_erdos_renyi_rejects_bad_arguments(n: int, degree: float) -> None:
    with pytest.raises(ValueError):
        graphs.erdos_renyi(n, degree, seed=0)


def test_validators_accept_numpy_integers_and_refuse_floats_and_bools() -> None:
    assert graphs.as_int(np.int64(3), "x") == 3
    for bad in (3.0, True, "3"):
        with pytest.raises(ValueError, match="x must be an integer"):
            graphs.as_int(bad, "x")
    assert graphs.check_n(2) == 2
    with pytest.raises(ValueError):
        graphs.check_n(0)
    assert graphs.check_vertex(1, 2) == 1
    with pytest.raises(ValueError, match="not a node"):
        graphs.check_vertex(2, 2)


def test_complete_and_from_edges() -> None:
    assert graphs.complete(4).number_of_edges() == 6
    graph = graphs.from_edges(3, [(0, 1), (1, 2, 2.0)])
    assert graph.edges[1, 2]["bandwidth"] == 2.0
    assert "bandwidth" not in graph.edges[0, 1]
    for bad in ([(0, 3)], [(1, 1)], [(0, 1, -1.0)]):
        with pytest.raises(ValueError):
            graphs.from_edges(3, bad)
