"""A tiny in-process network for BFLC cores: instant Compute with a fake learner, one-round message hops.

Weights are little-endian float64 vectors; "training" moves them halfway towards TARGET, a model's "accuracy" is
1 / (1 + distance to TARGET), so honest updates score high and noised ones low, and every op is exact.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import Timer
from chainlab.protocols.bflc import BflcNode, BflcParams
from chainlab.protocols.bflc import committee as draws
from chainlab.protocols.bflc.messages import ModelBlock, Update, genesis
from chainlab.protocols.bflc.wire import CODEC
from chainlab.protocols.effects import (
    Aggregate,
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    EvaluateModel,
    EvaluationFailed,
    JobResult,
    Perturb,
    Record,
    Send,
    StartTimer,
    TrainSteps,
)
from chainlab.protocols.spec import ModelSpec

DIM = 4
TARGET = (1.0, 1.0, 1.0, 1.0)
SPEC = ModelSpec.of("fake", {"dim": DIM})


def pack(values: Iterable[float]) -> bytes:
    values = list(values)
    return struct.pack(f"<{len(values)}d", *values)


def unpack(data: bytes) -> list[float] | None:
    if len(data) != 8 * DIM:
        return None
    return list(struct.unpack(f"<{DIM}d", data))


def accuracy(weights: list[float]) -> float:
    return 1.0 / (1.0 + math.dist(weights, TARGET))


def fake_compute(op: object) -> JobResult:
    """The fake learner."""
    match op:
        case TrainSteps(weights=w):
            v = unpack(w)
            if v is None:
                return EvaluationFailed("bad shape")
            return pack(x + 0.5 * (t - x) for x, t in zip(v, TARGET, strict=True))
        case EvaluateModel(weights=w):
            v = unpack(w)
            if v is None:
                return EvaluationFailed("bad shape")
            if not all(math.isfinite(x) for x in v):
                return EvaluationFailed("non-finite weights")
            return accuracy(v)
        case Perturb(weights=w, scale=scale, seed=seed):
            v = unpack(w)
            assert v is not None
            noise = [(sha256(seed.to_bytes(8, "little"), bytes([i]))[0] / 255.0 - 0.5) * 8 * scale for i in range(DIM)]
            return pack(x + n for x, n in zip(v, noise, strict=False))
        case Aggregate(models=models, coefficients=coefficients, rule=rule):
            vectors = [unpack(m) for m in models]
            if any(v is None for v in vectors):
                return EvaluationFailed("bad shape")
            cols = list(zip(*[v for v in vectors if v is not None], strict=False))
            if rule == "median":
                return pack(
                    sorted(c)[len(c) // 2] if len(c) % 2 else sum(sorted(c)[len(c) // 2 - 1 : len(c) // 2 + 1]) / 2
                    for c in cols
                )
            return pack(sum(c * x for c, x in zip(coefficients, col, strict=False)) for col in cols)
    raise AssertionError(f"unexpected op {op!r}")


def identities(n: int) -> list[Identity]:
    return [Identity.from_seed(f"bflc-test:{i}".encode()) for i in range(n)]


def make_genesis(ids: list[Identity], params: BflcParams) -> ModelBlock:
    keys = tuple(i.public_key for i in ids)
    members = [i.node_id for i in ids]
    if params.scored:
        seats = draws.seats(params.committee, draws.active_count(params.active, len(ids)))
        committee = draws.initial_committee(b"genesis-seed", members, seats)
    else:
        committee = (min(members),)
    return genesis(pack([0.0] * DIM), SPEC, keys, committee)


@dataclass
class Net:
    """Nodes, a clock and a queue of deliveries; records every Record effect by node index."""

    nodes: list[BflcNode]
    now: int = 0
    queue: list[tuple[int, int, int, object]] = field(default_factory=list)  # (time, seq, node index, input)
    records: list[tuple[int, Record]] = field(default_factory=list)
    cancelled: set[tuple[int, int]] = field(default_factory=set)
    sends: int = 0
    drop: set[bytes] = field(default_factory=set)  # node IDs that are silent (crashed)
    lose_first_update_to: set[bytes] = field(default_factory=set)  # members that miss every trainer's first copy
    updates_seen: set[tuple[bytes, bytes]] = field(default_factory=set)  # (uploader key, member) already lost once
    seq: int = 0

    def index(self, node_id: bytes) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.node_id == node_id)

    def push(self, at: int, target: int, item: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, target, item))

    def apply(self, i: int, effects: list[Effect]) -> None:
        node = self.nodes[i]
        for e in effects:
            match e:
                case Send(peer, message, _):
                    self.sends += 1
                    if isinstance(message, Update) and peer in self.lose_first_update_to:
                        copy = (message.uploader_key, peer)
                        if copy not in self.updates_seen:
                            self.updates_seen.add(copy)
                            continue
                    self.push(self.now + 1, self.index(peer), ("msg", node.node_id, CODEC.encode_message(message)))
                case Broadcast(message, _):
                    data = CODEC.encode_message(message)
                    for j, _other in enumerate(self.nodes):
                        if j != i:
                            self.push(self.now + 1, j, ("msg", node.node_id, data))
                case StartTimer(timer, after):
                    self.push(self.now + after, i, ("timer", timer))
                case Compute(job, op):
                    self.push(self.now, i, ("result", job, fake_compute(op)))
                case CancelJob(job):
                    self.cancelled.add((i, job))
                case Record():
                    self.records.append((i, e))
                case _:
                    raise AssertionError(f"unexpected effect {e!r}")

    def start(self) -> Net:
        for i, node in enumerate(self.nodes):
            self.apply(i, node.start(0))
        return self

    def run(self, until: int = 10_000) -> Net:
        while self.queue and self.queue[0][0] <= until:
            self.now, _, i, item = heapq.heappop(self.queue)
            node = self.nodes[i]
            if node.node_id in self.drop:
                continue
            assert isinstance(item, tuple)
            if item[0] == "msg":
                self.apply(i, node.on_message(item[1], CODEC.decode_message(item[2]), self.now))
            elif item[0] == "timer":
                timer = item[1]
                assert isinstance(timer, Timer)
                self.apply(i, node.on_timer(timer, self.now))
            elif (i, item[1]) not in self.cancelled:
                self.apply(i, node.on_result(item[1], item[2], self.now))
        return self

    def rejections(self) -> list[str]:
        return [f"{r.data['kind']}.{r.data['reason']}" for _, r in self.records if r.event == "rejected"]


def network(n: int = 10, malicious: Iterable[int] = (), **overrides: Any) -> Net:
    settings: dict[str, object] = {
        "rounds": 3,
        "active": 0.5,
        "committee": 0.4,
        "local_steps": 1,
        "blacklist_below": 0.0,
    }
    settings.update(overrides)
    params = BflcParams.from_mapping(settings)
    ids = identities(n)
    gen = make_genesis(ids, params)
    bad = set(malicious)
    colluders = frozenset(ids[i].node_id for i in bad)
    nodes = [
        BflcNode(ident, params, gen, n_samples=100 + i, malicious=i in bad, colluders=colluders)
        for i, ident in enumerate(ids)
    ]
    return Net(nodes)
