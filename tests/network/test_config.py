"""Tests for the network config both drivers validate the `network:` section with."""

import pytest

from chainlab.network.config import NetworkConfig
from chainlab.network.links import LinkSpec


def test_from_mapping_names_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="bandwith"):
        NetworkConfig.from_mapping({"kind": "topology", "bandwith": 1.0})
    cases: list[tuple[dict[str, object], str]] = [
        ({"kind": "ring"}, "kind"),
        ({"delay_rounds": 0}, "delay_rounds"),
        ({"delay_rounds": 1.5}, "delay_rounds"),
        ({"hop_delay_rounds": 0.5}, "hop_delay_rounds"),
        ({"bandwidth_mb": 0}, "bandwidth_mb"),
        ({"bandwidth_mb": "fast"}, "bandwidth_mb"),
        ({"loss": 1.5, "kind": "erdos_renyi"}, "loss"),
        ({"avg_degree": 0}, "avg_degree"),
        ({"topology_seed": 1.5}, "topology_seed"),
        ({"edges": [[0, 1.5]]}, "edge"),
        ({"edges": [[0, 1, 2]]}, "pair"),
        ({"edges": 3}, "edges"),
        ({"loss": 0.1}, "per link"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            NetworkConfig.from_mapping(data)


def test_from_mapping_turns_yaml_lists_into_tuples_and_normalises_numbers() -> None:
    config = NetworkConfig.from_mapping({"kind": "topology", "edges": [[0, 1], [1, 2]], "hop_delay_rounds": 2.0})
    assert config.edges == ((0, 1), (1, 2))
    assert config == NetworkConfig(kind="topology", edges=((0, 1), (1, 2)), hop_delay_rounds=2)
    hash(config)


def test_fields_of_other_kinds_are_ignored_so_one_config_compares_kinds() -> None:
    config = NetworkConfig.from_mapping({"kind": "full", "delay_rounds": 4, "avg_degree": 3.0, "bandwidth_mb": 0.5})
    assert config.link_spec() == LinkSpec(latency_rounds=4, bandwidth_mb_per_round=0.0, loss=0.0)
    mesh = NetworkConfig(kind="erdos_renyi", delay_rounds=4, hop_delay_rounds=1, bandwidth_mb=0.5, loss=0.1)
    assert mesh.link_spec() == LinkSpec(latency_rounds=1, bandwidth_mb_per_round=0.5, loss=0.1)


def test_the_graph_seed_defaults_to_the_experiment_seed() -> None:
    assert NetworkConfig(kind="erdos_renyi").graph_seed(7) == 7
    assert NetworkConfig(kind="erdos_renyi", topology_seed=0).graph_seed(7) == 0
    a = NetworkConfig(kind="erdos_renyi").graph_edges(12, seed=7)
    assert a == NetworkConfig(kind="erdos_renyi", topology_seed=7).graph_edges(12, seed=1)
    assert a == sorted(a) and all(u < v for u, v in a)


def test_graph_edges_of_each_kind() -> None:
    assert NetworkConfig().graph_edges(3, seed=0) == [(0, 1), (0, 2), (1, 2)]
    topology = NetworkConfig(kind="topology", edges=((2, 1), (0, 1)))
    assert topology.graph_edges(3, seed=0) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="cover"):
        topology.graph_edges(4, seed=0)
    with pytest.raises(ValueError, match="cover"):
        topology.graph_edges(2, seed=0)
