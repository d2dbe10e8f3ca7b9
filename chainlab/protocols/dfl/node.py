"""A DFL node (seed 001): trains on its data stream, publishes and witnesses models, averages its buffer, and
writes its own chain of blocks confirmed by its neighbours. Its run lasts `duration` ticks from its start."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Literal

from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import Answer, NodeStatus, Timer
from chainlab.protocols.dfl import rules
from chainlab.protocols.dfl.aggregation import Buffered, plan_update
from chainlab.protocols.dfl.messages import (
    ACCURACY_FORMAT,
    AccuracyPoint,
    Block,
    BlockConfirmation,
    BlockStat,
    NodeReport,
    PeerReputation,
    Receipt,
    ReportRequest,
    Transaction,
    draft_block,
    finalised,
)
from chainlab.protocols.dfl.params import DflParams
from chainlab.protocols.dfl.reasons import Kind, Reason, Rejected
from chainlab.protocols.dfl.timers import ConfirmWindow, DataArrival, ReceiptWait, RecordAccuracy
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
    Aggregate,
    Compute,
    Effect,
    EvaluateModel,
    EvaluationFailed,
    InitModel,
    JobResult,
    Perturb,
    Record,
    Send,
    StartTimer,
    TrainSteps,
    WorkOp,
)
from chainlab.protocols.spec import ModelSpec

ModelTask = Literal["train", "aggregate"]


@dataclass(frozen=True)
class _Init:
    """The shared initial model."""


@dataclass(frozen=True)
class _Train:
    """One training pass on batch k of the stream."""

    k: int


@dataclass(frozen=True)
class _Update:
    """An aggregation of the buffer into the node's model."""

    models: int


@dataclass(frozen=True)
class _Poison:
    """A model-poisoning attacker's published weights."""


@dataclass(frozen=True)
class _Witness:
    """The evaluation behind a receipt for tx, which came from sender."""

    tx: Transaction
    sender: bytes


@dataclass(frozen=True)
class _Measure:
    """A local accuracy measurement for the history, of these weights."""

    tick: int
    weights: bytes


_Job = _Init | _Train | _Update | _Poison | _Witness | _Measure


