import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.live.netem.topology import (
    LinkSpec,
    Topology,
    dump_topology,
    erdos_renyi,
    from_edges,
    full,
    link_key,
    load_topology,
    topology_for,
)
from chainlab.live.rounds import resolve_round_seconds
from chainlab.network import graphs
from chainlab.network.config import NetworkConfig


def _id(i: int) -> bytes:
    return bytes([i + 1]) * 32


def _nodes(n: int) -> dict[bytes, str]:
    return {_id(i): f"sidecar-{i}:7100" for i in range(n)}


def test_a_yaml_file_with_every_form_of_link_loads() -> None:
    a, b, c = _id(0).hex(), _id(1).hex(), _id(2).hex()
    text = f"""
round_seconds: 0.25
defaults: {{latency_rounds: 2, bandwidth_mb_per_round: 4}}
nodes: {{"{a}": "x:1", "{b}": "y:2", "{c}": "z:3"}}
links:
  - ["{a}", "{b}"]
  - {{a: "{c}", b: "{b}", loss: 0.1, latency_rounds: 0}}
"""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_text(text)
        topology = load_topology(path)
    assert topology.round_seconds == 0.25
    assert topology.address(_id(2)) == "z:3"
    assert topology.links[link_key(_id(0), _id(1))] == LinkSpec(2, 4.0, 0.0)
    assert topology.neighbours(_id(2)) == {_id(1): LinkSpec(0, 4.0, 0.1)}
    assert sorted(topology.neighbours(_id(1))) == [_id(0), _id(2)]


_spec = st.builds(
    LinkSpec,
    latency_rounds=st.integers(0, 100),
    bandwidth_mb_per_round=st.floats(0, 1000, allow_nan=False),
    loss=st.floats(0, 1, allow_nan=False),
)


@st.composite
def _topologies(draw: st.DrawFn) -> Topology:
    n = draw(st.integers(1, 6))
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([]))
    edges = [(_id(a), _id(b), draw(_spec)) for a, b in chosen]
    seconds = draw(st.none() | st.floats(0.001, 10, allow_nan=False))
    return from_edges(_nodes(n), edges, round_seconds=seconds)


