"""A BFLC participant: trains when drawn, scores and assembles blocks when on the committee, follows the chain.

All N participants run this one node; whether it trains, scores or only reads the model in round t follows from
the chain (chain.ChainState). The baselines (basic_fl, cwmed) run the same node with a one-seat committee that
never changes: the aggregator, which packs every update unscored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity, node_id_of
from chainlab.protocols.base import Answer, NodeStatus, Timer
from chainlab.protocols.bflc import committee, rules
from chainlab.protocols.bflc.chain import ChainState, Outcome
from chainlab.protocols.bflc.messages import (
    Chain,
    ChainRequest,
    Commit,
    Endorsement,
    Join,
    Message,
    ModelBlock,
    Proposal,
    RoundBlocks,
    Scores,
    Update,
    UpdateBlock,
)
from chainlab.protocols.bflc.params import BflcParams
from chainlab.protocols.bflc.reasons import Kind, Reason, Rejected
from chainlab.protocols.bflc.timers import LeaderDeadline, Resend, ScoreDeadline
from chainlab.protocols.effects import (
    PRIVATE,
    RECORD_REJECTED,
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

SEED_MODULUS = 2**31  # seeds handed to the driver stay within every ML library's range
MAX_FUTURE_MESSAGES_PER_MEMBER = 4  # messages of the next round held until this node reaches it


@dataclass
class _Job:
    """What a pending Compute is for."""

    kind: str  # train, perturb, score, shape, base (a member's score of w_t), aggregate, check
    round: int
    uploader: bytes = b""
    blocks: RoundBlocks | None = None
    sender: bytes = b""


@dataclass
class _Round:
    """This node's working state for the current round t."""

    round: int
    updates: dict[bytes, Update] = field(default_factory=dict)  # by uploader (committee members only)
    scores: dict[bytes, float] = field(default_factory=dict)  # this member's s_ij by uploader
    resolved: set[bytes] = field(default_factory=set)  # uploaders scored, shape-checked, or failed
    sent_scores: bool = False
    base: float | None = None  # this member's score of w_t (floor "model"), once measured
    vectors: dict[bytes, Scores] = field(default_factory=dict)  # score vectors received, by member
    attempt: int = 0
    proposed: set[int] = field(default_factory=set)
    proposal: RoundBlocks | None = None  # this leader's proposal awaiting endorsements
    endorsements: dict[bytes, Endorsement] = field(default_factory=dict)
    endorsed: set[int] = field(default_factory=set)  # attempts this member endorsed (one block each)


