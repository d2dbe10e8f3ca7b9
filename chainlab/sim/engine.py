"""The discrete-event driver: runs sans-IO nodes in virtual rounds, skipping idle time."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import assert_never

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.pow import fixed64_suffix, search_nonce
from chainlab.ledger.store import MemoryBlockStore
from chainlab.network.links import message_id
from chainlab.protocols.base import DataGrant, DataRequest, Observation, ProtocolNode, Restorable, Timer, WireCodec
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    FetchData,
    JobResult,
    Mine,
    Persist,
    Record,
    Request,
    Send,
    StartTimer,
    TrainModel,
    persist_first,
)
from chainlab.sim.network import NetworkModel
from chainlab.work import executor
from chainlab.work.config import WorkConfig

_MINE_CHUNK = 1 << 16
_MAX_MINE_TRIALS = 1 << 26  # a Key Block this unlucky is reported instead of searched forever


@dataclass(frozen=True)
class _Deliver:
    sender: bytes
    message: object


@dataclass(frozen=True)
class _Result:
    job: int
    result: JobResult


@dataclass(frozen=True)
class _Serve:
    client: int
    effect: Request | FetchData


_Event = _Deliver | Timer | _Result | _Serve


@dataclass
class Simulation:
    """Executes effects: network deliveries, timers, ML work, mining and point-to-point requests."""

    nodes: Sequence[ProtocolNode]
    codec: WireCodec
    network: NetworkModel
    worker: Worker
    datasets: Mapping[bytes, Dataset]  # by commitment: every dataset a node may hold or be granted
    private: Mapping[int, Dataset]  # node index -> D_Mi
    work: WorkConfig
    max_rounds: int = 1_000_000
    on_round: Callable[[int], None] | None = None
    records: list[Observation] = field(default_factory=list)
    now: int = 0
    truncated: bool = False
    _queue: list[tuple[int, int, int, _Event]] = field(default_factory=list)
    _seq: int = 0
    _cancelled: set[tuple[int, int]] = field(default_factory=set)
    _index: dict[bytes, int] = field(default_factory=dict)
    _train_data: dict[tuple[int, tuple[bytes, ...], bool], Dataset] = field(default_factory=dict)
    stores: dict[int, MemoryBlockStore] = field(default_factory=dict)  # node index -> what it persisted

    def __post_init__(self) -> None:
        self._index = {node.node_id: i for i, node in enumerate(self.nodes)}

    def store(self, i: int) -> MemoryBlockStore:
        """Node i's store: every Persist it asked for, kept across its restarts (the simulator's disk)."""
        if i not in self.stores:
            self.stores[i] = MemoryBlockStore(self.nodes[i].node_id)
        return self.stores[i]

    def restored(self, i: int, fresh: ProtocolNode) -> ProtocolNode:
        """fresh, a new incarnation of node i built by the spec, restored from node i's store (when its protocol
        persists anything); the caller installs it in nodes[i] and starts it."""
        store = self.store(i)
        store.check_owner(fresh.node_id)
        if isinstance(fresh, Restorable):
            fresh.restore(Persist(r.kind, r.key, r.payload) for r in store.records())
        return fresh

    def run(self) -> int:
        """Start every node and process events until none are left or max_rounds passes; returns the last round."""
        for i, node in enumerate(self.nodes):
            self._execute(i, node.start(0))
        while self._queue:
            at, _, i, event = heapq.heappop(self._queue)
            if isinstance(event, _Result) and (i, event.job) in self._cancelled:
                continue  # an abandoned job's result (a nonce found after its block was superseded) is no event
            if at > self.max_rounds:
                self.truncated = True
                break
            if at != self.now and self.on_round is not None:
                self.on_round(at)
            self.now = at
            self._dispatch(i, event)
        return self.now

    def _push(self, at: int, node: int, event: _Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, node, event))

    def _dispatch(self, i: int, event: _Event) -> None:
        node = self.nodes[i]
        match event:
            case _Deliver(sender, message):
                self._execute(i, node.on_message(sender, message, self.now))
            case _Result(job, result):
                self._execute(i, node.on_result(job, result, self.now))
            case _Serve():
                self._serve(i, event)
            case Timer():
                self._execute(i, node.on_timer(event, self.now))

    def _execute(self, i: int, effects: list[Effect]) -> None:
        # As raft's Ready: a step's records are written before anything it announces can be seen.
        for effect in persist_first(effects):
            match effect:
                case Broadcast(message, size_mb):
                    sender = self.nodes[i].node_id
                    # Keyed like the sidecar's: the same message draws the same hop times in sim and live.
                    wire_id = message_id(sender, self.codec.encode_message(message))
                    for dst, at in self.network.broadcast(i, size_mb, self.now, wire_id).items():
                        self._push(at, dst, _Deliver(sender, message))
                case Send(peer, message, size_mb):
                    self._send(i, peer, message, size_mb)
                case StartTimer(timer, after):
                    self._push(self.now + after, i, timer)
                case Persist(kind, key, payload):
                    self.store(i).put(kind, key, payload)
                case Record(event, data):
                    self.records.append(Observation(self.now, i, event, data))
                case CancelJob(job):
                    self._cancelled.add((i, job))
                case Compute(job, op):
                    train = self._training_data(i, op) if isinstance(op, TrainModel) else None
                    result = executor.execute(self.worker, op, self.datasets, train, self.private.get(i))
                    self._push(self.now + self.work.rounds(op), i, _Result(job, result))
                case Mine():
                    self._mine(i, effect)
                case Request() | FetchData():
                    self._fetch(i, effect)
                case _:
                    assert_never(effect)

    def _send(self, i: int, peer: bytes, message: object, size_mb: float) -> None:
        """Point to point along the shortest up route; lost if the peer is unknown, itself or unreachable."""
        dst = self._index.get(peer)
        if dst is None or dst == i:
            return
        sender = self.nodes[i].node_id
        wire_id = message_id(sender, b"send:" + peer + self.codec.encode_message(message))
        at = self.network.unicast(i, dst, size_mb, self.now, wire_id)
        if at is not None:
            self._push(at, dst, _Deliver(sender, message))

    def _training_data(self, i: int, op: TrainModel) -> Dataset:
        """D_Ti, assembled once per node and data."""
        key = (i, op.datasets, op.with_private)
        if key not in self._train_data:
            self._train_data[key] = executor.training_data(op, self.datasets, self.private.get(i))
        return self._train_data[key]

    def _mine(self, i: int, effect: Mine) -> None:
        """Real nonce search; the trial count at success decides the round at q trials per round."""
        trials, start = 0, 0
        suffix = fixed64_suffix(effect.nonce_tag)
        while trials < _MAX_MINE_TRIALS:
            nonce, used = search_nonce(effect.prefix, suffix, effect.target, start, _MINE_CHUNK)
            trials += used
            if nonce is not None:
                rounds = max(1, math.ceil(trials / self.work.hash_trials_per_round))
                self._push(self.now + rounds, i, _Result(effect.job, nonce))
                return
            start += _MINE_CHUNK
        self.records.append(Observation(self.now, i, "mining_gave_up", {"trials": trials}))

    def _fetch(self, i: int, effect: Request | FetchData) -> None:
        """Point to point, fetch_rounds each way when the network can route it (section II-D)."""
        dst = self._index.get(effect.peer)
        request_id = message_id(self.nodes[i].node_id, b"fetch:%d" % effect.job)
        reachable = dst is not None and dst != i and self.network.unicast(i, dst, 0.0, self.now, request_id) is not None
        if dst is None or not reachable:
            failed: JobResult = None if isinstance(effect, Request) else False
            self._push(self.now + self.work.fetch_rounds, i, _Result(effect.job, failed))
            return
        self._push(self.now + self.work.fetch_rounds, dst, _Serve(i, effect))

    def _serve(self, server: int, event: _Serve) -> None:
        client, effect = event.client, event.effect
        sender = self.nodes[client].node_id
        result: JobResult
        if isinstance(effect, FetchData):
            answer = self.nodes[server].on_request(sender, DataRequest(effect.commitment), self.now)
            result = isinstance(answer, DataGrant) and answer.commitment in self.datasets
        else:
            answer = self.nodes[server].on_request(sender, effect.request, self.now)
            result = answer if isinstance(answer, bytes) else None
        self._push(self.now, client, _Result(effect.job, result))
