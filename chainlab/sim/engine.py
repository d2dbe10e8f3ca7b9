"""The discrete-event driver: runs sans-IO nodes in virtual rounds, skipping idle time."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainlab import mlwork
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.pow import search_nonce
from chainlab.network.links import message_id
from chainlab.protocols.bagchain.messages import nonce_suffix, to_wire
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Effect,
    Evaluate,
    FetchDataset,
    FetchModel,
    Mine,
    Record,
    StartTimer,
    Train,
)
from chainlab.scenario import Observation
from chainlab.sim.network import NetworkModel

_MINE_CHUNK = 1 << 16
_MAX_MINE_TRIALS = 1 << 26  # a Key Block this unlucky is reported instead of searched forever


@dataclass(frozen=True)
class WorkModel:
    """How many rounds work takes in simulated time (section VII-A: time is counted in rounds)."""

    train_rounds: int = 10
    hash_trials_per_round: int = 1  # q
    # Section II-D assumes Fetch completes within an acceptable delay: it takes this many rounds whenever
    # the network can route it (a partition or a dead link still makes it fail).
    fetch_rounds: int = 1

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkModel:
        """Build from config, naming unknown keys."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown work parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Simulation:
    """Executes effects: network deliveries, timers, training, evaluation, mining and fetches."""

    nodes: Sequence[Any]
    network: NetworkModel
    worker: Worker
    datasets: Mapping[bytes, Dataset]  # by commitment: what Fetch(requester, Hash(D)) returns
    private: Mapping[int, Dataset]  # node index -> D_Mi
    work: WorkModel
    rng: np.random.Generator
    max_rounds: int = 1_000_000
    on_round: Callable[[int], None] | None = None
    records: list[Observation] = field(default_factory=list)
    now: int = 0
    _queue: list[tuple[int, int, str, int, Any]] = field(default_factory=list)
    _seq: int = 0
    _cancelled: set[tuple[int, int]] = field(default_factory=set)
    _index: dict[bytes, int] = field(default_factory=dict)
    _train_data: dict[tuple[int, bytes], Dataset] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {node.node_id: i for i, node in enumerate(self.nodes)}

    def run(self) -> int:
        """Start every node and process events until none are left; returns the last round."""
        for i, node in enumerate(self.nodes):
            self._execute(i, node.start(0))
        while self._queue:
            at, _, kind, i, payload = heapq.heappop(self._queue)
            if at > self.max_rounds:
                break
            if at != self.now and self.on_round is not None:
                self.on_round(at)
            self.now = at
            self._dispatch(kind, i, payload)
        return self.now

    def _push(self, at: int, kind: str, node: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, node, payload))

    def _dispatch(self, kind: str, i: int, payload: Any) -> None:
        node = self.nodes[i]
        if kind == "deliver":
            sender, message = payload
            self._execute(i, node.on_message(sender, message, self.now))
        elif kind == "timer":
            self._execute(i, node.on_timer(payload, self.now))
        elif kind == "result":
            job, result = payload
            if (i, job) not in self._cancelled:
                self._execute(i, node.on_result(job, result, self.now))
        elif kind == "serve":
            self._serve(i, payload)

    def _execute(self, i: int, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Broadcast):
                sender = self.nodes[i].node_id
                # Keyed like the sidecar's: the same message draws the same hop times in sim and live.
                wire_id = message_id(sender, to_wire(effect.message))
                for dst, at in self.network.broadcast(i, effect.size_mb, self.now, wire_id).items():
                    self._push(at, "deliver", dst, (sender, effect.message))
            elif isinstance(effect, StartTimer):
                self._push(self.now + effect.after, "timer", i, effect.timer)
            elif isinstance(effect, Record):
                self.records.append(Observation(self.now, i, effect.event, effect.data))
            elif isinstance(effect, CancelJob):
                self._cancelled.add((i, effect.job))
            elif isinstance(effect, Train):
                model = mlwork.train(self.worker, effect, self._local_data(i, effect.train_commitment))
                self._push(self.now + self.work.train_rounds, "result", i, (effect.job, model))
            elif isinstance(effect, Evaluate):
                self._push(self.now, "result", i, (effect.job, mlwork.evaluate(self.worker, effect, self.datasets)))
            elif isinstance(effect, Mine):
                self._mine(i, effect)
            elif isinstance(effect, FetchModel | FetchDataset):
                self._fetch(i, effect)

    def _local_data(self, i: int, train_commitment: bytes) -> Dataset:
        """D_Ti, built once per miner and task data."""
        key = (i, train_commitment)
        if key not in self._train_data:
            self._train_data[key] = mlwork.local_data(self.datasets[train_commitment], self.private.get(i))
        return self._train_data[key]

    def _mine(self, i: int, effect: Mine) -> None:
        """Real nonce search; the trial count at success decides the round at q trials per round."""
        trials, start = 0, 0
        while trials < _MAX_MINE_TRIALS:
            nonce, used = search_nonce(effect.prefix, nonce_suffix, effect.target, start, _MINE_CHUNK)
            trials += used
            if nonce is not None:
                rounds = max(1, math.ceil(trials / self.work.hash_trials_per_round))
                self._push(self.now + rounds, "result", i, (effect.job, nonce))
                return
            start += _MINE_CHUNK
        self.records.append(Observation(self.now, i, "mining_gave_up", {"trials": trials}))

    def _fetch(self, i: int, effect: FetchModel | FetchDataset) -> None:
        dst = self._index.get(effect.peer)
        fetch_id = message_id(self.nodes[i].node_id, b"fetch:%d" % effect.job)
        reachable = dst is not None and dst != i and self.network.unicast(i, dst, 0.0, self.now, fetch_id) is not None
        if dst is None or not reachable:
            self._push(self.now + self.work.fetch_rounds, "result", i, (effect.job, None))
            return
        self._push(self.now + self.work.fetch_rounds, "serve", dst, (i, effect))

    def _serve(self, server: int, payload: tuple[int, FetchModel | FetchDataset]) -> None:
        client, effect = payload
        node = self.nodes[server]
        answer: object
        if isinstance(effect, FetchModel):
            answer = node.serve_model(effect.request, self.now) if hasattr(node, "serve_model") else None
        else:
            answer = bool(node.serve_dataset(effect.commitment)) if hasattr(node, "serve_dataset") else None
        self._push(self.now, "result", client, (effect.job, answer))
