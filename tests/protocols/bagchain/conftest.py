"""An honest BagChain run to take blocks from, and a harness that drives one node synchronously."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from chainlab.learning.worker import Worker
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import search_nonce
from chainlab.protocols.bagchain import BagChainParams, FullNode, Miner, rules
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    Message,
    MiniBlock,
    nonce_suffix,
)
from chainlab.protocols.bagchain.timers import ExpireKeyBlock
from chainlab.protocols.base import Timer
from chainlab.protocols.effects import Compute, EvaluateEnsemble, FetchData, JobResult, Record, Request, StartTimer
from chainlab.work import executor
from tests.bagchain_net import Experiment, Network

TARGET = 2**252 - 1  # 1 in 16 hashes: tampered Key Blocks are re-mined in microseconds

# Every rejection reason a Harness has recorded, in order (append-only): a test that claims to prove a reason
# (`proves` in test_validation.py) checks that the reason was added while it ran.
REJECTED: list[str] = []


@dataclass
class Honest:
    """Blocks and parties of a finished honest run (3 miners, 2 tasks, no CFS); the session-wide `honest` fixture
    (tests/conftest.py) holds one, so tests read it and never change it."""

    net: Network
    worker: Worker

    @property
    def params(self) -> BagChainParams:
        return self.net.miners[0].params

    @property
    def observer(self) -> Miner:
        return self.net.miners[0]

    def key_block(self, height: int) -> KeyBlock:
        entry = self.observer.chain.main_chain()[height]
        return self.observer.key_blocks[entry.block_hash]

    def miniblocks(self, height: int) -> list[MiniBlock]:
        return sorted((mb for mb in self.observer.miniblocks.values() if mb.height == height), key=lambda m: m.hash)

    def ensembles(self, height: int) -> list[EnsembleBlock]:
        return sorted((eb for eb in self.observer.ensembles.values() if eb.height == height), key=lambda e: e.hash)

    def release(self, height: int, kind: DatasetKind) -> DatasetRelease:
        return self.net.requester.released[(height, kind)]

    def identity_of(self, node_id: bytes) -> Identity:
        return next(m.identity for m in self.net.miners if m.node_id == node_id)

    def history(self, height: int) -> list[Message]:
        """Everything a node needs, in arrival order, to validate KB_height and what came before it."""
        out: list[Message] = list(self.net.tasks)
        for h in range(1, height + 1):
            out += self.miniblocks(h)
            out.append(self.release(h, DatasetKind.VALIDATION))
            out += self.ensembles(h)
            out.append(self.release(h, DatasetKind.TEST))
            if h < height:
                out.append(self.key_block(h))
        return out


def honest_experiment() -> Experiment:
    return Experiment.from_mapping(
        {
            "name": "honest",
            "seed": 11,
            "dataset": "digits",
            "model": {"family": "decision_tree"},
            "metric_min": 0.3,
            "tasks": 2,
            "miners": 3,
            "partition": {"kappa": 0.1, "zeta": 0.25},
            "network": {"kind": "full", "delay_rounds": 1},
            "protocol": {"phase1_rounds": 20, "phase2_rounds": 10, "target": str(TARGET), "queue_length": 2},
            "work": {"train_rounds": 2, "hash_trials_per_round": 1},
        }
    )


@dataclass
class FakeServer:
    """A peer that serves one model to anyone (what a plagiarist or a broken miner would do)."""

    node_id: bytes
    model: bytes | None

    def on_request(self, sender: bytes, request: object, now: int) -> bytes | None:
        return self.model


@dataclass
class Harness:
    """Drives one node: every job completes at once, with the real learning worker. Each delivery is a round of its
    own unless several come in one_round; a zero-delay timer fires when its round's arrivals are in, as the
    simulator fires it."""

    node: FullNode
    honest: Honest
    servers: dict[bytes, Any] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    now: int = 0
    unreachable_data: set[bytes] = field(default_factory=set)  # dataset fetches that fail
    stalled_data: set[bytes] = field(default_factory=set)  # evaluations on these datasets never finish

    effects: list[Any] = field(default_factory=list)  # every effect the node returned, in order
    _due: list[Timer] = field(default_factory=list)  # zero-delay timers waiting for the round's end

    def __post_init__(self) -> None:
        for miner in self.honest.net.miners:
            self.servers.setdefault(miner.node_id, miner)
        self._run(self.node.start(self.now))

    def deliver(self, sender: bytes, *messages: object) -> None:
        """As send, from a named peer (a node catching up asks the sender of what it cannot place)."""
        for message in messages:
            self.now += 1
            self._run(self.node.on_message(sender, message, self.now))

    def fire(self, timer: Timer) -> None:
        self._run(self.node.on_timer(timer, self.now))

    def one_round(self, *messages: object) -> None:
        """Deliver messages in one new round; its zero-delay timers wait for end_round."""
        self.now += 1
        for message in messages:
            self._run(self.node.on_message(b"peer", message, self.now), end_round=False)

    def end_round(self) -> None:
        """The round's arrivals are in: fire its zero-delay timers (and those they start)."""
        while self._due:
            self._run(self.node.on_timer(self._due.pop(0), self.now), end_round=False)

    def send(self, *messages: object) -> None:
        for item in messages:
            for message in item if isinstance(item, Sequence) else [item]:
                self.now += 1
                self._run(self.node.on_message(b"peer", message, self.now))

    def expire_all(self) -> None:
        for timer in [t for t in self.timers if isinstance(t, ExpireKeyBlock)]:
            self._run(self.node.on_timer(timer, self.now))

    def rejections(self) -> list[tuple[str, str]]:
        return [(str(r.data["kind"]), str(r.data["reason"])) for r in self.records if r.event == "rejected"]

    def reason_for(self, message: Message) -> str | None:
        hits = [
            r.data["reason"] for r in self.records if r.event == "rejected" and r.data["block"] == message.hash.hex()
        ]
        return str(hits[0]) if hits else None

    def _run(self, effects: list[Any], *, end_round: bool = True) -> None:
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            self.effects.append(effect)
            if isinstance(effect, Record):
                self.records.append(effect)
                if effect.event == "rejected":
                    REJECTED.append(str(effect.data["reason"]))
            elif isinstance(effect, StartTimer):
                self.timers.append(effect.timer)
                if effect.after == 0:
                    self._due.append(effect.timer)
            elif isinstance(effect, Compute) and isinstance(effect.op, EvaluateEnsemble):
                if effect.op.dataset in self.stalled_data:
                    continue
                queue += self.node.on_result(effect.job, self._evaluate(effect.op), self.now)
            elif isinstance(effect, Request):
                server = self.servers.get(effect.peer)
                answer = server.on_request(b"peer", effect.request, self.now) if server else None
                queue += self.node.on_result(effect.job, answer, self.now)
            elif isinstance(effect, FetchData):
                held = effect.commitment in self.honest.net.datasets and effect.commitment not in self.unreachable_data
                queue += self.node.on_result(effect.job, held, self.now)
        if end_round:
            self.end_round()

    def _evaluate(self, op: EvaluateEnsemble) -> JobResult:
        return executor.execute(self.honest.worker, op, self.honest.net.datasets)


