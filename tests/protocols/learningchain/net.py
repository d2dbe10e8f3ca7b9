"""A tiny LearningChain world for tests: synthetic data, honest messages and blocks, and a driver for one node."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from chainlab.learning import dp_gradients, robust_aggregation
from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import fixed64_suffix, search_nonce
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    InitModel,
    Mine,
    Record,
    Request,
    StartTimer,
)
from chainlab.protocols.learningchain import LearningChainNode, LearningChainParams
from chainlab.protocols.learningchain.messages import (
    NONCE_TAG,
    Block,
    GradientMessage,
    Header,
    canonical,
    genesis,
    messages_root,
    with_nonce,
)
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios.federated import model_spec
from chainlab.work import executor

SHAPE = dp_gradients.LinearShape(2, 10)
EASY = 2**255  # half of all hashes meet it


@cache
def data() -> tuple[Dataset, Dataset]:
    """The synthetic ball data."""
    return load_dataset("synthetic_ball")


def shard(index: int, size: int = 100) -> Dataset:
    """Agent index's 100 samples."""
    return data()[0].subset(np.arange(index * size, (index + 1) * size))


@cache
def spec() -> ModelSpec:
    """Softmax regression on the synthetic data."""
    return model_spec({"family": "softmax"}, data()[0])


@cache
def gen() -> Block:
    """B_0 with w_0 from seed 1."""
    weights = executor.execute(Worker(), InitModel(spec(), 1), {})
    assert isinstance(weights, bytes)
    return genesis(weights, spec())


def params(**changes: object) -> LearningChainParams:
    """Small-network parameters: T = 3, l = 3, an easy target, aggregation at once."""
    base = LearningChainParams(rounds=3, select=3, target=EASY, collect_rounds=0, lr=0.01)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def pseudonym(index: int, height: int) -> Identity:
    """A test holder's key for a height."""
    return Identity.from_seed(b"holder:%d:%d" % (index, height))


def message(parent: Block, index: int, *, byzantine: bool = False) -> GradientMessage:
    """Holder index's honest (or Byzantine) signed message on parent's model."""
    d = shard(index)
    vector, norm = dp_gradients.private_gradient(
        parent.weights,
        SHAPE,
        d.X,
        d.y,
        batch=0,
        clip="per_example",
        bound=1.0,
        epsilon=None,
        seed=index,
        byzantine=byzantine,
    )
    key = pseudonym(index, parent.height)
    return GradientMessage(parent.height, key.public_key, vector, norm).signed_by(key)


def mined(header: Header, target: int = EASY) -> Header:
    """The header with a nonce that meets target, signed by nobody yet."""
    nonce, _ = search_nonce(header.pow_prefix(), fixed64_suffix(NONCE_TAG), target, 0, 10_000)
    assert nonce is not None
    return with_nonce(header, nonce)


def block(
    parent: Block,
    messages: list[GradientMessage],
    miner: Identity,
    p: LearningChainParams,
    **header_changes: object,
) -> Block:
    """An honest B_{t+1} on parent (header fields may be overridden before mining), mined and signed."""
    ordered = canonical(messages)
    weights, selected = robust_aggregation.aggregate(
        parent.weights,
        SHAPE,
        tuple(m.vector for m in ordered),
        tuple(m.norm for m in ordered),
        rule=p.aggregator,
        select=p.select,
        byzantine=p.krum_f,
        lr=p.lr,
    )
    header = Header(
        parent.hash, parent.height + 1, 5, messages_root(ordered), sha256(weights), miner.public_key, selected
    )
    header = dataclasses.replace(header, **header_changes)  # type: ignore[arg-type]
    return Block(mined(header, p.target).signed_by(miner), weights, ordered)


@dataclass
class Driver:
    """Runs one node: Compute through the real executor, Mine by real nonce search, results fed back at once."""

    node: LearningChainNode
    private: Dataset
    now: int = 0
    broadcasts: list[object] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    timers: list[StartTimer] = field(default_factory=list)
    mine: bool = True  # False: Mine jobs are left pending (the node never wins)
    worker: Worker = field(default_factory=Worker)
    peers: dict[bytes, LearningChainNode] = field(default_factory=dict)  # who answers a Request, by node ID
    requests: list[Request] = field(default_factory=list)

    def run(self, effects: list[Effect]) -> None:
        """Carry out effects (and everything they lead to)."""
        queue = list(effects)
        cancelled: set[int] = set()
        while queue:
            effect = queue.pop(0)
            match effect:
                case Broadcast(message):
                    self.broadcasts.append(message)
                case Record():
                    self.records.append(effect)
                case StartTimer():
                    self.timers.append(effect)
                case CancelJob(job):
                    cancelled.add(job)
                case Compute(job, op):
                    if job in cancelled:
                        continue
                    result = executor.execute(self.worker, op, {}, None, self.private)
                    queue += self.node.on_result(job, result, self.now)
                case Request(job, peer, request):
                    self.requests.append(effect)
                    server = self.peers.get(peer)
                    answer = None if server is None else server.on_request(self.node.node_id, request, self.now)
                    queue += self.node.on_result(job, answer if isinstance(answer, bytes) else None, self.now)
                case Mine(job, prefix, target, tag):
                    if not self.mine or job in cancelled:
                        continue
                    nonce, _ = search_nonce(prefix, fixed64_suffix(tag), target, 0, 100_000)
                    assert nonce is not None
                    queue += self.node.on_result(job, nonce, self.now)

    def start(self) -> None:
        self.run(self.node.start(self.now))

    def deliver(self, msg: object, sender: bytes = b"peer") -> None:
        self.run(self.node.on_message(sender, msg, self.now))

    def fire_timers(self) -> None:
        timers, self.timers = self.timers, []
        for t in timers:
            self.run(self.node.on_timer(t.timer, self.now))

    def rejections(self) -> list[str]:
        return [f"{r.data['kind']}.{r.data['reason']}" for r in self.records if r.event == "rejected"]


def node(index: int = 0, p: LearningChainParams | None = None, **kwargs: bool) -> LearningChainNode:
    """Agent index of a 5-agent network."""
    return LearningChainNode(
        Identity.from_seed(b"agent:%d" % index),
        p or params(),
        gen(),
        holders=5,
        **kwargs,
    )
