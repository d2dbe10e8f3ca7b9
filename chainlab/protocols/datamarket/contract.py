"""The market contract: a deterministic state-transition function over balances, escrow, the reward pool, data
records, num_good/total_good and the on-chain model (protocols.md 4.2; DRT's Deposit, Refund and Take rules from
0xDeCA10B's `Stakeable`, seed 004's verification reward). Value is integer units; time is chain time in rounds.

Conservation: sum(balances) + escrow + pool never changes (value only moves between them).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from chainlab.ledger.hashing import sha256
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.messages import (
    AddData,
    Block,
    Body,
    CreateMarket,
    PublishAccuracy,
    Refund,
    Report,
    RevealTestSet,
    Transaction,
    UploadModel,
)
from chainlab.protocols.datamarket.reasons import Kind, Reason, Rejected

SECONDS_PER_DAY = 86_400
CLAIM_GAP_DAYS = 7  # DRT: the any-address claim wait must exceed the refund wait by more than 7 days
DRT_COST_NUMERATOR = 60  # DRT's cost = 60 * cost_weight / floor(sqrt(seconds since the last update))
CID_BYTES = 32  # a content address is a SHA-256 digest
_NOT_SEEN = frozenset({Reason.BAD_SIGNATURE, Reason.MALFORMED, Reason.REPLAYED})


@dataclass
class DataRecord:
    """One contribution: DRT's {sender, time, data, label, initial_deposit, claimable, claimed_by}."""

    id: int
    sender: bytes
    time: int
    x: bytes
    y: int
    cid: bytes
    initial_deposit: int
    claimable: int
    claimed_by: set[bytes] = field(default_factory=set)

    @property
    def inline(self) -> bool:
        """An inline sample the model can predict (a CID counts as one input the contract cannot read)."""
        return not self.cid


@dataclass(frozen=True)
class ModelRecord:
    """A model and its lineage: 0 is the on-chain model, later ones are off-chain uploads by CID."""

    id: int
    parent: int  # -1 for the on-chain model
    owner: bytes
    weights_cid: bytes
    data_cids: tuple[bytes, ...]


@dataclass(frozen=True)
class Outcome:
    """What one transaction did: accepted or rejected (kind, reason), and the value it moved to whom."""

    tx: Transaction
    kind: str  # the body's kind: mk, add, rf, rp, um, pa, rv (tx for a transaction with no single body)
    accepted: bool
    reason: str = ""
    detail: str = ""
    record: int = -1  # the data record added or claimed
    amount: int = 0  # deposit taken (add), refund or take paid (rf, rp)
    reward: int = 0  # seed 004's verification reward paid from the pool (rp)
    model_disagrees: bool = False  # rp: whether the model disagreed with the record when it was taken


