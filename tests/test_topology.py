import networkx as nx
import pytest

from chainlab import topology
from chainlab.sim import network


def test_erdos_renyi_is_connected_and_deterministic() -> None:
    a = topology.erdos_renyi(12, 3.0, seed=5)
    b = topology.erdos_renyi(12, 3.0, seed=5)
    assert nx.is_connected(a)
    assert sorted(a.edges) == sorted(b.edges)
    assert set(a.nodes) == set(range(12))


def test_erdos_renyi_caps_p_at_one_and_handles_one_node() -> None:
    assert topology.erdos_renyi(5, 50.0, seed=0).number_of_edges() == 10
    assert topology.erdos_renyi(1, 3.0, seed=0).number_of_nodes() == 1


@pytest.mark.parametrize(("n", "degree"), [(0, 3.0), (4, 0.0), (4, float("nan")), (True, 3.0), (2.5, 3.0)])
def test_erdos_renyi_rejects_bad_arguments(n: int, degree: float) -> None:
    with pytest.raises(ValueError):
        topology.erdos_renyi(n, degree, seed=0)


def test_the_simulator_uses_the_shared_generator() -> None:
    assert network.erdos_renyi is topology.erdos_renyi
