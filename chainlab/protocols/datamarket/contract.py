"""The market contract: a deterministic state-transition function over balances, escrow, the reward pool, data
records, num_good/total_good and the on-chain model (protocols.md 4.2; DRT's Deposit, Refund and Take rules from
0xDeCA10B's `Stakeable`, seed 004's verification reward). Value is integer units; time is chain time in rounds.

Conservation: sum(balances) + escrow + pool never changes (value only moves between them).

Content by address (protocols.md 7 leaves open how a CID contribution trains the model; chosen here): a transaction
may name content in storage, a sample file added by CID, an off-chain trainer's model file, the revealed test set.
Every replica Gets that content before it executes the block (execution waits for the Gets, in every replica) and
passes it in `contents`; the contract then treats it as any other input. A CID contribution is one record under one
deposit [P], and its samples train the on-chain model in file order, as inline ones do; the model "agrees" with it
when it agrees with most of its samples, which decides its refund or report. Content storage does not hold (Get
answered None) rejects the transaction, in every replica alike.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
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
CID_BYTES = 32  # a commitment (the test set's, the owner's training data) is a SHA-256 digest
MAX_CID_SAMPLES = 1_000  # a CID contribution's file holds at most this many samples (each trains every replica)
_BASE58 = frozenset(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
_BASE32 = frozenset(b"abcdefghijklmnopqrstuvwxyz234567")
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
    samples: tuple[tuple[bytes, int], ...] = ()  # a CID contribution's samples, as its file held them

    @property
    def inline(self) -> bool:
        """An inline sample (not a CID contribution)."""
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
    model: perceptron.Model = field(default_factory=lambda: perceptron.Perceptron([], []))
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
    # What storage answered for the addresses the block being executed names.
    _contents: Mapping[bytes, bytes | None] = field(default_factory=dict, repr=False, compare=False)
    # SHA-256 of the model's weights and accumulator, kept until an update changes them: most blocks leave them alone
    # (claims only, or samples the model already gets right), and hashing 2 x 7,850 integers per block per replica
    # would cost more than the 10-class contract itself.
    _model_digest: bytes = field(default=b"", repr=False, compare=False)

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

    def agrees(self, record: DataRecord) -> bool:
        """Whether the current model agrees with a record: its label, or most of a CID contribution's labels."""
        if record.inline:
            return self.predict(record.x) == record.y
        agreeing = sum(1 for x, y in record.samples if self.predict(x) == y)
        return 2 * agreeing > len(record.samples)

    @property
    def classes(self) -> int:
        """The schema's classes (2 for DRT's binary task)."""
        return max(self.terms.classes, 2) if self.terms is not None else 2

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

    def execute_block(self, block: Block, contents: Mapping[bytes, bytes | None] | None = None) -> list[Outcome]:
        """Apply every transaction of a block at its time, in order, with the content its transactions name (what
        Get answered for each of `addresses(block.txs)`); a rejected one changes nothing."""
        return [self.apply(tx, block.time, contents) for tx in block.txs]

    def apply(self, tx: Transaction, now: int, contents: Mapping[bytes, bytes | None] | None = None) -> Outcome:
        """Apply one transaction at chain time now; never raises for a peer's bad transaction."""
        bodies = tx.bodies()
        self._contents = contents or {}
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
        rows = 1 if body.classes in (0, 2) else body.classes
        if body.classes == 1 or body.classes > 255:
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, f"{body.classes} classes")
        if len(body.weights) != rows * (body.features + 1) or len(body.sums) != rows * (body.features + 1):
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, "the model, schema or cost weight")
        if len(body.test_commitment) != CID_BYTES or any(len(c) != CID_BYTES for c in body.train_cids):
            raise Rejected(Kind.MARKET, Reason.BAD_PARAMS, "the test commitment or a training CID is no SHA-256")
        sender = tx.sender
        self.balances[sender] -= tx.value
        self.pool += tx.value
        self.owner, self.terms, self.last_update = sender, body, now
        self.model = perceptron.model_of(body.weights, body.sums, body.count, body.classes)
        self._model_digest = b""
        self.models.append(ModelRecord(0, -1, sender, b"", body.train_cids))
        return Outcome(tx, Kind.MARKET, True, amount=tx.value)

    def _add(self, tx: Transaction, body: AddData, now: int) -> Outcome:
        terms = self.terms
        assert terms is not None
        if body.cid or body.labels_cid:
            if body.x or body.y or body.labels_cid or not well_formed_cid(body.cid):
                raise Rejected(
                    Kind.ADD, Reason.BAD_CID, "one storage address, no inline sample (labels are in the file)"
                )
        elif not perceptron.well_formed(body.x, terms.features) or not 0 <= body.y < self.classes:
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
        samples = self._sample_file(body.cid) if body.cid else [(body.x, body.y)]
        self.seen_data.add(key)
        self.balances[sender] -= cost
        self.escrow += cost
        held = tuple(samples) if body.cid else ()
        record = DataRecord(len(self.records), sender, now, body.x, body.y, body.cid, cost, cost, samples=held)
        self.records.append(record)
        for x, y in samples:
            if self.model.update(x, y):
                self._model_digest = b""
        self.last_update = now
        return Outcome(tx, Kind.ADD, True, record=record.id, amount=cost)

    def _sample_file(self, address: bytes) -> list[tuple[bytes, int]]:
        """A CID contribution's samples, from what Get answered for its address."""
        content = self._contents.get(address)
        if content is None:
            raise Rejected(Kind.ADD, Reason.BAD_CID, "storage holds no content at this address")
        terms = self.terms
        assert terms is not None
        try:
            samples = perceptron.decode_samples(content, terms.features, self.classes, MAX_CID_SAMPLES)
        except perceptron.SchemaMismatch as exc:
            raise Rejected(Kind.ADD, Reason.SCHEMA_MISMATCH, str(exc)) from exc
        except ValueError as exc:
            raise Rejected(Kind.ADD, Reason.BAD_CID, f"not a sample file: {exc}") from exc
        if not samples:
            raise Rejected(Kind.ADD, Reason.BAD_CID, "an empty sample file")
        return samples

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
        if not self.agrees(record):
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
        disagrees = not self.agrees(record)
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
        if not well_formed_cid(body.weights_cid) or not all(well_formed_cid(c) for c in body.data_cids):
            raise Rejected(Kind.UPLOAD, Reason.BAD_CID, "the weights or a data address")
        if body.features != terms.features:
            raise Rejected(Kind.UPLOAD, Reason.SCHEMA_MISMATCH, f"{body.features} features")
        content = self._contents.get(body.weights_cid)
        if content is None:
            raise Rejected(Kind.UPLOAD, Reason.BAD_CID, "storage holds no content at the weights' address")
        try:
            perceptron.decode_model(content, terms.features, terms.classes)
        except ValueError as exc:
            raise Rejected(Kind.UPLOAD, Reason.SCHEMA_MISMATCH, str(exc)) from exc
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
        content = self._contents.get(body.cid) if well_formed_cid(body.cid) else None
        if content is None:
            raise Rejected(Kind.REVEAL, Reason.HASH_MISMATCH, "storage holds no content at this address")
        if sha256(content) != terms.test_commitment:
            raise Rejected(Kind.REVEAL, Reason.HASH_MISMATCH, "SHA-256 of the content is not the commitment")
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
        if not self._model_digest:
            current = self.model
            w, a = current.flat if isinstance(current, perceptron.MultiPerceptron) else (current.w, current.a)
            self._model_digest = sha256(perceptron.encode_weights(w), perceptron.encode_weights(a))
        model = self._model_digest
        return sha256(prev, model, balances, counters, self.log)


def well_formed_cid(address: bytes) -> bool:
    """A storage address, syntactically: a CIDv0 ("Qm" + 44 base58 characters, the storage service's) or a CIDv1
    in base32 ("b" + 58 characters, the simulator's raw CIDs and Kubo's v1 ones)."""
    if len(address) == 46 and address.startswith(b"Qm"):
        return set(address) <= _BASE58
    return len(address) == 59 and address.startswith(b"b") and set(address[1:]) <= _BASE32


def addresses(txs: Iterable[Transaction]) -> list[bytes]:
    """The storage addresses a block's transactions name, in order, without repeats: what every replica Gets before
    it executes them (only well-formed ones: a malformed address is rejected without asking storage)."""
    out: dict[bytes, None] = {}
    for tx in txs:
        named = [tx.add.cid if tx.add is not None else b"", tx.reveal.cid if tx.reveal is not None else b""]
        named.append(tx.upload.weights_cid if tx.upload is not None else b"")
        for address in named:
            if address and well_formed_cid(address):
                out[address] = None
    return list(out)


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