class BflcNode:
    """One participant of a BFLC (or baseline) network."""

    role: ClassVar[str] = "miner"

    def __init__(
        self,
        identity: Identity,
        params: BflcParams,
        genesis: ModelBlock,
        *,
        n_samples: int,
        malicious: bool = False,
        colluders: frozenset[bytes] = frozenset(),
    ) -> None:
        self.identity = identity
        self.params = params
        self.chain = ChainState(genesis, params)
        self.n_samples = n_samples
        self.malicious = malicious
        self.colluders = colluders if malicious else frozenset()
        self.pending_joins: dict[bytes, bytes] = {}  # ID -> public key, admitted by the next model block
        self._future: list[tuple[bytes, Message]] = []
        self._update: Update | None = None  # this trainer's signed update of its latest round (resent if unheard)
        self._jobs: dict[int, _Job] = {}
        self._next_job = 0
        self._work = _Round(-1)
        self._done_recorded = False

    @property
    def node_id(self) -> bytes:
        """This node's ID."""
        return self.identity.node_id

    # -- inputs -----------------------------------------------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        """Take up round 0's role."""
        return self._begin_round()

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A peer's message: checked, then acted on; a rejection is recorded, never raised."""
        try:
            match message:
                case Update():
                    return self._on_update(sender, message)
                case Scores():
                    return self._on_scores(sender, message)
                case Proposal():
                    return self._on_proposal(sender, message)
                case Endorsement():
                    return self._on_endorsement(message)
                case Commit():
                    return self._on_commit(sender, message)
                case Join():
                    return self._on_join(message)
                case _:
                    return [_rejected_record(type(message).__name__, "malformed", "not a BFLC message")]
        except Rejected as exc:
            return [_rejected_record(exc.kind, exc.reason, exc.detail)]

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Round deadlines: send the scores there are; take over as leader; record a stalled round; resend."""
        work = self._work
        if isinstance(timer, Resend):
            return self._resend(timer)
        if isinstance(timer, ScoreDeadline) and timer.round == work.round:
            return self._send_scores(force=True)
        if not isinstance(timer, LeaderDeadline) or timer.round != work.round or self._finished():
            return []
        if self.chain.round != timer.round:
            return []
        effects = self._send_scores(force=True) if self.params.scored else []
        if timer.attempt and timer.attempt % len(self.chain.committee) == 0:
            # Every member has led once and the round is still open: say so, and go round again (resent updates
            # may have reached a leader since), rather than leave the chain stuck for good.
            effects.append(Record("stalled", {"round": work.round, "attempts": timer.attempt}))
        work.attempt = max(work.attempt, timer.attempt)
        effects += self._maybe_build(deadline=True)
        effects.append(StartTimer(LeaderDeadline(work.round, timer.attempt + 1), self.params.leader_deadline))
        return effects

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A training, scoring or aggregation result for the current round (stale ones are dropped)."""
        pending = self._jobs.pop(job, None)
        if pending is None or pending.round != self._work.round:
            return []
        try:
            match pending.kind:
                case "train" | "perturb":
                    return self._trained(pending, result)
                case "score" | "shape":
                    return self._scored(pending, result)
                case "base":
                    return self._based(result)
                case "aggregate":
                    return self._aggregated(pending, result)
                case "check":
                    return self._checked(pending, result)
        except Rejected as exc:
            return [_rejected_record(exc.kind, exc.reason, exc.detail)]
        return []

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """The chain from a round on (the results reader's request); nothing else is served."""
        if not isinstance(request, ChainRequest):
            return None
        rounds = tuple(self.chain.rounds[request.from_round :])
        return encoding.encode(Chain(self.chain.genesis, rounds))

    def status(self) -> NodeStatus:
        """Height = the model block's round t; tip = its hash; done once every round is written."""
        return NodeStatus(self.role, self.chain.round, self.chain.tip.hash, votes=True, done=self._finished())

    # -- round life cycle ---------------------------------------------------------------------------------------

    def _finished(self) -> bool:
        return self.chain.round >= self.params.rounds

    def _begin_round(self) -> list[Effect]:
        t = self.chain.round
        self._work = _Round(t)
        if self._finished():
            if self._done_recorded:
                return []
            self._done_recorded = True
            return [Record("done", {"round": t})]
        effects: list[Effect] = []
        me = self.node_id
        if me in self.chain.trainers:
            steps = self.params.steps_for(self.n_samples)
            op = TrainSteps(
                self.chain.spec,
                self.chain.tip.weights,
                PRIVATE,
                steps,
                self.params.batch_size,
                self._seed(b"train"),
                iteration=t * steps,
            )
            effects.append(self._compute(_Job("train", t), op))
        if me in self.chain.committee:
            if self.params.scored:
                effects.append(StartTimer(ScoreDeadline(t), self.params.round_deadline))
                if self.params.floor == "model":
                    base = EvaluateModel(self.chain.spec, self.chain.tip.weights, PRIVATE)
                    effects.append(self._compute(_Job("base", t), base))
            after = self.params.round_deadline + self.params.leader_deadline
            effects.append(StartTimer(LeaderDeadline(t, 0), after))
        future, self._future = self._future, []
        for sender, message in future:
            effects += self.on_message(sender, message, 0)
        return effects

    def _append(self, blocks: RoundBlocks) -> list[Effect]:
        self.chain.append(blocks)
        for key in blocks.model_block.members:
            self.pending_joins.pop(node_id_of(key), None)
        effects: list[Effect] = [CancelJob(job) for job in self._jobs]
        self._jobs.clear()
        return effects + self._begin_round()

    def _later(self, sender: bytes, message: Message, round_: int, kind: Kind) -> list[Effect]:
        """A message of the next round, held until this node has its model block (gossip may overtake it)."""
        if round_ == self.chain.round + 1 and len(self._future) < MAX_FUTURE_MESSAGES_PER_MEMBER * len(
            self.chain.members
        ):
            self._future.append((sender, message))
            return []
        reason = Reason.BAD_POSITION if kind == Kind.MODEL_BLOCK else Reason.WRONG_ROUND
        raise Rejected(kind, reason, f"round {round_}, current {self.chain.round}")

    # -- trainers -----------------------------------------------------------------------------------------------

    def _trained(self, job: _Job, result: JobResult) -> list[Effect]:
        if not isinstance(result, bytes):
            return [Record("training_failed", {"round": job.round, "detail": _detail(result)})]
        if job.kind == "train" and self.malicious:
            op = Perturb(self.chain.spec, result, "gaussian", self.params.sigma, self._seed(b"perturb"))
            return [self._compute(_Job("perturb", job.round), op)]
        update = Update(job.round, self.identity.public_key, result, self.n_samples).signed_by(self.identity)
        self._update = update
        effects: list[Effect] = [
            Send(member, update, self.params.model_size_mb, self.params.model_size_mb)
            for member in self.chain.committee
        ]
        if self.params.resend_after > 0 and self.params.resend_limit > 0:
            effects.append(StartTimer(Resend(job.round, self.params.resend_limit - 1), self.params.resend_after))
        return effects

    # -- committee members: updates and scores --------------------------------------------------------------------

    def _resend(self, timer: Resend) -> list[Effect]:
        """This trainer's update again, while its round is still open (an identical copy is ignored by members)."""
        update = self._update
        if update is None or update.round != timer.round or self.chain.round != timer.round or self._finished():
            return []
        effects: list[Effect] = [
            Send(member, update, self.params.model_size_mb, self.params.model_size_mb)
            for member in self.chain.committee
        ]
        if timer.left > 0:
            effects.append(StartTimer(Resend(timer.round, timer.left - 1), self.params.resend_after))
        return effects

    def _on_update(self, sender: bytes, update: Update) -> list[Effect]:
        chain, work = self.chain, self._work
        if work.updates.get(update.uploader) == update:
            return []  # a trainer's resend of what this member has: not a second update
        if update.round > chain.round:
            return self._later(sender, update, update.round, Kind.UPDATE)
        if update.round < chain.round or self._finished():
            raise Rejected(Kind.UPDATE, Reason.WRONG_ROUND, f"round {update.round}, current {chain.round}")
        if self.node_id not in chain.committee:
            raise Rejected(Kind.UPDATE, Reason.NOT_RECIPIENT, "this node is not on the round's committee")
        uploader = update.uploader
        if uploader not in chain.members or uploader in chain.blacklist:
            raise Rejected(Kind.UPDATE, Reason.NOT_MEMBER, uploader.hex()[:16])
        if uploader in chain.committee:
            raise Rejected(Kind.UPDATE, Reason.COMMITTEE_MEMBER, uploader.hex()[:16])
        if uploader not in chain.trainers:
            raise Rejected(Kind.UPDATE, Reason.NOT_TRAINER, uploader.hex()[:16])
        if uploader in work.updates or uploader in work.resolved:
            raise Rejected(Kind.UPDATE, Reason.DUPLICATE, uploader.hex()[:16])
        if work.sent_scores or work.proposed:
            raise Rejected(Kind.UPDATE, Reason.ROUND_FULL, "this member has closed the round's scoring")
        if not update.signature_valid(update.uploader_key):
            raise Rejected(Kind.UPDATE, Reason.BAD_SIGNATURE)
        work.updates[uploader] = update
        if not self.params.scored:  # the aggregator checks that the weights decode, on one sample
            op = EvaluateModel(self.chain.spec, update.weights, PRIVATE, samples=1, seed=0)
            return [self._compute(_Job("shape", work.round, uploader), op)]
        if self.malicious and uploader in self.colluders:
            return self._score(uploader, 0.9 + 0.1 * self._fraction(b"collude", uploader))
        if self.malicious and self.params.collusion == "zero":
            return self._score(uploader, 0.0)
        op = EvaluateModel(self.chain.spec, update.weights, PRIVATE)
        return [self._compute(_Job("score", work.round, uploader), op)]

    def _scored(self, job: _Job, result: JobResult) -> list[Effect]:
        work = self._work
        if isinstance(result, EvaluationFailed):
            work.updates.pop(job.uploader, None)
            work.resolved.add(job.uploader)
            reason = Reason.NON_FINITE if "finite" in result.detail.lower() else Reason.BAD_SHAPE
            effects: list[Effect] = [_rejected_record(Kind.UPDATE, reason, result.detail)]
            return effects + self._after_resolved()
        if not isinstance(result, float | int) or isinstance(result, bool):
            work.resolved.add(job.uploader)  # the driver failed: no score, but no blame either
            return [Record("scoring_failed", {"round": job.round, "detail": _detail(result)}), *self._after_resolved()]
        if job.kind == "shape":
            work.resolved.add(job.uploader)
            return self._after_resolved()
        return self._score(job.uploader, float(result))

    def _based(self, result: JobResult) -> list[Effect]:
        """This member's score of w_t; w_t is on the chain already, so a failure is the driver's: no floor then."""
        ok = isinstance(result, float | int) and not isinstance(result, bool)
        self._work.base = self.params.round_score(min(max(float(result), 0.0), 1.0)) if ok else 0.0  # type: ignore[arg-type]
        effects: list[Effect] = (
            [] if ok else [Record("scoring_failed", {"round": self._work.round, "detail": _detail(result)})]
        )
        return effects + self._after_resolved()

    def _score(self, uploader: bytes, value: float) -> list[Effect]:
        work = self._work
        work.scores[uploader] = self.params.round_score(min(max(value, 0.0), 1.0))
        work.resolved.add(uploader)
        return self._after_resolved()

    def _after_resolved(self) -> list[Effect]:
        if self.params.scored:
            return self._send_scores(force=False)
        return self._maybe_build(deadline=False)

    def _send_scores(self, *, force: bool) -> list[Effect]:
        """Sign this member's score vector and send it to every member, once all of A_t is scored (or forced)."""
        work, chain = self._work, self.chain
        if work.sent_scores or self.node_id not in chain.committee or work.round != chain.round:
            return []
        waiting_for_base = self.params.floor == "model" and work.base is None
        if not force and (len(work.resolved) < len(chain.trainers) or waiting_for_base):
            return []
        work.sent_scores = True
        base = work.base if work.base is not None else 0.0
        vector = Scores.of(work.round, self.identity.public_key, work.scores, base).signed_by(self.identity)
        size = self.params.small_message_size_mb
        effects: list[Effect] = [Send(m, vector, size) for m in chain.committee if m != self.node_id]
        work.vectors[self.node_id] = vector
        return effects + self._maybe_build(deadline=False)

    def _on_scores(self, sender: bytes, vector: Scores) -> list[Effect]:
        chain, work = self.chain, self._work
        if vector.round > chain.round:
            return self._later(sender, vector, vector.round, Kind.SCORES)
        if self.node_id not in chain.committee:
            raise Rejected(Kind.SCORES, Reason.NOT_RECIPIENT, "this node is not on the round's committee")
        chain.check_scores(vector)
        if vector.member in work.vectors:
            raise Rejected(Kind.SCORES, Reason.DUPLICATE, vector.member.hex()[:16])
        work.vectors[vector.member] = vector
        return self._maybe_build(deadline=False)

    # -- the leader ---------------------------------------------------------------------------------------------

    def _maybe_build(self, *, deadline: bool) -> list[Effect]:
        """Assemble the round's blocks if this node leads the current attempt and has what it waits for."""
        chain, work = self.chain, self._work
        if self._finished() or work.attempt in work.proposed:
            return []
        if committee.leader(chain.committee, work.attempt) != self.node_id:
            return []
        if self.params.scored:
            ready = len(work.vectors) == len(chain.committee)
        else:
            ready = len(work.resolved) == len(chain.trainers)
        if not (ready or deadline):
            return []
        vectors = tuple(sorted(work.vectors.values(), key=lambda v: v.member))
        outcome = chain.outcome(vectors, tuple(work.updates))
        missing = [u for u in outcome.packed if u not in work.updates]
        work.proposed.add(work.attempt)
        if missing:  # this leader lost a qualified update: the next member takes over at its deadline
            return [Record("leader_missing_updates", {"round": work.round, "missing": len(missing)})]
        tip = chain.tip
        ubs = tuple(
            UpdateBlock(
                work.round,
                tip.number + 1 + j,
                u,
                work.updates[u].weights_hash,
                work.updates[u].n_samples,
                outcome.scores.get(u, 0.0),
            )
            for j, u in enumerate(outcome.packed)
        )
        draft = RoundBlocks(self._model_block(ubs, outcome, vectors, tip.weights), ubs)
        if not ubs:
            return self._propose(draft)
        return [self._compute(_Job("aggregate", work.round, blocks=draft), self._aggregate_op(ubs))]

    def _aggregate_op(self, ubs: tuple[UpdateBlock, ...]) -> Aggregate:
        updates = [self._work.updates[ub.uploader] for ub in ubs]
        return Aggregate(
            self.chain.spec,
            tuple(u.weights for u in updates),
            rules.coefficients([u.n_samples for u in updates], self.params),
            self.params.aggregate_rule,
        )

    def _model_block(
        self, ubs: tuple[UpdateBlock, ...], outcome: Outcome, vectors: tuple[Scores, ...], weights: bytes
    ) -> ModelBlock:
        chain = self.chain
        joins = tuple(
            key
            for node, key in sorted(self.pending_joins.items())
            if node not in chain.members and node not in chain.blacklist
        )
        return ModelBlock(
            round=chain.round + 1,
            number=chain.tip.number + len(ubs) + 1,
            prev=chain.tip.hash,
            weights=weights,
            update_blocks=tuple(ub.hash for ub in ubs),
            scores=vectors,
            committee=outcome.committee,
            blacklisted=outcome.blacklisted,
            rewards=outcome.rewards,
            members=joins,
            attempt=self._work.attempt,
        )

    def _aggregated(self, job: _Job, result: JobResult) -> list[Effect]:
        assert job.blocks is not None
        if not isinstance(result, bytes):
            # Updates were shape-checked when scored, so this is the driver's failure: let the next leader try.
            return [Record("aggregation_failed", {"round": job.round, "detail": _detail(result)})]
        draft = job.blocks
        return self._propose(RoundBlocks(dataclasses.replace(draft.model_block, weights=result), draft.update_blocks))

    def _propose(self, blocks: RoundBlocks) -> list[Effect]:
        work, chain = self._work, self.chain
        mb = blocks.model_block
        own = Endorsement(mb.round, mb.hash, self.identity.public_key).signed_by(self.identity)
        work.proposal, work.endorsements = blocks, {self.node_id: own}
        work.endorsed.add(mb.attempt)
        proposal = Proposal(mb, blocks.update_blocks)
        effects: list[Effect] = [
            Send(m, proposal, self.params.model_size_mb, self.params.model_size_mb)
            for m in chain.committee
            if m != self.node_id
        ]
        return effects + self._maybe_commit()

    def _on_endorsement(self, endorsement: Endorsement) -> list[Effect]:
        work, chain = self._work, self.chain
        proposal = work.proposal
        if proposal is None or endorsement.block_hash != proposal.model_block.hash:
            return []  # for a proposal this node no longer waits on
        if endorsement.member not in chain.committee:
            raise Rejected(Kind.ENDORSEMENT, Reason.NOT_COMMITTEE, endorsement.member.hex()[:16])
        if endorsement.round != proposal.model_block.round or not endorsement.signature_valid(endorsement.member_key):
            raise Rejected(Kind.ENDORSEMENT, Reason.BAD_SIGNATURE)
        work.endorsements[endorsement.member] = endorsement
        return self._maybe_commit()

    def _maybe_commit(self) -> list[Effect]:
        work, chain = self._work, self.chain
        proposal = work.proposal
        if proposal is None or len(work.endorsements) < chain.quorum():
            return []
        signatures = tuple(e for _, e in sorted(work.endorsements.items()))
        commit = Commit(proposal.model_block.with_signatures(signatures), proposal.update_blocks)
        units = _transmission_units(len(chain.trainers), len(chain.committee), len(chain.members))
        record = Record(
            "round_committed",
            {
                "round": work.round,
                "trainers": len(chain.trainers),
                "committee": len(chain.committee),
                "updates": len(work.updates),
                "packed": len(commit.update_blocks),
                "attempt": proposal.model_block.attempt,
                "units": units,
            },
        )
        return [
            Broadcast(commit, self.params.model_size_mb, self.params.model_size_mb),
            record,
            *self._append(commit.blocks),
        ]

    # -- committee members: checking a proposal -------------------------------------------------------------------

    def _on_proposal(self, sender: bytes, proposal: Proposal) -> list[Effect]:
        chain, work = self.chain, self._work
        mb = proposal.model_block
        if mb.round - 1 > chain.round:
            return self._later(sender, proposal, mb.round - 1, Kind.MODEL_BLOCK)
        if mb.round - 1 < chain.round:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_POSITION, f"round {mb.round}, current {chain.round}")
        if self.node_id not in chain.committee:
            raise Rejected(Kind.MODEL_BLOCK, Reason.NOT_RECIPIENT, "this node is not on the round's committee")
        if (
            mb.attempt >= len(chain.committee)
            or sender != committee.leader(chain.committee, mb.attempt)
            or mb.attempt > work.attempt + 1
        ):
            raise Rejected(Kind.MODEL_BLOCK, Reason.NOT_LEADER, f"attempt {mb.attempt}")
        if mb.attempt in work.endorsed:
            return []  # one endorsement per attempt
        blocks = RoundBlocks(mb, proposal.update_blocks)
        chain.check(blocks, endorsed=False)
        missing = 0
        for ub in blocks.update_blocks:
            held = work.updates.get(ub.uploader)
            if held is None:
                missing += 1
            elif held.weights_hash != ub.update_hash or held.n_samples != ub.n_samples:
                raise Rejected(Kind.UPDATE_BLOCK, Reason.NOT_SELECTED, "not the update its uploader sent")
        if missing:  # cannot re-run the aggregate: abstain rather than sign blind
            return [Record("abstained", {"round": work.round, "missing": missing})]
        if not blocks.update_blocks:
            return self._checked(_Job("check", work.round, blocks=blocks, sender=sender), chain.tip.weights)
        op = self._aggregate_op(blocks.update_blocks)
        return [self._compute(_Job("check", work.round, blocks=blocks, sender=sender), op)]

    def _checked(self, job: _Job, result: JobResult) -> list[Effect]:
        assert job.blocks is not None
        mb = job.blocks.model_block
        if not isinstance(result, bytes):
            return [Record("aggregate_check_failed", {"round": job.round, "detail": _detail(result)})]
        if result != mb.weights:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_AGGREGATE, "re-running the aggregate gives other weights")
        self._work.endorsed.add(mb.attempt)
        endorsement = Endorsement(mb.round, mb.hash, self.identity.public_key).signed_by(self.identity)
        return [Send(job.sender, endorsement, self.params.small_message_size_mb)]

    # -- everyone: committed rounds and joins ---------------------------------------------------------------------

    def _on_commit(self, sender: bytes, commit: Commit) -> list[Effect]:
        chain = self.chain
        mb = commit.model_block
        if mb.round - 1 > chain.round:
            return self._later(sender, commit, mb.round - 1, Kind.MODEL_BLOCK)
        if mb.round <= chain.round:
            known = chain.genesis if mb.round == 0 else chain.rounds[mb.round - 1].model_block
            if known.hash == mb.hash:
                return []  # a copy of a block this node has
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_POSITION, f"round {mb.round} is written already")
        chain.check(commit.blocks, endorsed=True)
        return self._append(commit.blocks)

    def _on_join(self, join: Join) -> list[Effect]:
        node = join.node_id
        if node in self.chain.blacklist:
            raise Rejected(Kind.JOIN, Reason.BLACKLISTED, node.hex()[:16])
        if node in self.chain.members or node in self.pending_joins:
            raise Rejected(Kind.JOIN, Reason.ALREADY_MEMBER, node.hex()[:16])
        if join.fee < self.params.fee:
            raise Rejected(Kind.JOIN, Reason.FEE_UNPAID, f"{join.fee} < {self.params.fee}")
        if not join.signature_valid(join.public_key):
            raise Rejected(Kind.JOIN, Reason.BAD_SIGNATURE)
        self.pending_joins[node] = join.public_key
        return []

    # -- helpers ------------------------------------------------------------------------------------------------

    def _compute(self, job: _Job, op: Aggregate | EvaluateModel | Perturb | TrainSteps) -> Compute:
        self._next_job += 1
        self._jobs[self._next_job] = job
        return Compute(self._next_job, op)

    def _seed(self, label: bytes) -> int:
        return int.from_bytes(sha256(self.chain.tip.hash, label, self.node_id)[:8], "little") % SEED_MODULUS

    def _fraction(self, label: bytes, other: bytes) -> float:
        """A hash-derived number in [0, 1): the protocol's only "randomness"."""
        return int.from_bytes(sha256(self.chain.tip.hash, label, self.node_id, other)[:8], "little") / 2**64


def _transmission_units(trainers: int, members: int, nodes: int) -> int:
    """Model-sized transfers of a round: downloads of w_t, uploads per recipient, block replication."""
    return trainers + trainers * members + (nodes - 1)


def _rejected_record(kind: str, reason: str, detail: str) -> Record:
    return Record(RECORD_REJECTED, {"kind": str(kind), "reason": str(reason), "detail": detail})


def _detail(result: JobResult) -> str:
    return getattr(result, "detail", type(result).__name__)