def before_phase_two(miner: Miner) -> Miner:
    """A copy of a finished run's miner that has seen no dataset release (as before Phase II); the run is untouched."""
    fresh = copy.deepcopy(miner)
    fresh.releases.clear()
    return fresh


def validator(honest: Honest, **overrides: Any) -> FullNode:
    params = dataclasses.replace(honest.params, **overrides)
    return FullNode(Identity.from_seed(b"validator-under-test"), params, honest.observer.genesis)


@pytest.fixture
def harness(honest: Honest) -> Harness:
    return Harness(validator(honest), honest)


def remine(kb: KeyBlock, identity: Identity, **changes: Any) -> KeyBlock:
    """A Key Block with changes, a fresh valid nonce and its producer's signature."""
    draft = dataclasses.replace(kb, nonce=None, signature=b"", **changes)
    nonce, _ = search_nonce(draft.pow_prefix(), nonce_suffix, TARGET, 0, 1 << 20)
    assert nonce is not None
    return dataclasses.replace(draft, nonce=nonce).signed_by(identity)


Signed = TypeVar("Signed", MiniBlock, EnsembleBlock, KeyBlock, DatasetRelease)


def resign(block: Signed, identity: Identity, **changes: Any) -> Signed:
    return dataclasses.replace(block, signature=b"", **changes).signed_by(identity)


def sibling_key_block(honest: Honest) -> KeyBlock:
    """A valid competitor of KB_1: the same ranking, produced and rewarded by another miner."""
    kb = honest.key_block(1)
    other = next(m for m in honest.net.miners if m.node_id != kb.miner_id)
    eb = honest.observer.ensembles[kb.ranking[0].ensemble_block]
    winners = [honest.observer.miniblocks[h] for h in eb.miniblocks]
    task = honest.net.tasks[0]
    rewards = rules.allocate_rewards(task.fee, winners, other.node_id, honest.params.key_block_reward)
    return remine(
        kb,
        other.identity,
        miner_key=other.identity.public_key,
        rewards=rewards,
        merkle_root=rules.rewards_root(rewards),
    )