@dataclass
class Market:
    """The contract state. Every full node holds one and executes each block's transactions on it."""

    balances: dict[bytes, int]
    owner: bytes = b""
    terms: CreateMarket | None = None
    model: perceptron.Perceptron = field(default_factory=lambda: perceptron.Perceptron([], []))
    pool: int = 0
    escrow: int = 0
    records: list[DataRecord] = field(default_factory=list)
    num_good: dict[bytes, int] = field(default_factory=dict)
    total_good: int = 0
    last_update: int = 0
    models: list[ModelRecord] = field(default_factory=list)
    accuracies: list[tuple[int, int, float]] = field(default_factory=list)  # (time, model, accuracy)
    revealed: bool = False
    seen_txs: set[bytes] = field(default_factory=set)
    seen_data: set[bytes] = field(default_factory=set)
    log: bytes = b""  # a running digest of every outcome: part of the state root

    @classmethod
    def genesis(cls, balances: Mapping[bytes, int]) -> Market:
        """The state before any block: the genesis allocation."""
        return cls(dict(balances))

    def total(self) -> int:
        """sum(balances) + escrow + pool: constant over every transaction."""
        return sum(self.balances.values()) + self.escrow + self.pool

    def predict(self, x: bytes) -> int:
        """The current on-chain model's label for x."""
        return self.model.predict(x)

    def cost(self, now: int) -> int:
        """The deposit an addition at `now` costs: seed 004's fixed D, or DRT's cost function of the seconds since
        the last update (chain rounds scaled to seconds by the market's day)."""
        terms = self.terms
        assert terms is not None
        if terms.fixed_deposit:
            return terms.fixed_deposit
        seconds = (now - self.last_update) * SECONDS_PER_DAY // terms.day
        root = math.isqrt(max(seconds, 1))
        return max(1, DRT_COST_NUMERATOR * terms.cost_weight // root)

    # -- execution ------------------------------------------------------------------------------------------------

    def execute_block(self, block: Block) -> list[Outcome]:
        """Apply every transaction of a block at its time, in order; a rejected one changes nothing."""
        return [self.apply(tx, block.time) for tx in block.txs]

    def apply(self, tx: Transaction, now: int) -> Outcome:
        """Apply one transaction at chain time now; never raises for a peer's bad transaction."""
        bodies = tx.bodies()
        try:
            outcome = self._apply(tx, now, bodies)
        except Rejected as exc:
            outcome = Outcome(tx, str(exc.kind), False, str(exc.reason), exc.detail)
        self.log = sha256(self.log, tx.hash, f"{outcome.kind}:{outcome.accepted}:{outcome.reason}".encode())
        if outcome.reason not in _NOT_SEEN:  # a forged or replayed copy must not block the signed original
            self.seen_txs.add(tx.hash)
        return outcome

    def _apply(self, tx: Transaction, now: int, bodies: list[Body]) -> Outcome:
        if not tx.signature_valid(tx.sender_key):
            raise Rejected(Kind.TX, Reason.BAD_SIGNATURE)
        if len(bodies) != 1:
            raise Rejected(Kind.TX, Reason.MALFORMED, f"{len(bodies)} bodies")
        if tx.hash in self.seen_txs:
            raise Rejected(Kind.TX, Reason.REPLAYED, tx.hash.hex()[:16])
        sender = tx.sender
        if self.balances.get(sender, 0) < tx.value:
            raise Rejected(Kind.TX, Reason.INSUFFICIENT_BALANCE, f"{self.balances.get(sender, 0)} < {tx.value}")
        body = bodies[0]
        if isinstance(body, CreateMarket):
            return self._create(tx, body, now)
        if self.terms is None:
            raise Rejected(Kind.TX, Reason.NO_MARKET, "no CreateMarket yet")
        match body:
            case AddData():
                return self._add(tx, body, now)
            case Refund():
                return self._refund(tx, body, now)
            case Report():
                return self._report(tx, body, now)
            case UploadModel():
                return self._upload(tx, body)
            case PublishAccuracy():
                return self._publish(tx, body, now)
            case RevealTestSet():
                return self._reveal(tx, body)
        raise Rejected(Kind.TX, Reason.MALFORMED, type(body).__name__)

    def _create(self, tx: Transaction, body: CreateMarket, now: int) -> Outcome:
        if self.terms is not None:
            raise Rejected(Kind.MARKET, Reason.EXISTS)
        if body.day < 1 or body.tau < 1 or body.tau2 <= body.tau + CLAIM_GAP_DAYS * body.day:
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, f"need tau2 > tau + 7 days: {body.tau2}, {body.tau}")
        if body.features < 1 or body.cost_weight < 1 or body.count < 1:
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, "the schema, cost weight or sample count")
        if len(body.weights) != body.features + 1 or len(body.sums) != body.features + 1:
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, "the model, schema or cost weight")
        if len(body.test_commitment) != CID_BYTES or any(len(c) != CID_BYTES for c in body.train_cids):
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, "the test commitment or a training CID is no SHA-256")
        sender = tx.sender
        self.balances[sender] -= tx.value
        self.pool += tx.value
        self.owner, self.terms, self.last_update = sender, body, now
        self.model = perceptron.Perceptron(list(body.weights), list(body.sums), body.count)
        self.models.append(ModelRecord(0, -1, sender, b"", body.train_cids))
        return Outcome(tx, Kind.MARKET, True, amount=tx.value)

    def _add(self, tx: Transaction, body: AddData, now: int) -> Outcome:
        terms = self.terms
        assert terms is not None
        if body.cid or body.labels_cid:
            if body.x or len(body.cid) != CID_BYTES or len(body.labels_cid) not in (0, CID_BYTES):
                raise Rejected(Kind.ADD, Reason.BAD_CID, "a CID is a 32-byte SHA-256, with no inline sample")
        elif not perceptron.well_formed(body.x, terms.features) or body.y not in (0, 1):
            raise Rejected(Kind.ADD, Reason.SCHEMA_MISMATCH, f"{len(body.x)} bytes, label {body.y}")
        sender = tx.sender
        key = sha256(body.x, struct.pack("<Q", body.y), body.cid, body.labels_cid, struct.pack("<Q", now), sender)
        if key in self.seen_data:
            raise Rejected(Kind.ADD, Reason.DUPLICATE)
        if now - self.last_update < 1:
            raise Rejected(Kind.ADD, Reason.TOO_SOON, "at least 1 s since the last update")
        cost = self.cost(now)
        if tx.value < cost:
            raise Rejected(Kind.ADD, Reason.INSUFFICIENT_DEPOSIT, f"{tx.value} < {cost}")
        self.seen_data.add(key)
        self.balances[sender] -= cost
        self.escrow += cost
        record = DataRecord(len(self.records), sender, now, body.x, body.y, body.cid, cost, cost)
        self.records.append(record)
        if record.inline:
            self.model.update(body.x, body.y)
        self.last_update = now
        return Outcome(tx, Kind.ADD, True, record=record.id, amount=cost)

    def _record(self, kind: Kind, index: int) -> DataRecord:
        if not 0 <= index < len(self.records):
            raise Rejected(kind, Reason.UNKNOWN_RECORD, str(index))
        return self.records[index]

    def _refund(self, tx: Transaction, body: Refund, now: int) -> Outcome:
        terms = self.terms
        assert terms is not None
        record = self._record(Kind.REFUND, body.record)
        sender = tx.sender
        if record.sender != sender:
            raise Rejected(Kind.REFUND, Reason.NOT_SUBMITTER)
        if sender in record.claimed_by:
            raise Rejected(Kind.REFUND, Reason.ALREADY_CLAIMED)
        if record.claimable == 0:
            raise Rejected(Kind.REFUND, Reason.NOTHING_LEFT)
        if now - record.time <= terms.tau:
            raise Rejected(Kind.REFUND, Reason.TOO_EARLY, f"{now - record.time} <= {terms.tau}")
        if record.inline and self.predict(record.x) != record.y:
            raise Rejected(Kind.REFUND, Reason.MODEL_DISAGREES)
        amount = record.claimable
        record.claimable = 0
        record.claimed_by.add(sender)
        self.escrow -= amount
        self.balances[sender] += amount
        self.num_good[sender] = self.num_good.get(sender, 0) + 1
        self.total_good += 1
        return Outcome(tx, Kind.REFUND, True, record=record.id, amount=amount)

    def _report(self, tx: Transaction, body: Report, now: int) -> Outcome:
        terms = self.terms
        assert terms is not None
        record = self._record(Kind.REPORT, body.record)
        reporter = tx.sender
        age = now - record.time
        if record.sender == reporter and age < terms.tau2:
            raise Rejected(Kind.REPORT, Reason.OWN_DATA, "ask for a refund instead")
        if reporter in record.claimed_by:
            raise Rejected(Kind.REPORT, Reason.ALREADY_CLAIMED)
        if record.claimable == 0:
            raise Rejected(Kind.REPORT, Reason.NOTHING_LEFT)
        disagrees = record.inline and self.predict(record.x) != record.y
        if age >= terms.tau2:
            amount = record.claimable  # DRT: after tau2 anyone takes all that is left
        else:
            if age <= terms.tau:
                raise Rejected(Kind.REPORT, Reason.TOO_EARLY, f"{age} <= {terms.tau}")
            if not disagrees:
                raise Rejected(Kind.REPORT, Reason.MODEL_AGREES)
            good = self.num_good.get(reporter, 0)
            if good == 0:
                raise Rejected(Kind.REPORT, Reason.NO_GOOD_DATA)
            amount = min(record.claimable, record.initial_deposit * good // self.total_good)
        reward = min(terms.reward, self.pool) if disagrees else 0
        record.claimable -= amount
        record.claimed_by.add(reporter)
        self.escrow -= amount
        self.pool -= reward
        self.balances[reporter] = self.balances.get(reporter, 0) + amount + reward
        return Outcome(tx, Kind.REPORT, True, record=record.id, amount=amount, reward=reward, model_disagrees=disagrees)

    def _upload(self, tx: Transaction, body: UploadModel) -> Outcome:
        terms = self.terms
        assert terms is not None
        if not 0 <= body.parent < len(self.models):
            raise Rejected(Kind.UPLOAD, Reason.UNKNOWN_PARENT, str(body.parent))
        if body.features != terms.features or len(body.weights_cid) != CID_BYTES:
            raise Rejected(Kind.UPLOAD, Reason.SCHEMA_MISMATCH, f"{body.features} features")
        self.models.append(ModelRecord(len(self.models), body.parent, tx.sender, body.weights_cid, body.data_cids))
        return Outcome(tx, Kind.UPLOAD, True, record=len(self.models) - 1)

    def _publish(self, tx: Transaction, body: PublishAccuracy, now: int) -> Outcome:
        if tx.sender != self.owner:
            raise Rejected(Kind.PUBLISH, Reason.NOT_OWNER)
        if not 0 <= body.model < len(self.models):
            raise Rejected(Kind.PUBLISH, Reason.UNKNOWN_MODEL, str(body.model))
        if not (math.isfinite(body.accuracy) and 0.0 <= body.accuracy <= 1.0):
            raise Rejected(Kind.PUBLISH, Reason.BAD_ACCURACY, repr(body.accuracy))
        self.accuracies.append((now, body.model, body.accuracy))
        return Outcome(tx, Kind.PUBLISH, True)

    def _reveal(self, tx: Transaction, body: RevealTestSet) -> Outcome:
        terms = self.terms
        assert terms is not None
        if tx.sender != self.owner:
            raise Rejected(Kind.REVEAL, Reason.NOT_OWNER)
        if self.revealed:
            raise Rejected(Kind.REVEAL, Reason.ALREADY_REVEALED)
        if body.cid != terms.test_commitment:
            raise Rejected(Kind.REVEAL, Reason.HASH_MISMATCH)
        self.revealed = True
        return Outcome(tx, Kind.REVEAL, True)

    # -- commitment -----------------------------------------------------------------------------------------------

    def state_root(self, prev: bytes) -> bytes:
        """A commitment to the state after a block, chained to the previous block's: the model, balances, escrow,
        pool, good-data counters and the digest of every outcome so far (which fixes the records)."""
        balances = b"".join(k + struct.pack("<q", v) for k, v in sorted(self.balances.items()))
        counters = struct.pack(
            "<qqqqqq", self.escrow, self.pool, self.total_good, len(self.records), self.last_update, self.model.c
        )
        model = perceptron.encode_weights(self.model.w) + perceptron.encode_weights(self.model.a)
        return sha256(prev, model, balances, counters, self.log)


def _kind_of(body: object) -> Kind:
    match body:
        case CreateMarket():
            return Kind.MARKET
        case AddData():
            return Kind.ADD
        case Refund():
            return Kind.REFUND
        case Report():
            return Kind.REPORT
        case UploadModel():
            return Kind.UPLOAD
        case PublishAccuracy():
            return Kind.PUBLISH
        case RevealTestSet():
            return Kind.REVEAL
    return Kind.TX
