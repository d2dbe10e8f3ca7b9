"""Marketplace nodes: every one replicates the chain and re-executes the contract on each sealed block; the sealer
orders transactions into signed blocks, the owner creates the market, publishes accuracy and reveals its test
set, and contributors add data and claim refunds or report others' data when their turn comes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity, node_id_of
from chainlab.protocols.base import Answer, DataGrant, DataRequest, NodeStatus, Timer
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.agents import Agent
from chainlab.protocols.datamarket.contract import Market, Outcome
from chainlab.protocols.datamarket.messages import (
    AddData,
    Block,
    Body,
    Chain,
    ChainRequest,
    PublishAccuracy,
    RevealTestSet,
    Transaction,
)
from chainlab.protocols.datamarket.params import AgentParams, MarketParams
from chainlab.protocols.datamarket.reasons import Kind, Reason, Rejected
from chainlab.protocols.datamarket.timers import Act, Publish, Seal
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
    Broadcast,
    Compute,
    Effect,
    EvaluatePerceptron,
    JobResult,
    ReadSample,
    Record,
    Request,
    Send,
    StartTimer,
)

MAX_HELD_BLOCKS = 256  # blocks ahead of the tip kept while catching up


@dataclass(frozen=True)
class Genesis:
    """What every node starts from: the allocation, the sealer's key, and each contributor's stream length."""

    balances: Mapping[bytes, int]
    sealer_key: bytes
    streams: Mapping[bytes, int]  # contributor ID -> samples it holds to contribute
    honest: frozenset[bytes]  # the contributors whose streams mark the end of the data (run control only)

    @property
    def sealer(self) -> bytes:
        """The sealer's ID."""
        return node_id_of(self.sealer_key)


