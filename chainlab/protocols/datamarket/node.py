"""Marketplace nodes: every one replicates the chain and re-executes the contract on each sealed block; the sealer
orders transactions into signed blocks, the owner creates the market, publishes accuracy and reveals its test
set, contributors add data (inline, or a sample file by CID) and claim refunds or report others' data when their
turn comes, and off-chain trainers upload models trained on the CID data (model lineage).

Content a block names (a sample file, a model file, the revealed test set) is read from storage by every replica
before it executes the block (Get); blocks wait in order until their content is in.

Every node persists each block it keeps and each content its blocks read, and a restarted node re-executes them
(restore): the sealer so, above all, since no one else can seal the next block. What a role keeps beyond the chain
(the sealer's unsealed transactions, an agent's plans) is not persisted: a restart loses it, as a crash would."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity, node_id_of
from chainlab.protocols.base import Answer, DataGrant, DataRequest, NodeStatus, Timer
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.agents import Agent
from chainlab.protocols.datamarket.contract import Market, Outcome, addresses
from chainlab.protocols.datamarket.messages import (
    AddData,
    Block,
    Body,
    Chain,
    ChainRequest,
    PublishAccuracy,
    RevealTestSet,
    Transaction,
    UploadModel,
)
from chainlab.protocols.datamarket.params import AgentParams, MarketParams
from chainlab.protocols.datamarket.reasons import Kind, Reason, Rejected
from chainlab.protocols.datamarket.timers import Act, Publish, Refetch, Seal, Train
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
    Broadcast,
    Compute,
    Effect,
    EvaluatePerceptron,
    Get,
    JobFailed,
    JobResult,
    Persist,
    Put,
    ReadSample,
    ReadSamples,
    Record,
    Request,
    Send,
    StartTimer,
)

MAX_HELD_BLOCKS = 256  # blocks ahead of the tip kept while catching up
WHOLE_DATASET = 2**31  # ReadSamples' count for every sample of a dataset
REFETCH_ROUNDS = 10  # wait before asking storage again after a failed Get
# Persist record kinds: a block kept (by hash), content a block read (by address), an address storage had nothing at.
BLOCK_RECORD, CONTENT_RECORD, MISSING_RECORD = "market_block", "market_content", "market_missing"


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
        self.contents: dict[bytes, bytes | None] = {}  # what storage answered for each address a block named
        self._queue: list[Block] = []  # blocks after the chain, in order, waiting for their content
        self._getting: dict[int, bytes] = {}  # Get job -> address
        self._sent: dict[bytes, int] = {}  # this node's transactions not yet in a block -> the round they were sent
        self.persisting = True  # see Restorable.persisting

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
        """Ask storage again for content a Get failed to read."""
        if isinstance(timer, Refetch):
            return self._get([timer.address])
        return []

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """Content a block names (then execute what waited for it), or a catch-up answer: the sealer's blocks."""
        address = self._getting.pop(job, None)
        if address is not None:
            if result is not None and not isinstance(result, bytes):
                detail = result.detail if isinstance(result, JobFailed) else type(result).__name__
                return [Record("get_failed", {"detail": detail}), StartTimer(Refetch(address), REFETCH_ROUNDS)]
            self.contents[address] = result
            return self._persist_content(address, result) + self._on_content(now)
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

    def restore(self, records: Iterable[Persist]) -> None:
        """Take back the chain this node kept: the content its blocks read, then each block re-executed in order
        (a block whose state root no longer comes out, a store from another run, ends the chain there)."""
        blocks: list[Block] = []
        for record in records:
            if record.kind == CONTENT_RECORD:
                self.contents[record.key] = record.payload
            elif record.kind == MISSING_RECORD:
                self.contents[record.key] = None
            elif record.kind == BLOCK_RECORD:
                blocks.append(encoding.decode(Block, record.payload))
        for block in sorted(blocks, key=lambda b: b.number):
            if block.number != len(self.blocks) or block.prev != self.tip or self._re_execute(block) is None:
                break
        mine = [tx.nonce for block in self.blocks for tx in block.txs if tx.sender_key == self.identity.public_key]
        self._nonce = max(mine, default=0)  # a transaction of this node with a used nonce would be a replay

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
        height = len(self.blocks) + len(self._queue)
        if block.number < height:
            known = (self.blocks + self._queue)[block.number]
            if known.hash == block.hash:
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
        self._queue.append(block)
        while (held := self._held.pop(len(self.blocks) + len(self._queue), None)) is not None:
            self._queue.append(held)
        return self._drain(now)

    def _drain(self, now: int) -> list[Effect]:
        """Execute the waiting blocks in order while their content is in; Get what the first one still lacks."""
        effects: list[Effect] = []
        while self._queue:
            missing = [a for a in addresses(self._queue[0].txs) if a not in self.contents]
            if missing:
                return effects + self._get(missing)
            block = self._queue.pop(0)
            try:
                effects += self._append(block, now)
            except Rejected as exc:
                effects.append(_rejected(exc.kind, exc.reason, exc.detail))
                self._queue.clear()  # the rest extends a block this node does not keep
        return effects

    def _get(self, wanted: list[bytes]) -> list[Effect]:
        """Get each address not asked for yet."""
        asked = set(self._getting.values())
        effects: list[Effect] = []
        for address in wanted:
            if address not in asked:
                self._next_job += 1
                self._getting[self._next_job] = address
                effects.append(Get(self._next_job, address))
        return effects

    def _on_content(self, now: int) -> list[Effect]:
        """Content arrived: execute the blocks that waited for it."""
        return self._drain(now)

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
        outcomes = self._re_execute(block)
        if outcomes is None:
            raise Rejected(Kind.BLOCK, Reason.BAD_STATE_ROOT, f"block {block.number}")
        included: list[Effect] = self._persist_block(block)
        for outcome in outcomes:
            sent = self._sent.pop(outcome.tx.hash, None)
            if sent is not None:  # Table 1's "transaction included": sent until this replica holds its block
                included.append(Record("tx_included", {"kind": outcome.kind, "rounds": now - sent}))
        return included + self._after_block(block, outcomes, now)

    def _re_execute(self, block: Block) -> list[Outcome] | None:
        """Execute a block on the state and keep it if its state root comes out; None (and the state as the kept
        chain leaves it) if not."""
        outcomes = self.state.execute_block(block, self.contents)
        root = self.state.state_root(self.roots[-1] if self.roots else b"")
        if root != block.state_root:
            self._rebuild()
            return None
        self.blocks.append(block)
        self.roots.append(root)
        return outcomes

    def _rebuild(self) -> None:
        """The state as the kept chain leaves it (after executing a block that turned out invalid)."""
        state = Market.genesis(self.genesis.balances)
        for block in self.blocks:
            state.execute_block(block, self.contents)
        self.state = state

    def _after_block(self, block: Block, outcomes: list[Outcome], now: int) -> list[Effect]:
        return []

    # -- helpers ------------------------------------------------------------------------------------------------

    def _persist_block(self, block: Block) -> list[Effect]:
        return [Persist(BLOCK_RECORD, block.hash, block.encode())] if self.persisting else []

    def _persist_content(self, address: bytes, content: bytes | None) -> list[Effect]:
        if not self.persisting:
            return []
        if content is None:
            return [Persist(MISSING_RECORD, address, b"")]
        return [Persist(CONTENT_RECORD, address, content)]

    def _transaction(self, body: Body, now: int, value: int = 0) -> Send:
        """A signed transaction to the sealer, sent at now (its inclusion time is recorded once a block has it)."""
        self._nonce += 1
        tx = Transaction.of(self.identity.public_key, self._nonce, body, value).signed_by(self.identity)
        self._sent[tx.hash] = now
        return Send(self.genesis.sealer, tx, self.params.tx_size_mb, tx.data_mb)

    def _compute(self, op: ReadSample | ReadSamples | EvaluatePerceptron) -> tuple[int, Compute]:
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
        self._batch: tuple[Transaction, ...] | None = None  # the next block's transactions, waiting for content

    def _on_transaction(self, tx: Transaction, now: int) -> list[Effect]:
        if tx.hash in self._pending_hashes or tx.hash in self.state.seen_txs:
            return []
        if not tx.signature_valid(tx.sender_key):
            raise Rejected(Kind.TX, Reason.BAD_SIGNATURE, "not ordered")
        self._pending.append(tx)
        self._pending_hashes.add(tx.hash)
        if self._sealing or self._batch is not None:
            return []
        self._sealing = True
        return [StartTimer(Seal(), self.params.block_rounds)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Take the pending transactions into the next block; it is sealed once the content they name is in."""
        if not isinstance(timer, Seal):
            return super().on_timer(timer, now)
        self._sealing = False
        if not self._pending:
            return []
        self._batch, self._pending, self._pending_hashes = tuple(self._pending), [], set()
        return self._seal(now)

    def _on_content(self, now: int) -> list[Effect]:
        return self._seal(now) if self._batch is not None else []

    def _seal(self, now: int) -> list[Effect]:
        """Seal the batch at chain time now, executing it as every replica will; first Get what it names."""
        assert self._batch is not None
        missing = [a for a in addresses(self._batch) if a not in self.contents]
        if missing:
            return self._get(missing)
        txs, self._batch = self._batch, None
        prev_root = self.roots[-1] if self.roots else b""
        draft = Block(len(self.blocks), self.tip, now, self.identity.public_key, txs, b"")
        outcomes = self.state.execute_block(draft, self.contents)
        root = self.state.state_root(prev_root)
        block = Block(draft.number, draft.prev, now, draft.sealer_key, txs, root).signed_by(self.identity)
        self.blocks.append(block)
        self.roots.append(root)
        size = self.params.tx_size_mb * max(1, len(txs))
        effects: list[Effect] = [*self._persist_block(block), Broadcast(block, size, sum(tx.data_mb for tx in txs))]
        effects.append(Record("block_sealed", {"number": block.number, "txs": len(txs)}))
        for outcome in outcomes:
            effects += _outcome_records(outcome, self.state)
        if self._pending:
            self._sealing = True
            effects.append(StartTimer(Seal(), self.params.block_rounds))
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
        self._judging: dict[int, int] = {}  # evaluation job -> uploaded model
        self._end: int | None = None  # when the market closes (the data used up, or days)
        self._revealing = False
        self._reading_test: int | None = None  # the job reading the test set's sample file
        self._putting_test: int | None = None  # the job putting it to storage
        self._added: dict[bytes, int] = {}  # samples added per contributor

    def start(self, now: int) -> list[Effect]:
        """Send CreateMarket; the accuracy schedule starts with it."""
        return [Send(self.genesis.sealer, self.create, self.params.tx_size_mb), StartTimer(Publish(), 1)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Measure the on-chain model, then publish; close the market once it is due."""
        if not isinstance(timer, Publish):
            return super().on_timer(timer, now)
        if self.done:
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
                # The reveal: the test set's sample file goes to storage, and its address on chain.
                self._revealing = True
                self._reading_test, compute = self._compute(ReadSamples(self.test, 0, WHOLE_DATASET))
                effects.append(compute)
            return [*effects, StartTimer(Publish(), max(1, self.params.block_rounds * 4))]
        every = self.params.rounds(self.params.accuracy_every_days)
        until = every if self._end is None else max(1, min(every, self._end - now))
        return [*effects, StartTimer(Publish(), until)]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """An accuracy on the test set becomes a PublishAccuracy transaction; the test set's file goes to storage
        and its address into RevealTestSet."""
        if job == self._reading_test:
            self._reading_test = None
            if not isinstance(result, bytes):
                self._revealing = False  # the next Publish turn tries again
                return [Record("reveal_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
            self._next_job += 1
            self._putting_test = self._next_job
            return [Put(self._next_job, result)]
        if job == self._putting_test:
            self._putting_test = None
            if not isinstance(result, bytes):
                self._revealing = False
                return [Record("reveal_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
            return [self._transaction(RevealTestSet(result), now), Record("test_set_put", {"address": result.decode()})]
        model = self._judging.pop(job, None)
        if model is not None:
            if not isinstance(result, float):
                return [Record("evaluation_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
            return [
                self._transaction(PublishAccuracy(model, result), now),
                Record("upload_accuracy", {"accuracy": result}),
            ]
        if job != self._evaluating:
            return super().on_result(job, result, now)
        self._evaluating = None
        if not isinstance(result, float):
            return [Record("evaluation_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
        return [self._transaction(PublishAccuracy(0, result), now), Record("accuracy", {"accuracy": result})]

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """The test set, once revealed, to anyone who re-checks the published accuracies; blocks as any node."""
        if isinstance(request, DataRequest):
            return DataGrant(request.commitment) if self.done and request.commitment == self.test else None
        return super().on_request(sender, request, now)

    def _after_block(self, block: Block, outcomes: list[Outcome], now: int) -> list[Effect]:
        """Count the samples added per contributor: the market closes once the honest streams are used up; measure
        each uploaded model on the hidden test set."""
        effects: list[Effect] = []
        for outcome in outcomes:
            add = outcome.tx.add
            if add is not None:  # accepted or not: the samples are spent from the sender's stream either way
                sender = outcome.tx.sender
                self._added[sender] = self._added.get(sender, 0) + self._samples_in(add)
            elif outcome.tx.upload is not None and outcome.accepted:
                effects += self._judge(outcome.record, outcome.tx.upload)
        streams = self.genesis.streams
        ending = self.genesis.honest or frozenset(streams)
        if self._end is None and all(self._added.get(c, 0) >= streams[c] for c in ending):
            self._end = block.time + self.params.rounds(self.params.settle_days) if self.params.settle_days else now
        if self._revealing and self.done:
            return [*effects, Record("done", {"blocks": len(self.blocks)})]
        return effects

    def _samples_in(self, add: AddData) -> int:
        """The samples an addition spends: one inline, or as many as its sample file holds."""
        content = self.contents.get(add.cid) if add.cid else None
        terms = self.state.terms
        if content is None or terms is None:
            return 1
        try:
            return len(perceptron.decode_samples(content, terms.features, self.state.classes, len(content)))
        except ValueError:
            return 1

    def _judge(self, model: int, upload: UploadModel) -> list[Effect]:
        """Evaluate an uploaded model (its file, as this replica read it to execute the upload)."""
        terms, content = self.state.terms, self.contents.get(upload.weights_cid)
        if terms is None or content is None:
            return []
        weights = perceptron.decode_model(content, terms.features, terms.classes).averaged()
        job, compute = self._compute(EvaluatePerceptron(perceptron.encode_weights(weights), self.test))
        self._judging[job] = model
        return [compute]


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
        # A job reading or putting a sample file -> (turn, willing, whether it is the Put).
        self._filing: dict[int, tuple[int, int, bool]] = {}

    def start(self, now: int) -> list[Effect]:
        """The first turn after one wait."""
        return [StartTimer(Act(0), self.agent.wait(0))]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """A turn: claims first, then maybe the next sample; stop once the market is closed or the run is over."""
        if not isinstance(timer, Act):
            return super().on_timer(timer, now)
        if self.done or now >= self.params.rounds(self.params.days) + self._grace():
            return []
        turn = timer.turn
        effects: list[Effect] = [StartTimer(Act(turn + 1), self.agent.wait(turn + 1))]
        if self.state.terms is None:
            return effects
        effects += [self._transaction(claim, now) for claim in self.agent.claims(self.state, now)]
        if self.next_sample >= self.stream or self._reading or self._filing:
            return effects
        accuracy = self.state.accuracies[-1][2] if self.state.accuracies else 1.0
        if not self.agent.wants_to_add(turn, accuracy):
            return effects
        willing = min(self.agent.willing(turn), self.state.balances.get(self.node_id, 0))
        if willing < self.state.cost(now + self.params.block_rounds):
            return [*effects, Record("addition_skipped", {"willing": willing})]
        if self.agent.by_cid(turn):
            count = min(self.params.cid_samples, self.stream - self.next_sample)
            job, compute = self._compute(ReadSamples(PRIVATE, self.next_sample, count))
            self.next_sample += count
            self._filing[job] = (turn, willing, False)
            return [*effects, compute]
        job, compute = self._compute(ReadSample(PRIVATE, self.next_sample))
        self.next_sample += 1
        self._reading[job] = (turn, willing)
        return [*effects, compute]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """The sample read: label it (flipped by a bad agent) and add it under the deposit it is willing to pay."""
        filing = self._filing.pop(job, None)
        if filing is not None:
            return self._on_file(filing, result, now)
        read = self._reading.pop(job, None)
        if read is None:
            return super().on_result(job, result, now)
        if not isinstance(result, bytes) or len(result) < 2:
            return [Record("sample_unreadable", {"detail": getattr(result, "detail", type(result).__name__)})]
        turn, willing = read
        x, y = result[:-1], result[-1]
        return [self._transaction(AddData(x, self.agent.label(turn, y, self.state.classes)), now, value=willing)]

    def _on_file(self, filing: tuple[int, int, bool], result: JobResult, now: int) -> list[Effect]:
        """A sample file read (label it, as inline samples, and Put it), or put (add its address by CID)."""
        turn, willing, put = filing
        terms = self.state.terms
        if not isinstance(result, bytes) or terms is None:
            return [Record("sample_unreadable", {"detail": getattr(result, "detail", type(result).__name__)})]
        if not put:
            classes = self.state.classes
            samples = perceptron.decode_samples(result, terms.features, classes, len(result))
            labelled = [(x, self.agent.label(turn, y, classes)) for x, y in samples]
            self._next_job += 1
            self._filing[self._next_job] = (turn, willing, True)
            return [Put(self._next_job, perceptron.encode_samples(terms.features, labelled))]
        return [
            self._transaction(AddData(cid=result), now, value=willing),
            Record("cid_put", {"address": result.decode()}),
        ]

    def _grace(self) -> int:
        return self.params.rounds(self.params.tau2_days) if self.params.settle_days else 0


class TrainerNode(MarketNode):
    """An off-chain trainer (user B): every period it takes the latest model of the lineage and the CID data added
    since its last upload (both read from storage by this replica when it executed their blocks), trains it for a
    few perceptron epochs, Puts the new model and uploads it as UploadModel(parent, weights_cid, data_cids)."""

    role: ClassVar[str] = "miner"

    def __init__(self, identity: Identity, params: MarketParams, genesis: Genesis) -> None:
        super().__init__(identity, params, genesis)
        self._used = 0  # records already trained on
        self._putting: dict[int, tuple[int, tuple[bytes, ...]]] = {}  # Put job -> (parent, data_cids)

    def start(self, now: int) -> list[Effect]:
        """The first turn after one period."""
        return [StartTimer(Train(), self.params.rounds(self.params.trainer_every_days))]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Train and upload if new CID data came in; the next turn after one period."""
        if not isinstance(timer, Train):
            return super().on_timer(timer, now)
        terms = self.state.terms
        if self.done:
            return []
        effects: list[Effect] = [StartTimer(Train(), self.params.rounds(self.params.trainer_every_days))]
        new = [r for r in self.state.records[self._used :] if not r.inline]
        if terms is None or not new or self._putting:
            return effects
        self._used = len(self.state.records)
        parent = len(self.state.models) - 1
        latest = self.state.models[parent]
        content = self.contents.get(latest.weights_cid) if latest.weights_cid else None
        if latest.weights_cid and content is None:
            return effects  # not read (yet): the next turn tries again
        model = (
            self.state.model.copy()
            if content is None
            else perceptron.decode_model(content, terms.features, terms.classes)
        )
        for _ in range(self.params.trainer_epochs):
            for record in new:
                for x, y in record.samples:
                    model.update(x, y)
        self._next_job += 1
        self._putting[self._next_job] = (parent, tuple(r.cid for r in new))
        return [*effects, Put(self._next_job, perceptron.encode_model(model, terms.features))]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """The model put: upload its address with its parent and data."""
        putting = self._putting.pop(job, None)
        if putting is None:
            return super().on_result(job, result, now)
        terms = self.state.terms
        if not isinstance(result, bytes) or terms is None:
            return [Record("upload_failed", {"detail": getattr(result, "detail", type(result).__name__)})]
        parent, data = putting
        upload = UploadModel(parent, result, data, terms.features)
        return [self._transaction(upload, now), Record("model_put", {"address": result.decode(), "parent": parent})]


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
