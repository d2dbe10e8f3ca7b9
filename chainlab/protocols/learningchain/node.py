"""A LearningChain agent: a data holder sending DP gradients and a computing node mining blocks (K = M, seed 003 §VI-A).

Every agent runs this one node. As a holder it computes a private gradient on the head's model w_t and broadcasts
it under a pseudonym; as a miner it collects messages of height t, aggregates once it holds l of them and
collect_rounds have passed, and searches a nonce for the block. Blocks of peers are checked by every rule of
protocols.md 3.2 and by re-executing the aggregation; the longest valid chain wins, the first seen on a tie.

A node that gets a block whose parent it lacks (it was down, or cut off) asks that block's sender for its main
chain above its own head, SYNC_BATCH blocks at a time, and checks those blocks as it checks any other. The paper
says nothing of nodes that miss blocks; this is the usual initial block download of a PoW chain.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.encoding import EncodingError
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import meets_target
from chainlab.protocols.base import Answer, NodeStatus, Timer
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
    AggregateGradients,
    Aggregation,
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    EvaluationFailed,
    Gradient,
    JobResult,
    Mine,
    Perturb,
    PrivateGradient,
    Record,
    Request,
    StartTimer,
)
from chainlab.protocols.learningchain import rules
from chainlab.protocols.learningchain.messages import (
    NONCE_TAG,
    Block,
    Chain,
    ChainRequest,
    GradientMessage,
    Header,
    canonical,
    messages_root,
    with_nonce,
)
from chainlab.protocols.learningchain.params import LearningChainParams
from chainlab.protocols.learningchain.reasons import Kind, Reason, Rejected
from chainlab.protocols.learningchain.timers import Collect
from chainlab.protocols.spec import ModelSpec

SEED_MODULUS = 2**31  # seeds handed to the driver stay within every ML library's range
POOL_DEPTH = 2  # heights below the head whose messages are kept (to check a competing block at the head's height)
MB = 1_000_000
SYNC_BATCH = 8  # blocks per catch-up answer; a node further behind asks for the next batch at once


@dataclass
class _Job:
    """What a pending job is for."""

    kind: str  # gradient, aggregate, perturb, mine, check, sync
    head: bytes  # the head it was started on (a check: the checked block's hash; a sync: the peer asked)
    messages: tuple[GradientMessage, ...] = ()
    header: Header | None = None
    weights: bytes = b""
    block: Block | None = None
    from_height: int = 0  # a sync: the first height asked for


class LearningChainNode:
    """One agent of a LearningChain network: holder and miner."""

    role: ClassVar[str] = "miner"

    def __init__(
        self,
        identity: Identity,
        params: LearningChainParams,
        genesis: Block,
        *,
        holders: int,
        byzantine_holder: bool = False,
        byzantine_miner: bool = False,
    ) -> None:
        if genesis.spec is None:
            raise ValueError("the genesis block must name the model spec")
        self.identity = identity
        self.params = params
        self.spec: ModelSpec = genesis.spec
        self.dimension = model_dimension(genesis.spec)
        self.least = params.selected_count(holders)  # l
        self.byzantine_holder = byzantine_holder
        self.byzantine_miner = byzantine_miner
        self.genesis = genesis
        self.blocks: dict[bytes, Block] = {genesis.hash: genesis}
        self.head = genesis
        self.rejected: set[bytes] = set()
        self.pending: dict[bytes, int] = {}  # block hash -> its re-execution job
        self.orphans: dict[bytes, list[Block]] = {}  # by the missing parent's hash
        self.pools: dict[int, dict[bytes, GradientMessage]] = {}  # height -> message hash -> valid message
        self.pseudonyms: dict[int, set[bytes]] = {}  # height -> pseudonyms seen (msg.duplicate)
        self.now = 0
        self._jobs: dict[int, _Job] = {}
        self._next_job = 0
        self._ready: bytes | None = None  # the head whose collect time has passed
        self._aggregated: bytes | None = None  # the head this miner aggregated for (never again: memoryless)
        self._done_recorded = False
        self.rejections: dict[str, int] = {}  # kind.reason -> count
        self._syncing: int | None = None  # the catch-up request in flight (one at a time)
        self._asked: dict[bytes, bytes] = {}  # peer -> the head this node had when it last asked that peer
        # Blocks mined while this node was away, not judged yet: those of catch-up answers and the orphans they
        # free. Strict mode does not apply to them (the node cannot have received their messages).
        self._away: set[bytes] = set()

    @property
    def node_id(self) -> bytes:
        """This node's ID."""
        return self.identity.node_id

    @property
    def done(self) -> bool:
        """The head has reached height T: the run is over for this node."""
        return self.head.height >= self.params.rounds

    # -- inputs -----------------------------------------------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        """Take up height 0: compute a gradient on w_0 and start collecting."""
        self.now = now
        return self._begin_height()

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A peer's message or block: checked, then acted on; a rejection is recorded, never raised."""
        self.now = now
        if self.done:
            return []
        try:
            match message:
                case GradientMessage():
                    return self._on_gradient(message)
                case Block():
                    return self._on_block(message, sender)
                case _:
                    return [_rejected(type(message).__name__, "malformed", "not a LearningChain message")]
        except Rejected as exc:
            return [self._rejected(exc)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """The collect time of the head has passed: aggregate as soon as l messages are held."""
        self.now = now
        if not isinstance(timer, Collect) or timer.head != self.head.hash or self.done:
            return []
        self._ready = timer.head
        return self._maybe_aggregate()

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A gradient, an aggregation, a perturbation, a nonce or a re-execution came back."""
        self.now = now
        pending = self._jobs.pop(job, None)
        if pending is None or self.done:
            return []
        try:
            match pending.kind:
                case "gradient":
                    return self._on_gradient_result(pending, result)
                case "aggregate" | "perturb":
                    return self._on_aggregated(pending, result)
                case "mine":
                    return self._on_nonce(pending, result)
                case "check":
                    return self._on_checked(pending, result)
                case "sync":
                    return self._on_chain(pending, result)
        except Rejected as exc:
            return [self._rejected(exc)]
        return []

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """The main chain from a height on, `count` blocks of it if asked (the results reader's request, a peer's
        catch-up); nothing else is served."""
        if not isinstance(request, ChainRequest):
            return None
        return encoding.encode(self.chain_view(request.from_height, request.count))

    def status(self) -> NodeStatus:
        """Height and tip of the head; forks: accepted blocks off the main chain; done at height T."""
        return NodeStatus(self.role, self.head.height, self.head.hash, forks=self.forks(), done=self.done)

    # -- chain ------------------------------------------------------------------------------------------------

    def main_chain(self) -> list[Block]:
        """Genesis to head, following prev hashes."""
        chain = [self.head]
        while chain[-1].height > 0:
            chain.append(self.blocks[chain[-1].header.prev])
        return chain[::-1]

    def chain_view(self, from_height: int = 0, count: int = 0) -> Chain:
        """The main chain from a height on (count blocks of it; 0: up to the head), the fork count and the
        rejections (what the results read)."""
        reasons = sorted(self.rejections)
        return Chain(
            tuple(self.main_chain()[from_height : from_height + count if count else None]),
            self.forks(),
            tuple(reasons),
            tuple(self.rejections[r] for r in reasons),
        )

    def forks(self) -> int:
        """Accepted blocks that are not on the main chain."""
        return len(self.blocks) - (self.head.height + 1)

    def _begin_height(self) -> list[Effect]:
        """The head changed: drop the old height's work, then compute a gradient on w_t and start collecting."""
        effects: list[Effect] = []
        # A re-execution outlives the head it started under (its block may extend another), and so does a catch-up.
        for job in [j for j, p in self._jobs.items() if p.kind not in ("check", "sync") or self.done]:
            del self._jobs[job]
            effects.append(CancelJob(job))
        if self.done:
            self.pending.clear()
            if not self._done_recorded:
                self._done_recorded = True
                effects.append(Record("done", {"height": self.head.height, "forks": self.forks()}))
            return effects
        t = self.head.height
        for height in [h for h in self.pools if h < t - POOL_DEPTH]:
            del self.pools[height]
            self.pseudonyms.pop(height, None)
        self._ready = None
        op = PrivateGradient(
            self.spec,
            self.head.weights,
            PRIVATE,
            self.params.batch,
            self.params.clip,
            self.params.bound,
            self.params.epsilon_at(t),
            self._seed(b"gradient"),
            byzantine=self.byzantine_holder,
            sigma=self.params.sigma,
        )
        effects.append(self._compute(_Job("gradient", self.head.hash), op))
        effects.append(StartTimer(Collect(self.head.hash), self.params.collect_rounds))
        return effects + self._maybe_aggregate()

    def _accept(self, block: Block) -> list[Effect]:
        """Add a valid block; a longer chain becomes the main chain (first seen wins a tie); orphans follow it."""
        self.blocks[block.hash] = block
        away = block.hash in self._away
        self._away.discard(block.hash)
        extends = block.height > self.head.height
        effects: list[Effect] = [
            Record("block_accepted", {"height": block.height, "block": block.hash.hex(), "head": extends})
        ]
        if extends:
            self.head = block
            effects += self._selected_record(block)
            effects += self._begin_height()
        for child in self.orphans.pop(block.hash, []):
            if away:
                self._away.add(child.hash)  # it waited on a block fetched by catch-up: mined while away too
            if not self.done:
                try:
                    effects += self._on_block(child)
                except Rejected as exc:
                    effects.append(self._rejected(exc))
        return effects

    def _reject(self, block: Block, reason: Reason, detail: str = "") -> Rejected:
        """Mark a block invalid (and every orphan waiting on it), and say why."""
        self.rejected.add(block.hash)
        self._away.discard(block.hash)
        stack = [block.hash]
        while stack:
            for child in self.orphans.pop(stack.pop(), []):
                self.rejected.add(child.hash)
                stack.append(child.hash)
        return Rejected(Kind.BLOCK, reason, detail)

    # -- holder -----------------------------------------------------------------------------------------------

    def _on_gradient_result(self, job: _Job, result: JobResult) -> list[Effect]:
        if job.head != self.head.hash:
            return []
        if not isinstance(result, Gradient):
            return [Record("gradient_failed", {"height": self.head.height, "detail": _detail(result)})]
        if result.norm <= 0:
            return [Record("zero_gradient", {"height": self.head.height})]
        t = self.head.height
        pseudonym = self._pseudonym(t)
        message = GradientMessage(t, pseudonym.public_key, result.vector, result.norm).signed_by(pseudonym)
        self._pool(t)[message.hash] = message
        self.pseudonyms.setdefault(t, set()).add(message.pseudonym)
        size = len(message.encode()) / MB
        effects: list[Effect] = [
            Broadcast(message, size, payload_mb=len(message.vector) / MB),
            Record("gradient_sent", {"height": t, "byzantine": self.byzantine_holder, "norm": result.norm}),
        ]
        return effects + self._maybe_aggregate()

    def _pseudonym(self, height: int) -> Identity:
        """P*_k of height t: derived from this agent's own signature over t, so only it can make it (fresh per
        height with fresh_pseudonyms, else its node identity)."""
        if not self.params.fresh_pseudonyms:
            return self.identity
        return Identity.from_seed(self.identity.sign(b"learningchain:pseudonym:%d" % height))

    def _on_gradient(self, message: GradientMessage) -> list[Effect]:
        t = self.head.height
        pool = self.pools.get(message.height, {})
        if message.hash in pool:
            return []  # a second copy of a message held
        if message.height < t or message.height > t + 1:
            raise Rejected(Kind.MESSAGE, Reason.STALE, f"height {message.height}, head at {t}")
        if (
            message.height > t
            and sum(len(p) for h, p in self.pools.items() if h > t) >= self.params.max_future_messages
        ):
            raise Rejected(Kind.MESSAGE, Reason.STALE, f"height {message.height}: too many ahead of the head")
        if message.pseudonym in self.pseudonyms.get(message.height, set()):
            raise Rejected(Kind.MESSAGE, Reason.DUPLICATE, message.pseudonym.hex()[:16])
        rules.check_message(message, self.dimension)
        self._pool(message.height)[message.hash] = message
        self.pseudonyms.setdefault(message.height, set()).add(message.pseudonym)
        return self._maybe_aggregate() if message.height == t else []

    def _pool(self, height: int) -> dict[bytes, GradientMessage]:
        return self.pools.setdefault(height, {})

    # -- miner ------------------------------------------------------------------------------------------------

    def _maybe_aggregate(self) -> list[Effect]:
        """Aggregate once for this head, when its collect time has passed and l messages are held."""
        head = self.head
        if self._ready != head.hash or self._aggregated == head.hash or self.done:
            return []
        pool = self.pools.get(head.height, {})
        if len(pool) < self.least:
            return []
        self._aggregated = head.hash
        messages = canonical(list(pool.values()))
        op = self._aggregate_op(head, messages)
        return [self._compute(_Job("aggregate", head.hash, messages), op)]

    def _aggregate_op(self, parent: Block, messages: tuple[GradientMessage, ...]) -> AggregateGradients:
        p = self.params
        return AggregateGradients(
            self.spec,
            parent.weights,
            tuple(m.vector for m in messages),
            tuple(m.norm for m in messages),
            p.aggregator,
            self.least,
            p.krum_f,
            p.lr,
            p.l2,
        )

    def _on_aggregated(self, job: _Job, result: JobResult) -> list[Effect]:
        if job.head != self.head.hash:
            return []
        if job.kind == "aggregate":
            if not isinstance(result, Aggregation):
                return [Record("aggregate_failed", {"height": self.head.height, "detail": _detail(result)})]
            if self.byzantine_miner and self.params.miner_attack == "model":
                op = Perturb(self.spec, result.weights, "gaussian", self.params.perturb_scale, self._seed(b"perturb"))
                return [self._compute(dataclasses.replace(job, kind="perturb", header=_selection(result)), op)]
            return self._mine(job.messages, result.weights, result.selected)
        if not isinstance(result, bytes) or job.header is None:
            return [Record("aggregate_failed", {"height": self.head.height, "detail": _detail(result)})]
        return self._mine(job.messages, result, job.header.selected)

    def _mine(self, messages: tuple[GradientMessage, ...], weights: bytes, selected: tuple[int, ...]) -> list[Effect]:
        """Build B_{t+1}'s header over the aggregation and search its nonce (a Byzantine miner falsifies first)."""
        if self.byzantine_miner and self.params.miner_attack == "selection":
            selected = _swap_one(selected, len(messages))
        if self.byzantine_miner and self.params.miner_attack == "forge" and messages:
            forged = dataclasses.replace(messages[0], norm=messages[0].norm * 2.0)  # its signature no longer holds
            messages = canonical([forged, *messages[1:]])
        head = self.head
        header = Header(
            prev=head.hash,
            height=head.height + 1,
            timestamp=self.now,
            merkle_root=messages_root(messages),
            model_hash=sha256(weights),
            miner_key=self.identity.public_key,
            selected=selected,
        )
        job = _Job("mine", head.hash, messages, header, weights)
        self._next_job += 1
        self._jobs[self._next_job] = job
        return [
            Mine(self._next_job, header.pow_prefix(), self.params.target, NONCE_TAG),
            Record("mining", {"height": header.height, "messages": len(messages)}),
        ]

    def _on_nonce(self, job: _Job, result: JobResult) -> list[Effect]:
        if job.head != self.head.hash or job.header is None or not isinstance(result, int) or isinstance(result, bool):
            return []
        header = with_nonce(job.header, result).signed_by(self.identity)
        if not meets_target(header.pow_hash, self.params.target):
            return [Record("bad_nonce", {"nonce": result})]
        block = Block(header, job.weights, job.messages)
        payload = (len(block.weights) + sum(len(m.vector) for m in block.messages)) / MB
        effects: list[Effect] = [
            Broadcast(block, block.size_bytes / MB, payload_mb=payload),
            Record(
                "block_mined",
                {
                    "height": block.height,
                    "block": block.hash.hex(),
                    "messages": len(block.messages),
                    "bytes": block.size_bytes,
                    "byzantine": self.byzantine_miner,
                },
            ),
        ]
        return effects + self._accept(block)

    # -- validation ---------------------------------------------------------------------------------------------

    def _on_block(self, block: Block, sender: bytes = b"") -> list[Effect]:
        """Judge a block from sender (b"": from an orphan buffer or a catch-up answer, where nobody is asked for
        its ancestors); a block whose parent is unknown is buffered and its ancestors asked of sender."""
        digest = block.hash
        if digest in self.blocks or digest in self.pending or digest in self.rejected:
            return []  # a copy of a block this node has judged, or is judging
        header = block.header
        if header.height < self.head.height - POOL_DEPTH + 1:
            return []  # far below the head: it cannot change the main chain
        if not meets_target(header.pow_hash, self.params.target):
            raise self._reject(block, Reason.BAD_POW)
        if len(header.miner_key) != 32 or not header.signature_valid(header.miner_key):
            raise self._reject(block, Reason.BAD_SIGNATURE, "the miner's signature")
        if header.prev in self.rejected:
            raise self._reject(block, Reason.INVALID_PARENT)
        parent = self.blocks.get(header.prev)
        if parent is None:
            waiting = self.orphans.setdefault(header.prev, [])
            held = sum(len(o) for o in self.orphans.values())
            if held < self.params.max_orphans and all(o.hash != digest for o in waiting):
                waiting.append(block)
            if header.prev in self.pending or any(o.hash == header.prev for w in self.orphans.values() for o in w):
                return []  # the parent is being checked, or waits for its own parent: not unknown
            unknown = Rejected(Kind.BLOCK, Reason.UNKNOWN_PARENT, "buffered until its parent arrives")
            return [*self._catch_up(sender, max(1, self.head.height - POOL_DEPTH + 1)), self._rejected(unknown)]
        pool = self.pools.get(parent.height, {})
        # Strict mode rejects a block holding a message this node never received: that says nothing of a block
        # mined while it was away.
        strict = self.params.strict and digest not in self._away
        try:
            unseen = rules.check_block(block, parent, self.dimension, self.least, pool, strict)
        except Rejected as exc:
            raise self._reject(block, exc.reason, exc.detail) from exc
        if header.model_hash != sha256(block.weights):
            raise self._reject(block, Reason.BAD_MODEL, "the header's H(w) is not the block's model")
        count = rules.selected_count(self.params, self.least, len(block.messages))
        try:
            rules.check_selection(header.selected, len(block.messages), count)
        except Rejected as exc:
            raise self._reject(block, exc.reason, exc.detail) from exc
        job = self._compute(_Job("check", digest, block=block), self._aggregate_op(parent, block.messages))
        self.pending[digest] = job.job
        effects: list[Effect] = [job]
        if unseen:
            effects.append(Record("unseen_messages", {"height": block.height, "count": unseen}))
        return effects

    def _on_checked(self, job: _Job, result: JobResult) -> list[Effect]:
        block = job.block
        if block is None or self.pending.pop(block.hash, None) is None:
            return []
        if isinstance(result, Aggregation):
            if result.selected != block.header.selected:
                raise self._reject(block, Reason.BAD_SELECTION, "re-executing the aggregation selects others")
            if sha256(result.weights) != block.header.model_hash:
                raise self._reject(block, Reason.BAD_MODEL, "re-executing the aggregation gives another w_{t+1}")
            return self._accept(block)
        if isinstance(result, EvaluationFailed):
            raise self._reject(block, Reason.BAD_MODEL, result.detail)
        # JobFailed (or nothing): the driver's trouble, never the block's; a later copy of it is checked again.
        return [Record("check_failed", {"height": block.height, "detail": _detail(result)})]

    # -- catch-up -----------------------------------------------------------------------------------------------

    def _catch_up(self, peer: bytes, from_height: int, *, more: bool = False) -> list[Effect]:
        """Ask peer for SYNC_BATCH blocks of its main chain from from_height: one request at a time, and once per
        peer and own head unless it continues a full answer (more), so a peer's blocks cannot make it loop."""
        if not peer or self._syncing is not None or (not more and self._asked.get(peer) == self.head.hash):
            return []
        self._asked[peer] = self.head.hash
        self._next_job += 1
        self._syncing = self._next_job
        self._jobs[self._next_job] = _Job("sync", peer, from_height=from_height)
        return [
            Request(self._next_job, peer, ChainRequest(from_height, SYNC_BATCH)),
            Record("catch_up", {"peer": peer.hex()[:16], "from_height": from_height, "head": self.head.height}),
        ]

    def _on_chain(self, job: _Job, result: JobResult) -> list[Effect]:
        """A peer's catch-up answer: each block judged as any other; the next batch is asked for when this one was
        full and its last block new, above the height asked and not rejected (so answers cannot make it loop)."""
        self._syncing = None
        if not isinstance(result, bytes):
            del self._asked[job.head]  # unreachable or refusing for now: its next block may ask again
            return [Record("catch_up_failed", {"peer": job.head.hex()[:16], "detail": _detail(result)})]
        try:
            chain: Chain = encoding.decode(Chain, result)
        except (EncodingError, ValueError, TypeError) as exc:
            return [self._rejected(Rejected(Kind.BLOCK, Reason.BAD_CHAIN, str(exc)[:200]))]
        effects: list[Effect] = []
        blocks = chain.blocks[:SYNC_BATCH]  # a peer that sends more than asked gets no more attention than that
        last = blocks[-1].hash if blocks else b""
        new = last not in self.blocks and last not in self.rejected and last not in self.pending
        for block in blocks:
            if self.done:
                return effects
            self._away.add(block.hash)
            try:
                effects += self._on_block(block)
            except Rejected as exc:
                effects.append(self._rejected(exc))
        # Only blocks still waiting (buffered or being re-executed) keep the mark; the rest are judged or skipped.
        self._away &= {o.hash for waiting in self.orphans.values() for o in waiting} | self.pending.keys()
        if len(blocks) == SYNC_BATCH and new and last not in self.rejected and blocks[-1].height >= job.from_height:
            effects += self._catch_up(job.head, blocks[-1].height + 1, more=True)
        return effects

    # -- helpers ------------------------------------------------------------------------------------------------

    def _selected_record(self, block: Block) -> list[Effect]:
        """Whether this holder's message of the parent's height made the new head's selection."""
        t = block.height - 1
        mine = self._pseudonym(t).node_id
        for i in block.header.selected:
            if i < len(block.messages) and block.messages[i].pseudonym == mine:
                return [Record("message_selected", {"height": t, "byzantine": self.byzantine_holder})]
        return []

    def _rejected(self, exc: Rejected) -> Record:
        label = f"{exc.kind}.{exc.reason}"
        self.rejections[label] = self.rejections.get(label, 0) + 1
        return _rejected(exc.kind, exc.reason, exc.detail)

    def _compute(self, job: _Job, op: PrivateGradient | AggregateGradients | Perturb) -> Compute:
        self._next_job += 1
        self._jobs[self._next_job] = job
        return Compute(self._next_job, op)

    def _seed(self, label: bytes) -> int:
        return int.from_bytes(sha256(self.head.hash, label, self.node_id)[:8], "little") % SEED_MODULUS


def model_dimension(spec: ModelSpec) -> int:
    """d of softmax regression: C * F + C (the only family LearningChain's gradients take)."""
    params = json.loads(spec.params_json)
    if spec.family != "softmax":
        raise ValueError(f"LearningChain trains softmax regression, not {spec.family!r}")
    classes, features = int(params["classes"]), math.prod(int(s) for s in params["input"])
    return classes * features + classes


def _selection(result: Aggregation) -> Header:
    """A placeholder header that carries an aggregation's selection through the perturb job."""
    return Header(b"", 0, 0, b"", b"", b"", result.selected)


def _swap_one(selected: tuple[int, ...], messages: int) -> tuple[int, ...]:
    """A Byzantine miner's wrong selection: its first selected index replaced by an unselected one."""
    outside = [i for i in range(messages) if i not in selected]
    if not selected or not outside:
        return selected
    return tuple(sorted({*selected[1:], outside[0]}))


def _rejected(kind: str, reason: str, detail: str) -> Record:
    return Record(RECORD_REJECTED, {"kind": str(kind), "reason": str(reason), "detail": detail})


def _detail(result: JobResult) -> str:
    return str(getattr(result, "detail", type(result).__name__))