class DflNode:
    """One DFL participant. Model jobs (init, train, aggregate) run one at a time so that m_prev stays consistent;
    evaluations run alongside. After `duration` ticks it stops: no more training, messages or timers."""

    role: ClassVar[str] = "miner"

    def __init__(
        self,
        identity: Identity,
        params: DflParams,
        spec: ModelSpec,
        genesis: Block,
        neighbours: tuple[bytes, ...],
        local_test: bytes,
        *,
        seed: int,
        attacker: bool = False,
        poison_model: bool = False,
        initial: bytes = b"",
    ) -> None:
        self.identity = identity
        self.params = params
        self.spec = spec
        self.genesis = genesis
        self.neighbours = tuple(n for n in neighbours if n != identity.node_id)
        self.local_test = local_test  # the commitment of the node's receipt test set
        self.attacker = attacker
        self.poison_model = poison_model
        self._shared = sha256(str(seed).encode(), b"dfl")  # what every node derives the initial model from
        self._own = sha256(self._shared, identity.node_id)  # this node's stream and evaluation seeds
        # w0: given (pre-trained by the genesis role on a public shard, protocols.md 6), or b"" for every node to
        # initialise the shared model from the seed.
        self.initial = initial
        self.weights = b""
        self.steps = 0
        self.chain: list[Block] = [genesis]
        self.block_stats: list[BlockStat] = []
        self.reputation: dict[bytes, float] = {}
        self.buffer: list[Buffered] = []
        self.history: list[AccuracyPoint] = []
        self.transactions = 0
        self.receipts_issued = 0
        self.model_updates = 0
        self.stopped = False
        self._seen: dict[bytes, bytes] = {}  # transaction digest -> the peer it first came from (reverse path)
        self._verified: set[tuple[bytes, bytes]] = set()  # receipt (digest, signature) pairs already verified
        self._known_receipts: dict[bytes, set[bytes]] = {}  # transaction digest -> receipt digests seen on it
        self._my_receipts: dict[bytes, Receipt] = {}  # transaction digest -> the receipt I signed
        self._confirmed: set[bytes] = set()  # receipt digests I confirmed in some draft
        self._pending: dict[bytes, Transaction] = {}  # own transactions not yet in a block, with their receipts
        self._unblocked: list[bytes] = []  # their digests, oldest first
        self._waiting: tuple[int, tuple[bytes, ...]] | None = None  # (height, batch) waiting W_r for receipts
        self.draft: Block | None = None
        self._confirmations: dict[bytes, BlockConfirmation] = {}  # receipt digest -> confirmation, for the draft
        self._jobs: dict[int, _Job] = {}
        self._next_job = 0
        self._model_queue: deque[tuple[ModelTask, int]] = deque()
        self._model_busy = False
        self._update_queued = False
        self._end = params.duration

    # ----- the seam --------------------------------------------------------------------------------------------

    @property
    def node_id(self) -> bytes:
        """This node's address, H(pubkey)."""
        return self.identity.node_id

    @property
    def done(self) -> bool:
        """The run is over: training stopped and no job is in flight."""
        return self.stopped and not self._jobs

    def start(self, now: int) -> list[Effect]:
        """Initialise the shared model and start the data stream and the accuracy history."""
        self._end = now + self.params.duration  # live services start late on the shared clock: count from here
        effects: list[Effect] = []
        if self.initial:
            self.weights = self.initial
        else:
            self._model_busy = True
            effects.append(self._compute(_Init(), InitModel(self.spec, _seed(self._shared, b"init", 0))))
        effects.append(StartTimer(DataArrival(0), self._until(now, self._interval(0))))
        if self.params.record_every and self.params.record_every <= self.params.duration:
            effects.append(StartTimer(RecordAccuracy(), self.params.record_every))
        return effects

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A transaction copy, a draft block to confirm, or a confirmation of my draft."""
        if self.stopped:
            return []
        try:
            if isinstance(message, Transaction):
                return self._on_transaction(sender, message, now)
            if isinstance(message, Block):
                return self._on_draft(message)
            if isinstance(message, BlockConfirmation):
                self._on_confirmation(message)
                return []
        except Rejected as exc:
            return [_rejected(exc)]
        return [_rejected(Rejected(Kind.MESSAGE, Reason.MALFORMED, type(message).__name__))]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Data arrival, accuracy measurement, the end of W_r or of W_c."""
        if isinstance(timer, DataArrival):
            return self._on_data(timer.k, now)
        if isinstance(timer, RecordAccuracy):
            return self._on_record(now)
        if isinstance(timer, ReceiptWait):
            return self._build_draft(timer.height, now)
        if isinstance(timer, ConfirmWindow):
            if self.stopped or self.draft is None or self.draft.height != timer.height:
                return []
            return self._finalise(now) + self._maybe_start_block()
        return []

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A model job, a witness evaluation or a history measurement finished."""
        kind = self._jobs.pop(job, None)
        if kind is None:
            return []
        if isinstance(kind, _Witness):
            return self._witnessed(kind.tx, kind.sender, result, now)
        if isinstance(kind, _Measure):
            if isinstance(result, float) and not isinstance(result, bool):
                self.history.append(AccuracyPoint(kind.tick, result, kind.weights))
                return [Record("accuracy", {"tick": kind.tick, "accuracy": result})]
            return []
        if isinstance(kind, _Poison):
            return self._publish(result, now) if isinstance(result, bytes) else []
        # A model job: whatever its outcome, the next one may run.
        self._model_busy = False
        effects: list[Effect] = []
        if isinstance(result, bytes):
            effects += self._model_done(kind, result, now)
        return effects + self._next_model_job()

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """A ReportRequest is answered with the encoded report; nothing else is served."""
        if isinstance(request, ReportRequest):
            return self.report().encode()
        return None

    def status(self) -> NodeStatus:
        """Its own chain: height is its block count, tip its head; tips never agree across nodes (votes=False)."""
        return NodeStatus(self.role, len(self.chain) - 1, self.chain[-1].final_hash, votes=False, done=self.done)

    def report(self) -> NodeReport:
        """Weights, chain statistics, reputations and accuracy history, for the results."""
        return NodeReport(
            node_id=self.node_id,
            attacker=self.attacker,
            weights=self.weights,
            blocks=tuple(self.block_stats),
            reputation=tuple(PeerReputation(p, v) for p, v in sorted(self.reputation.items())),
            history=tuple(self.history),
            transactions=self.transactions,
            receipts=self.receipts_issued,
            model_updates=self.model_updates,
            steps=self.steps,
            tip=self.chain[-1].final_hash,
        )

    # ----- the data stream and the model ------------------------------------------------------------------------

    def _on_data(self, k: int, now: int) -> list[Effect]:
        if self.stopped:
            return []
        if now >= self._end:
            return self._stop(now)
        self._model_queue.append(("train", k))
        effects: list[Effect] = [StartTimer(DataArrival(k + 1), self._until(now, self._interval(k + 1)))]
        return effects + self._next_model_job()

    def _on_record(self, now: int) -> list[Effect]:
        if now > self._end:
            return []
        effects: list[Effect] = []
        if self.weights:
            op = EvaluateModel(
                self.spec, self.weights, self.local_test, self.params.eval_samples, _seed(self._own, b"record", now)
            )
            effects.append(self._compute(_Measure(now, self.weights if self.params.snapshot_history else b""), op))
        if not self.stopped and now + self.params.record_every <= self._end:
            effects.append(StartTimer(RecordAccuracy(), self.params.record_every))
        return effects

    def _next_model_job(self) -> list[Effect]:
        if self._model_busy or self.stopped or not self._model_queue:
            return []
        task, k = self._model_queue.popleft()
        if task == "train":
            op = TrainSteps(
                self.spec, self.weights, PRIVATE, 1, self.params.batch_size, _seed(self._own, b"batch", k), self.steps
            )
            self._model_busy = True
            return [self._compute(_Train(k), op)]
        self._update_queued = False
        entries, self.buffer = self.buffer, []
        update = plan_update(self.params.aggregation, entries, self.reputation, self.params.penalty)
        if self.params.aggregation == "reputation":
            self.reputation = update.reputation
        self._model_busy = True
        models = (self.weights, *(e.model for e in entries))
        effects: list[Effect] = [
            self._compute(_Update(len(entries)), Aggregate(self.spec, models, update.coefficients, update.rule))
        ]
        if update.penalised:
            effects.append(Record("penalised", {"entries": update.penalised}))
        return effects

    def _model_done(self, kind: _Job, weights: bytes, now: int) -> list[Effect]:
        self.weights = weights
        if isinstance(kind, _Update):
            self.model_updates += 1
            return [Record("model_update", {"models": kind.models, "rule": self.params.aggregation})]
        if not isinstance(kind, _Train):
            return []
        self.steps += 1
        if self.poison_model:
            # The attacker keeps its good model but publishes U(0, scale) weights (section 5.2).
            seed = _seed(self._own, b"poison", self.steps)
            op = Perturb(self.spec, weights, "uniform", self.params.perturb_scale, seed)
            return [self._compute(_Poison(), op)]
        return self._publish(weights, now)

    def _publish(self, model: bytes, now: int) -> list[Effect]:
        if self.stopped:
            return []
        tx = Transaction(
            self.node_id, self.identity.public_key, now, now + self.params.expire, model, self.params.ttl
        ).signed_by(self.identity)
        self._seen[tx.digest] = self.node_id
        self._known_receipts[tx.digest] = set()
        self.transactions += 1
        effects: list[Effect] = [Send(n, tx, tx.size_mb + self.params.overhead_mb, tx.size_mb) for n in self.neighbours]
        if self.params.chain:
            self._pending[tx.digest] = tx
            self._unblocked.append(tx.digest)
            effects += self._maybe_start_block()
        return effects

    def _stop(self, now: int) -> list[Effect]:
        """The run is over: queued work is dropped and a draft in its confirmation window is finalised now."""
        self.stopped = True
        self._model_queue.clear()
        self._waiting = None
        effects: list[Effect] = [Record("stopped", {"steps": self.steps, "blocks": len(self.chain) - 1})]
        if self.draft is not None:
            effects += self._finalise(now)
        return effects

    # ----- witnessing --------------------------------------------------------------------------------------------

    def _on_transaction(self, sender: bytes, tx: Transaction, now: int) -> list[Effect]:
        digest = tx.digest
        if digest in self._seen:
            # A copy of a transaction this node checked (or made) already only carries receipts: they are bound to
            # the digest and signed, and its body is never used again, so the weights are not hashed again.
            rules.check_times(tx, now, self.params)
            rules.check_receipts(tx, now + self.params.clock_skew, self._verified)
            if tx.generator == self.node_id:
                self._merge_receipts(tx)  # my own transaction back with receipts: merged, never witnessed
                return []
        elif tx.generator == self.node_id:
            raise Rejected(Kind.TX, Reason.BAD_DIGEST, "not a transaction of mine")
        else:
            rules.check_transaction(tx, now, self.params, self._verified)
        if digest in self._seen:
            known = self._known_receipts.setdefault(digest, set())
            new = {r.digest for r in tx.receipts} - known
            parent = self._seen[digest]
            if new and self.params.receipt_routing == "reverse_path" and parent != sender:
                # Receipts from further away travel back along the path the transaction came by.
                known |= new
                return [Send(parent, tx, tx.size_mb + self.params.overhead_mb, tx.size_mb)]
            raise Rejected(Kind.TX, Reason.DUPLICATE, digest.hex()[:16])
        rules.check_witness(tx)
        self._seen[digest] = sender
        self._known_receipts[digest] = {r.digest for r in tx.receipts}
        op = EvaluateModel(
            self.spec, tx.ml_model, self.local_test, self.params.eval_samples, _seed(self._own, digest, 0)
        )
        return [self._compute(_Witness(tx, sender), op)]

    def _witnessed(self, tx: Transaction, sender: bytes, result: JobResult, now: int) -> list[Effect]:
        if isinstance(result, EvaluationFailed):
            return [_rejected(Rejected(Kind.TX, Reason.MODEL_MISMATCH, result.detail))]
        if not isinstance(result, float):
            # The driver failed (JobFailed), not the peer: forget the copy so that another one may be witnessed.
            self._seen.pop(tx.digest, None)
            return []
        if self.stopped:
            return []
        accuracy = ACCURACY_FORMAT.format(result)
        receipt = Receipt(
            self.node_id, self.identity.public_key, now, tx.received_at_ttl(), accuracy, tx.digest
        ).signed_by(self.identity)
        self._my_receipts[tx.digest] = receipt
        self.receipts_issued += 1
        copy = tx.with_receipts((*tx.receipts, receipt))
        self._known_receipts.setdefault(tx.digest, set()).add(receipt.digest)
        self.buffer.append(Buffered(tx.ml_model, float(accuracy), tx.generator))
        size = copy.size_mb + self.params.overhead_mb
        if self.params.receipt_routing == "reverse_path":
            # The copy always goes back to where it came from; further only while the ttl allows.
            targets = [sender] + ([n for n in self.neighbours if n != sender] if receipt.received_at_ttl > 0 else [])
        else:
            targets = list(self.neighbours)
        effects: list[Effect] = [Send(peer, copy, size, copy.size_mb) for peer in targets]
        if len(self.buffer) >= self.params.buffer and not self._update_queued:
            self._update_queued = True
            self._model_queue.append(("aggregate", 0))
            effects += self._next_model_job()
        return effects

    def _merge_receipts(self, tx: Transaction) -> None:
        pending = self._pending.get(tx.digest)
        if pending is None:
            return  # already in a block (late receipts are lost, as in [C]) or no chain is kept
        creators = {r.creator for r in pending.receipts}
        extra = tuple(r for r in tx.receipts if r.creator not in creators)
        if extra:
            self._pending[tx.digest] = pending.with_receipts((*pending.receipts, *extra))

    # ----- blocks ----------------------------------------------------------------------------------------------

    def _maybe_start_block(self) -> list[Effect]:
        params = self.params
        if self.stopped or not params.chain or self._waiting is not None or self.draft is not None:
            return []
        if len(self._unblocked) < params.tx_per_block:
            return []
        batch, self._unblocked = tuple(self._unblocked[: params.tx_per_block]), self._unblocked[params.tx_per_block :]
        height = len(self.chain)
        self._waiting = (height, batch)
        return [StartTimer(ReceiptWait(height), params.receipt_wait)]

    def _build_draft(self, height: int, now: int) -> list[Effect]:
        if self.stopped or self._waiting is None or self._waiting[0] != height:
            return []
        _, batch = self._waiting
        self._waiting = None
        txs = tuple(self._pending.pop(d) for d in batch)
        self.draft = draft_block(height, self.chain[-1].final_hash, self.identity, txs, now, self.genesis.final_hash)
        self._confirmations = {}
        size = self.draft.size_mb + self.params.overhead_mb
        effects: list[Effect] = [Send(n, self.draft, size, self.draft.size_mb) for n in self.neighbours]
        return [*effects, StartTimer(ConfirmWindow(height), self.params.confirm_window)]

    def _on_draft(self, draft: Block) -> list[Effect]:
        pairs = rules.check_draft(draft, self.node_id, self._my_receipts, self._confirmed)
        effects: list[Effect] = []
        for tx, receipt in pairs:
            confirmation = BlockConfirmation(
                self.node_id, tx.digest, receipt.digest, draft.block_content_hash
            ).signed_by(self.identity)
            self._confirmed.add(receipt.digest)
            effects.append(Send(draft.content.creator, confirmation, self.params.overhead_mb))
        return effects

    def _on_confirmation(self, confirmation: BlockConfirmation) -> None:
        rules.check_confirmation(confirmation, self.draft, self._confirmations)
        self._confirmations[confirmation.receipt_digest] = confirmation

    def _finalise(self, now: int) -> list[Effect]:
        assert self.draft is not None
        block = finalised(self.draft, tuple(self._confirmations.values()), now)
        self.draft, self._confirmations = None, {}
        stat = BlockStat(block.height, len(block.content.transactions), len(block.confirmations), len(block.receipts))
        if not rules.meets_finalization(block, self.params):
            detail = f"{stat.confirmations} of {stat.ideal}"
            return [_rejected(Rejected(Kind.BLOCK, Reason.INSUFFICIENT_CONFIRMATIONS, detail))]
        self.chain.append(block)
        self.block_stats.append(stat)
        return [
            Record(
                "block",
                {
                    "height": stat.height,
                    "transactions": stat.transactions,
                    "confirmations": stat.confirmations,
                    "ideal": stat.ideal,
                },
            )
        ]

    # ----- helpers ------------------------------------------------------------------------------------------------

    def _compute(self, kind: _Job, op: WorkOp) -> Compute:
        self._next_job += 1
        self._jobs[self._next_job] = kind
        return Compute(self._next_job, op)

    def _interval(self, k: int) -> int:
        """U{interval_min..interval_max}, derived from the node's seed."""
        span = self.params.interval_max - self.params.interval_min + 1
        return self.params.interval_min + _seed(self._own, b"interval", k) % span

    def _until(self, now: int, after: int) -> int:
        """A delay capped so that the last timer fires exactly at `duration`."""
        return max(1, min(after, self._end - now))


def _seed(base: bytes, label: bytes, k: int) -> int:
    """A 63-bit seed derived from base, a label and a counter."""
    return int.from_bytes(sha256(base, label, k.to_bytes(8, "little"))[:8], "little") >> 1


def _rejected(exc: Rejected) -> Record:
    return Record(RECORD_REJECTED, {"kind": str(exc.kind), "reason": str(exc.reason), "detail": exc.detail})