@settings(max_examples=40, deadline=None)
@given(topology=_topologies(), suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_edge_list_files_round_trip(topology: Topology, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"topology{suffix}"
        dump_topology(topology, path)
        if suffix == ".json":
            json.loads(path.read_text())  # really JSON
        assert load_topology(path) == topology


def test_full_links_every_pair() -> None:
    topology = full(_nodes(5), LinkSpec(latency_rounds=3))
    assert len(topology.links) == 10
    assert all(spec.latency_rounds == 3 for spec in topology.links.values())


def test_erdos_renyi_puts_vertex_i_on_the_i_th_listed_node() -> None:
    nodes = _nodes(10)
    topology = erdos_renyi(nodes, 3.0, seed=4)
    graph = graphs.erdos_renyi(10, 3.0, 4)
    ids = list(nodes)
    assert set(topology.links) == {link_key(ids[u], ids[v]) for u, v in graph.edges}
    assert topology.vertices == tuple(ids)
    assert topology.vertex_edges() == sorted((min(u, v), max(u, v)) for u, v in graph.edges)
    # Listing the nodes in another order puts them on other vertices: another graph, another draw order.
    reversed_nodes = dict(reversed(list(nodes.items())))
    assert erdos_renyi(reversed_nodes, 3.0, seed=4).links != topology.links


def test_topology_for_builds_the_configs_graph_over_the_given_order() -> None:
    ids = list(_nodes(6))
    nodes = [(node, f"sidecar-{i}:7100") for i, node in enumerate(ids)]
    mesh = topology_for(NetworkConfig(kind="erdos_renyi", avg_degree=2.0, hop_delay_rounds=1, loss=0.1), nodes, 3)
    assert mesh.vertex_edges() == NetworkConfig(kind="erdos_renyi", avg_degree=2.0).graph_edges(6, seed=3)
    assert set(mesh.links.values()) == {LinkSpec(latency_rounds=1, bandwidth_mb_per_round=0.5, loss=0.1)}
    whole = topology_for(NetworkConfig(delay_rounds=4), nodes, 3)
    assert len(whole.links) == 15
    assert set(whole.links.values()) == {LinkSpec(latency_rounds=4, bandwidth_mb_per_round=0.0)}
    with pytest.raises(ValueError, match="twice"):
        topology_for(NetworkConfig(), [*nodes, nodes[0]], 3)


def test_a_generator_in_a_file_expands_to_the_same_links() -> None:
    nodes = {k.hex(): v for k, v in _nodes(6).items()}
    data = {"nodes": nodes, "generate": {"kind": "erdos_renyi", "avg_degree": 2, "seed": 3}, "defaults": {"loss": 0.5}}
    topology = Topology.from_mapping(data)
    assert topology.links == erdos_renyi(_nodes(6), 2.0, 3, LinkSpec(loss=0.5)).links
    assert len(Topology.from_mapping({"nodes": nodes, "generate": {"kind": "full"}}).links) == 15


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown topology key"),
        ({"nodes": {}}, "non-empty"),
        ({"nodes": {"zz": "a:1"}}, "not hex"),
        ({"nodes": {"ab": "a:1"}}, "not 32"),
        ({"nodes": {_id(0).hex(): 5}}, "host:port"),
        ({"links": [[_id(0).hex(), _id(9).hex()]]}, "not a node"),
        ({"links": [[_id(0).hex(), _id(0).hex()]]}, "distinct"),
        ({"links": [[_id(0).hex(), _id(1).hex()], [_id(1).hex(), _id(0).hex()]]}, "twice"),
        ({"links": [{"a": _id(0).hex(), "b": _id(1).hex(), "loss": 1.5}]}, "loss"),
        ({"links": [{"a": _id(0).hex(), "b": _id(1).hex(), "latency_rounds": 0.5}]}, "whole number"),
        ({"links": [{"a": _id(0).hex(), "b": _id(1).hex(), "latency_rounds": -1}]}, "latency_rounds"),
        ({"links": [{"a": _id(0).hex(), "b": _id(1).hex(), "speed": 1}]}, "unknown link key"),
        ({"links": [[_id(0).hex()]]}, "a link is"),
        ({"generate": {"kind": "star"}}, "generator kind"),
        ({"generate": {"kind": "full"}, "links": []}, "not both"),
        ({"generate": {"kind": "full", "seed": 1}}, "unknown key"),
        ({"generate": {"kind": "erdos_renyi", "seed": 1.5}}, "seed"),
        ({"round_seconds": 0}, "round_seconds"),
        ({"defaults": {"bandwidth_mb_per_round": "fast"}}, "number"),
    ],
)
def test_bad_files_are_refused_with_a_message_that_names_the_problem(change: dict[str, object], message: str) -> None:
    data: dict[str, object] = {"nodes": {k.hex(): v for k, v in _nodes(3).items()}}
    data.update(change)
    with pytest.raises(ValueError, match=message):
        Topology.from_mapping(data)


def test_round_seconds_precedence_is_flag_then_env_then_file_then_default() -> None:
    topology = from_edges(_nodes(2), [], round_seconds=0.3)
    env = {"CHAINLAB_ROUND_SECONDS": "0.2"}
    assert resolve_round_seconds(0.1, topology.round_seconds, env) == (0.1, "flag")
    assert resolve_round_seconds(None, topology.round_seconds, env) == (0.2, "env")
    assert resolve_round_seconds(None, topology.round_seconds, {}) == (0.3, "file")
    assert resolve_round_seconds(None, from_edges(_nodes(2), []).round_seconds, {}) == (1.0, "default")
    with pytest.raises(ValueError):
        resolve_round_seconds(None, topology.round_seconds, {"CHAINLAB_ROUND_SECONDS": "fast"})
    with pytest.raises(ValueError):
        resolve_round_seconds(-1.0, topology.round_seconds, {})