class MarketNode:
    """A full node: the chain, the contract state, block validation by re-execution, catch-up from the sealer."""

    role: ClassVar[str] = "miner"

    def __init__(self, identity: Identity, params: MarketParams, genesis: Genesis) -> None:
        self.identity = identity
        self.params = params
        self.genesis = genesis
        self.state = Market.genesis(genesis.balances)
        self.blocks: list[Block] = []
        self.roots: list[bytes] = []
        self._held: dict[int, Block] = {}
        self._next_job = 0
        self._catching_up: int | None = None
        self._nonce = 0

    @property
    def node_id(self) -> bytes:
        """This node's ID."""
        return self.identity.node_id

    @property
    def tip(self) -> bytes:
        """The head block's hash (empty before the first block)."""
        return self.blocks[-1].hash if self.blocks else b""

    @property
    def done(self) -> bool:
        """The test set is revealed: the market is closed."""
        return self.state.revealed

    # -- inputs -------------------------------------------------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        """Nothing by default: a replica waits for blocks."""
        return []

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A block (validated by re-execution) or a transaction (the sealer's); rejections are recorded."""
        try:
            match message:
                case Block():
                    return self._on_block(message, now)
                case Transaction():
                    return self._on_transaction(message, now)
                case _:
                    return [_rejected(Kind.TX, Reason.MALFORMED, f"not a marketplace message: {type(message)}")]
        except Rejected as exc:
            return [_rejected(exc.kind, exc.reason, exc.detail)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """No timers of its own."""
        return []

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A catch-up answer: the sealer's blocks from this node's tip on."""
        if job != self._catching_up:
            return []
        self._catching_up = None
        if not isinstance(result, bytes):
            return []
        try:
            chain: Chain = encoding.decode(Chain, result)
        except (encoding.EncodingError, ValueError, TypeError):
            return [_rejected(Kind.BLOCK, Reason.BAD_CHAIN, "the catch-up answer does not decode")]
        effects: list[Effect] = []
        for block in chain.blocks:
            effects += self.on_message(self.genesis.sealer, block, now)
        return effects

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """Blocks from a number on; nothing else by default."""
        if isinstance(request, ChainRequest):
            return encoding.encode(Chain(tuple(self.blocks[request.from_number :])))
        return None

    def status(self) -> NodeStatus:
        """Height = blocks on the chain; done once the test set is revealed."""
        return NodeStatus(self.role, len(self.blocks), self.tip, done=self.done)

    # -- the chain ----------------------------------------------------------------------------------------------

    def _on_transaction(self, tx: Transaction, now: int) -> list[Effect]:
        return []  # only the sealer orders transactions

    def _on_block(self, block: Block, now: int) -> list[Effect]:
        height = len(self.blocks)
        if block.number < height:
            if self.blocks[block.number].hash == block.hash:
                return []
            raise Rejected(Kind.BLOCK, Reason.BAD_POSITION, f"block {block.number} is written already")
        if block.sealer_key != self.genesis.sealer_key:
            raise Rejected(Kind.BLOCK, Reason.NOT_SEALER)
        if not block.signature_valid(block.sealer_key):
            raise Rejected(Kind.BLOCK, Reason.BAD_SIGNATURE)
        if block.number > height:
            if len(self._held) < MAX_HELD_BLOCKS:
                self._held[block.number] = block
            return self._catch_up()
        effects = self._append(block, now)
        while (held := self._held.pop(len(self.blocks), None)) is not None:
            try:
                effects += self._append(held, now)
            except Rejected as exc:
                effects.append(_rejected(exc.kind, exc.reason, exc.detail))
        return effects

    def _catch_up(self) -> list[Effect]:
        if self._catching_up is not None:
            return []
        self._next_job += 1
        self._catching_up = self._next_job
        return [Request(self._next_job, self.genesis.sealer, ChainRequest(len(self.blocks)))]

    def _append(self, block: Block, now: int) -> list[Effect]:
        """Validate a block at the tip by re-executing it; keep it, or rebuild the state and reject it."""
        if block.prev != self.tip:
            raise Rejected(Kind.BLOCK, Reason.BAD_POSITION, "does not extend the tip")
        if self.blocks and block.time <= self.blocks[-1].time:
            raise Rejected(Kind.BLOCK, Reason.BAD_TIME, f"{block.time} <= {self.blocks[-1].time}")
        prev_root = self.roots[-1] if self.roots else b""
        outcomes = self.state.execute_block(block)
        root = self.state.state_root(prev_root)
        if root != block.state_root:
            self._rebuild()
            raise Rejected(Kind.BLOCK, Reason.BAD_STATE_ROOT, f"block {block.number}")
        self.blocks.append(block)
        self.roots.append(root)
        return self._after_block(block, outcomes, now)

    def _rebuild(self) -> None:
        """The state as the kept chain leaves it (after executing a block that turned out invalid)."""
        state = Market.genesis(self.genesis.balances)
        for block in self.blocks:
            state.execute_block(block)
        self.state = state

    def _after_block(self, block: Block, outcomes: list[Outcome], now: int) -> list[Effect]:
        return []

    # -- helpers ------------------------------------------------------------------------------------------------

    def _transaction(self, body: Body, value: int = 0) -> Send:
        """A signed transaction to the sealer."""
        self._nonce += 1
        tx = Transaction.of(self.identity.public_key, self._nonce, body, value).signed_by(self.identity)
        return Send(self.genesis.sealer, tx, self.params.tx_size_mb)

    def _compute(self, op: ReadSample | EvaluatePerceptron) -> tuple[int, Compute]:
        self._next_job += 1
        return self._next_job, Compute(self._next_job, op)


class SealerNode(MarketNode):
    """The PoA sealer: orders pending transactions into a signed block every block_rounds, only when there are any."""

    role: ClassVar[str] = "validator"

    def __init__(self, identity: Identity, params: MarketParams, genesis: Genesis) -> None:
        super().__init__(identity, params, genesis)
        self._pending: list[Transaction] = []
        self._pending_hashes: set[bytes] = set()
        self._sealing = False

    def _on_transaction(self, tx: Transaction, now: int) -> list[Effect]:
        if tx.hash in self._pending_hashes or tx.hash in self.state.seen_txs:
            return []
        if not tx.signature_valid(tx.sender_key):
            raise Rejected(Kind.TX, Reason.BAD_SIGNATURE, "not ordered")
        self._pending.append(tx)
        self._pending_hashes.add(tx.hash)
        if self._sealing:
            return []
        self._sealing = True
        return [StartTimer(Seal(), self.params.block_rounds)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Seal the pending transactions at chain time now."""
        if not isinstance(timer, Seal):
            return []
        self._sealing = False
        if not self._pending:
            return []
        txs, self._pending, self._pending_hashes = tuple(self._pending), [], set()
        prev_root = self.roots[-1] if self.roots else b""
        draft = Block(len(self.blocks), self.tip, now, self.identity.public_key, txs, b"")
        outcomes = self.state.execute_block(draft)
        root = self.state.state_root(prev_root)
        block = Block(draft.number, draft.prev, now, draft.sealer_key, txs, root).signed_by(self.identity)
        self.blocks.append(block)
        self.roots.append(root)
        effects: list[Effect] = [Broadcast(block, self.params.tx_size_mb * max(1, len(txs)))]
        effects.append(Record("block_sealed", {"number": block.number, "txs": len(txs)}))
        for outcome in outcomes:
            effects += _outcome_records(outcome, self.state)
        return effects


class OwnerNode(MarketNode):
    """The model owner (user A): creates the market, publishes accuracy on its hidden test set, reveals it at last."""

    role: ClassVar[str] = "requester"

    def __init__(
        self, identity: Identity, params: MarketParams, genesis: Genesis, create: Transaction, test: bytes
    ) -> None:
        super().__init__(identity, params, genesis)
        self.create = create
        self.test = test  # the commitment of the test set this node holds
        self._evaluating: int | None = None
        self._end: int | None = None  # when the market closes (the data used up, or days)
        self._revealing = False
        self._added: dict[bytes, int] = {}

    def start(self, now: int) -> list[Effect]:
        """Send CreateMarket; the accuracy schedule starts with it."""
        return [Send(self.genesis.sealer, self.create, self.params.tx_size_mb), StartTimer(Publish(), 1)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Measure the on-chain model, then publish; close the market once it is due."""
        if not isinstance(timer, Publish) or self.done:
            return []
        if self._end is None and now >= self.params.rounds(self.params.days):
            self._end = now
        effects: list[Effect] = []
        if self.state.terms is not None and self._evaluating is None:
            job, compute = self._compute(
                EvaluatePerceptron(perceptron.encode_weights(self.state.model.averaged()), self.test)
            )
            self._evaluating = job
            effects.append(compute)
        closing = self._end is not None and now >= self._end
        if closing and self.state.terms is not None:
            if not self._revealing:
                self._revealing = True
                effects.append(self._transaction(RevealTestSet(self.test)))
            return [*effects, StartTimer(Publish(), max(1, self.params.block_rounds * 4))]
        every = self.params.rounds(self.params.accuracy_every_days)
        until = every if self._end is None else max(1, min(every, self._end - now))
        return [*effects, StartTimer(Publish(), until)]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """The accuracy on the test set becomes a PublishAccuracy transaction."""
        if job != self._evaluating:
            return super().on_result(job, result, now)
        self._evaluating = None
        if not isinstance(result, float):
            return [Record("evaluation_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
        return [self._transaction(PublishAccuracy(0, result)), Record("accuracy", {"accuracy": result})]

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """The test set, once revealed, to anyone who re-checks the published accuracies; blocks as any node."""
        if isinstance(request, DataRequest):
            return DataGrant(request.commitment) if self.done and request.commitment == self.test else None
        return super().on_request(sender, request, now)

    def _after_block(self, block: Block, outcomes: list[Outcome], now: int) -> list[Effect]:
        """Count the contributions per contributor: the market closes once the honest streams are used up."""
        for outcome in outcomes:
            if outcome.tx.add is not None:
                sender = outcome.tx.sender
                self._added[sender] = self._added.get(sender, 0) + 1
        streams = self.genesis.streams
        ending = self.genesis.honest or frozenset(streams)
        if self._end is None and all(self._added.get(c, 0) >= streams[c] for c in ending):
            self._end = block.time + self.params.rounds(self.params.settle_days) if self.params.settle_days else now
        if self._revealing and self.done:
            return [Record("done", {"blocks": len(self.blocks)})]
        return []


class ContributorNode(MarketNode):
    """A contributor (user C) that also verifies (user D): DRT's good or bad agent."""

    role: ClassVar[str] = "miner"

    def __init__(
        self, identity: Identity, params: MarketParams, genesis: Genesis, agent: AgentParams, seed: bytes
    ) -> None:
        super().__init__(identity, params, genesis)
        self.agent = Agent(agent, params, seed, identity.node_id)
        self.stream = genesis.streams.get(identity.node_id, 0)
        self.next_sample = 0
        self._reading: dict[int, tuple[int, int]] = {}  # job -> (turn, willing)

    def start(self, now: int) -> list[Effect]:
        """The first turn after one wait."""
        return [StartTimer(Act(0), self.agent.wait(0))]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """A turn: claims first, then maybe the next sample; stop once the market is closed or the run is over."""
        if not isinstance(timer, Act) or self.done or now >= self.params.rounds(self.params.days) + self._grace():
            return []
        turn = timer.turn
        effects: list[Effect] = [StartTimer(Act(turn + 1), self.agent.wait(turn + 1))]
        if self.state.terms is None:
            return effects
        effects += [self._transaction(claim) for claim in self.agent.claims(self.state, now)]
        if self.next_sample >= self.stream or self._reading:
            return effects
        accuracy = self.state.accuracies[-1][2] if self.state.accuracies else 1.0
        if not self.agent.wants_to_add(turn, accuracy):
            return effects
        willing = min(self.agent.willing(turn), self.state.balances.get(self.node_id, 0))
        if willing < self.state.cost(now + self.params.block_rounds):
            return [*effects, Record("addition_skipped", {"willing": willing})]
        job, compute = self._compute(ReadSample(PRIVATE, self.next_sample))
        self.next_sample += 1
        self._reading[job] = (turn, willing)
        return [*effects, compute]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """The sample read: label it (flipped by a bad agent) and add it under the deposit it is willing to pay."""
        read = self._reading.pop(job, None)
        if read is None:
            return super().on_result(job, result, now)
        if not isinstance(result, bytes) or len(result) < 2:
            return [Record("sample_unreadable", {"detail": getattr(result, "detail", type(result).__name__)})]
        turn, willing = read
        x, y = result[:-1], result[-1]
        return [self._transaction(AddData(x, self.agent.label(turn, y)), value=willing)]

    def _grace(self) -> int:
        return self.params.rounds(self.params.tau2_days) if self.params.settle_days else 0


def seed_of(seed: int) -> bytes:
    """The agents' hash seed from the experiment seed."""
    return sha256(f"{seed}:datamarket:agents".encode())


def _outcome_records(outcome: Outcome, state: Market) -> list[Effect]:
    """The sealer's records of one transaction: a rejection, or what it did (for metrics), and balances moved."""
    if not outcome.accepted:
        return [_rejected(outcome.kind, outcome.reason, outcome.detail)]
    sender = outcome.tx.sender
    data: dict[str, str | int | float | bool | None] = {
        "kind": outcome.kind,
        "sender": sender.hex()[:16],
        "amount": outcome.amount,
        "reward": outcome.reward,
    }
    return [
        Record("tx_applied", data),
        Record("balance", {"account": sender.hex()[:16], "balance": state.balances.get(sender, 0)}),
    ]


def _rejected(kind: str, reason: str, detail: str) -> Record:
    return Record(RECORD_REJECTED, {"kind": str(kind), "reason": str(reason), "detail": detail})
