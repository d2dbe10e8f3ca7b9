"""The discrete-event engine's point-to-point Send and the weight-space Compute operations."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.pow import fixed64_suffix, search_nonce
from chainlab.network.graphs import from_edges
from chainlab.protocols.base import Answer, NodeStatus, Timer
from chainlab.protocols.effects import (
    PRIVATE,
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    EvaluateModel,
    EvaluationFailed,
    Get,
    InitModel,
    JobResult,
    Mine,
    Persist,
    Put,
    Record,
    Send,
    StartTimer,
    TrainSteps,
)
from chainlab.protocols.spec import ModelSpec
from chainlab.sim.engine import Simulation
from chainlab.sim.network import FullyConnected, TopologyNetwork
from chainlab.work.config import WorkConfig


class _Codec:
    def encode_message(self, message: object) -> bytes:
        assert isinstance(message, bytes)
        return message

    def decode_message(self, data: bytes) -> object:
        return data

    def encode_request(self, request: object) -> bytes:
        raise NotImplementedError

    def decode_request(self, data: bytes) -> object:
        raise NotImplementedError


@dataclass
class _Node:
    """Sends its start-up effects, and keeps what reaches it."""

    node_id: bytes
    first: list[Effect] = field(default_factory=list)
    got: list[tuple[int, bytes, object]] = field(default_factory=list)
    results: list[tuple[int, JobResult]] = field(default_factory=list)
    role: ClassVar[str] = "miner"

    def start(self, now: int) -> list[Effect]:
        return list(self.first)

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        self.got.append((now, sender, message))
        return []

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        return []

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        self.results.append((job, result))
        return []

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        return None

    def status(self) -> NodeStatus:
        return NodeStatus(self.role, 0, b"")


def _line(n: int) -> TopologyNetwork:
    graph = from_edges(n, [(i, i + 1) for i in range(n - 1)])
    for u, v in graph.edges:
        graph.edges[u, v].update(delay=2, bandwidth=0.0, loss=0.0)
    return TopologyNetwork(graph, seed=1)


def _simulation(nodes: list[_Node], network: TopologyNetwork, private: dict[int, Dataset] | None = None) -> Simulation:
    return Simulation(nodes, _Codec(), network, Worker(), {}, private or {}, WorkConfig(step_rounds=3))


def test_a_send_reaches_its_target_only_after_the_route_delay() -> None:
    nodes = [_Node(bytes([i]) * 32) for i in range(4)]
    nodes[0].first = [Send(nodes[3].node_id, b"hello", 0.1)]
    _simulation(nodes, _line(4)).run()
    assert [len(n.got) for n in nodes] == [0, 0, 0, 1]
    assert nodes[3].got[0] == (6, nodes[0].node_id, b"hello")  # three hops of two rounds


def test_a_send_across_a_cut_to_a_stranger_or_to_itself_is_lost() -> None:
    nodes = [_Node(bytes([i]) * 32) for i in range(3)]
    network = _line(3)
    network.cut([[0], [1, 2]])
    nodes[0].first = [Send(nodes[2].node_id, b"x", 0.1), Send(b"\x09" * 32, b"y", 0.1), Send(nodes[0].node_id, b"z", 0)]
    _simulation(nodes, network).run()
    assert all(not n.got for n in nodes)


def test_bytes_on_the_wire_count_one_copy_per_receiver_by_kind_and_nothing_for_a_lost_send() -> None:
    nodes = [_Node(bytes([i]) * 32) for i in range(3)]
    network = _line(3)
    nodes[0].first = [Broadcast(b"model", 0.5, 0.4), Send(nodes[2].node_id, b"vote", 0.01), Send(b"\x09" * 32, b"y", 1)]
    simulation = _simulation(nodes, network)
    simulation.run()
    wire = simulation.wire.summary(3)
    assert (wire["payload"], wire["control"], wire["served"]) == (2 * 400_000, 2 * 100_000 + 10_000, 0)
    assert wire["per_node_max"] == wire["total"] == 1_010_000


def test_weight_operations_run_on_the_nodes_own_data_and_report_bad_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 4), dtype=np.float32)
    shard = Dataset(X, (X[:, 0] > 0.5).astype(np.int64), 2, (4,), "toy")
    spec = ModelSpec.of("softmax", {"input": [4], "classes": 2})
    node = _Node(b"\x01" * 32)
    node.first = [Compute(1, InitModel(spec, 7)), Compute(2, EvaluateModel(spec, b"not weights", PRIVATE))]
    simulation = _simulation([node], TopologyNetwork(from_edges(1, []), seed=0), {0: shard})
    simulation.run()
    results = dict(node.results)
    assert isinstance(results[1], bytes) and isinstance(results[2], EvaluationFailed)
    weights = results[1]
    node.results.clear()
    simulation._execute(0, [Compute(3, TrainSteps(spec, weights, PRIVATE, 5, 8, seed=1))])
    at = simulation.run()
    assert at == 3  # step_rounds
    trained = dict(node.results)[3]
    assert isinstance(trained, bytes) and trained != weights


def _eager_search(effect: Mine, q: int, now: int) -> tuple[int, int]:
    """A search run to its end from nonce 0: (round the nonce lands in, nonce)."""
    nonce, trials = search_nonce(effect.prefix, fixed64_suffix(effect.nonce_tag), effect.target, 0, 1 << 20)
    assert nonce is not None
    return now + max(1, -(-trials // q)), nonce


@pytest.mark.parametrize("q", [1, 3, 64])
def test_a_search_in_steps_finds_the_nonce_and_round_of_one_search_to_the_end(q: int) -> None:
    effect = Mine(1, b"prefix", 2**256 // 300, b"\x71")
    node = _Node(b"\x01" * 32, first=[effect])
    simulation = Simulation([node], _Codec(), _line(1), Worker(), {}, {}, WorkConfig(hash_trials_per_round=q))
    at = simulation.run()
    assert (at, node.results) == (_eager_search(effect, q, 0)[0], [(1, _eager_search(effect, q, 0)[1])])


def test_a_cancelled_search_stops_within_a_step() -> None:
    node = _Node(b"\x01" * 32, first=[Mine(1, b"prefix", 1, b"\x71"), CancelJob(1)])  # a target nothing meets
    simulation = Simulation([node], _Codec(), _line(1), Worker(), {}, {}, WorkConfig())
    assert simulation.run() <= 16 and not node.results


def test_a_broadcast_reaches_each_node_in_node_order_within_a_round() -> None:
    order: list[int] = []

    @dataclass
    class _Listener(_Node):
        index: int = 0

        def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
            order.append(self.index)
            return []

    nodes = [_Listener(bytes([i]) * 32, index=i) for i in range(5)]
    nodes[2].first = [Broadcast(b"block", 0.1)]
    Simulation(nodes, _Codec(), FullyConnected(5, 3), Worker(), {}, {}, WorkConfig()).run()
    assert order == [0, 1, 3, 4]


@dataclass(frozen=True)
class _Named(Timer):
    name: str


def test_events_of_a_round_come_in_the_order_they_were_queued_even_those_queued_during_it() -> None:
    fired: list[tuple[int, str]] = []

    @dataclass
    class _Clock(_Node):
        def on_timer(self, timer: Timer, now: int) -> list[Effect]:
            assert isinstance(timer, _Named)
            fired.append((now, timer.name))
            if timer.name == "a":  # one more for this round, after b, and one for the next
                return [StartTimer(_Named("c"), 0), StartTimer(_Named("d"), 1)]
            return []

    node = _Clock(
        b"\x01" * 32, first=[StartTimer(_Named("e"), 3), StartTimer(_Named("a"), 2), StartTimer(_Named("b"), 2)]
    )
    simulation = _simulation([node], _line(1))
    assert simulation.run() == 3
    assert fired == [(2, "a"), (2, "b"), (2, "c"), (3, "e"), (3, "d")]
    with pytest.raises(ValueError, match="round 2, which is over"):
        simulation._push(2, 0, _Named("late"))


def test_put_stores_content_under_its_cid_and_get_reads_it_back_or_none() -> None:
    @dataclass
    class _Storing(_Node):
        def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
            self.results.append((job, result))
            if job == 1:
                assert isinstance(result, bytes)
                return [Get(2, result), Get(3, b"bafkrei-unknown")]
            return []

    node = _Storing(b"\x01" * 32, first=[Put(1, b"hello")])
    simulation = _simulation([node], _line(1))
    simulation.run()
    assert node.results == [
        (1, b"bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"),  # `ipfs add --cid-version 1` of "hello"
        (2, b"hello"),
        (3, None),
    ]
    assert simulation.wire.served == 10  # up and down again


def test_a_run_collects_mostly_young_objects_and_restores_the_collector_after() -> None:
    seen: list[tuple[int, int, int]] = []

    @dataclass
    class _Looking(_Node):
        def start(self, now: int) -> list[Effect]:
            seen.append(gc.get_threshold())
            return []

    before = gc.get_threshold()
    _simulation([_Looking(b"\x01" * 32)], _line(1)).run()
    assert seen[0][0] > before[0] and seen[0] != before
    assert gc.get_threshold() == before


@dataclass
class _Persisting(_Node):
    """A Restorable node: persists a record at start unless told its driver keeps none."""

    persisting: bool = True
    restored: list[Persist] = field(default_factory=list)

    def start(self, now: int) -> list[Effect]:
        return [Persist("note", b"k", b"v")] if self.persisting else []

    def restore(self, records: Iterable[Persist]) -> None:
        self.restored.extend(records)


@dataclass
class _Recording(_Node):
    """A Recorder: records two events at start, leaving out those its driver does not keep."""

    kept_events: frozenset[str] | None = None

    def start(self, now: int) -> list[Effect]:
        return [Record(e, {}) for e in ("kept", "dropped") if self.kept_events is None or e in self.kept_events]


@pytest.mark.parametrize("kept", [None, frozenset({"kept"})])
def test_a_driver_tells_recorders_which_events_it_keeps(kept: frozenset[str] | None) -> None:
    node = _Recording(b"\x01" * 32, kept_events=frozenset({"stale"}))
    simulation = Simulation([node], _Codec(), _line(1), Worker(), {}, {}, WorkConfig(), kept_events=kept)
    simulation.run()
    assert node.kept_events == kept
    assert [r.event for r in simulation.records] == (["kept", "dropped"] if kept is None else ["kept"])


@pytest.mark.parametrize("durable", [True, False])
def test_a_driver_that_keeps_no_records_tells_restorable_nodes_not_to_make_them(durable: bool) -> None:
    node, plain = _Persisting(b"\x01" * 32), _Node(b"\x02" * 32)
    simulation = Simulation([node, plain], _Codec(), _line(2), Worker(), {}, {}, WorkConfig(), durable=durable)
    simulation.run()
    assert node.persisting is durable
    assert [r.key for r in simulation.store(0).records()] == ([b"k"] if durable else [])
