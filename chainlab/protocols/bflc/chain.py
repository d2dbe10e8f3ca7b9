"""The chain a BFLC node holds, the roles it implies for the current round, and the checks before appending a round.

Pure: validation needs no ML. The one check that does (mblk.bad_aggregate: re-running the Aggregate) is made by
the committee members holding the packed updates, before they endorse; every other node relies on the > M/2
endorsements for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chainlab.ledger.identity import node_id_of
from chainlab.protocols.bflc import committee, rules
from chainlab.protocols.bflc.messages import ModelBlock, Reward, RoundBlocks, Scores, UpdateBlock
from chainlab.protocols.bflc.params import BflcParams
from chainlab.protocols.bflc.reasons import Kind, Reason, Rejected


@dataclass(frozen=True)
class Outcome:
    """What a round's score vectors imply: S_i, the packed uploaders (in block order), C_{t+1}, blacklist, rewards."""

    scores: dict[bytes, float]
    packed: tuple[bytes, ...]
    committee: tuple[bytes, ...]
    blacklisted: tuple[bytes, ...]
    rewards: tuple[Reward, ...]


class ChainState:
    """Model blocks and update blocks in order, with the member list, blacklist and balances they imply."""

    def __init__(self, genesis: ModelBlock, params: BflcParams) -> None:
        if genesis.spec is None:
            raise ValueError("the genesis model block must name the model spec")
        self.params = params
        self.genesis = genesis
        self.spec = genesis.spec
        self.rounds: list[RoundBlocks] = []
        self.members: dict[bytes, bytes] = {}  # ID -> public key
        self.blacklist: set[bytes] = set()
        self.balances: dict[bytes, float] = {}
        self._admit(genesis.members)
        self._roles_cache: tuple[bytes, tuple[bytes, ...]] | None = None

    @property
    def tip(self) -> ModelBlock:
        """The latest model block: w_t and C_t of the current round t."""
        return self.rounds[-1].model_block if self.rounds else self.genesis

    @property
    def round(self) -> int:
        """The current round t (the tip's)."""
        return self.tip.round

    @property
    def committee(self) -> tuple[bytes, ...]:
        """C_t."""
        return self.tip.committee

    @property
    def trainers(self) -> tuple[bytes, ...]:
        """A_t, drawn from the tip's hash (cached per tip: it is asked for every message)."""
        tip = self.tip
        if self._roles_cache is None or self._roles_cache[0] != tip.hash:
            count = committee.active_count(self.params.active, len(self.members))
            drawn = committee.trainers(tip.hash, self.members, tip.committee, self.blacklist, count)
            self._roles_cache = (tip.hash, drawn)
        return self._roles_cache[1]

    def quorum(self) -> int:
        """Endorsements a model block needs: more than half of C_t."""
        return len(self.committee) // 2 + 1

    def outcome(self, vectors: tuple[Scores, ...], packed_unscored: tuple[bytes, ...] = ()) -> Outcome:
        """The round's result from its score vectors (BFLC), or from the uploaders an aggregator packed (baselines)."""
        params = self.params
        if not params.scored:
            return Outcome({}, tuple(sorted(packed_unscored)), self.committee, (), ())
        scores = rules.update_scores(vectors, params)
        packed = rules.select(scores, params, len(self.trainers), rules.model_floor(vectors, params))
        expelled = rules.blacklisted(scores, params)
        seats = committee.seats(params.committee, len(self.trainers))
        elected = committee.elect(scores, seats, params.election, self.tip.hash, expelled)
        if not elected:  # nobody was scored: the committee stays rather than vanish ([A], keeps the chain live)
            elected = self.committee
        paid = rules.rewards([(u, scores[u]) for u in packed], params)
        return Outcome(scores, packed, elected, expelled, paid)

    def check_scores(self, vector: Scores) -> None:
        """A score vector of the current round: from a member of C_t, signed, scores in [0, 1] of A_t's updates."""
        if vector.round != self.round:
            raise Rejected(Kind.SCORES, Reason.WRONG_ROUND, f"round {vector.round}, current {self.round}")
        if vector.member not in self.committee:
            raise Rejected(Kind.SCORES, Reason.NOT_COMMITTEE, vector.member.hex()[:16])
        if not vector.signature_valid(vector.member_key):
            raise Rejected(Kind.SCORES, Reason.BAD_SIGNATURE)
        if len(vector.uploaders) != len(vector.scores):
            raise Rejected(Kind.SCORES, Reason.OUT_OF_RANGE, "one score per uploader")
        if not all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in vector.scores):
            raise Rejected(Kind.SCORES, Reason.OUT_OF_RANGE, "scores lie in [0, 1]")
        if not set(vector.uploaders) <= set(self.trainers):
            raise Rejected(Kind.SCORES, Reason.NOT_TRAINER, "a score of a node that is not a trainer")
        if len(set(vector.uploaders)) != len(vector.uploaders):
            raise Rejected(Kind.SCORES, Reason.DUPLICATE, "two scores of one update")

    def check(self, blocks: RoundBlocks, *, endorsed: bool = True) -> Outcome:
        """Every rule of a round's blocks that needs no ML; Rejected naming the first broken one.

        endorsed: also require > M/2 valid endorsements of C_t (a commit; a proposal has only the leader's).
        """
        mb, ubs, tip = blocks.model_block, blocks.update_blocks, self.tip
        if mb.round != tip.round + 1 or mb.number != tip.number + len(ubs) + 1:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_POSITION, f"round {mb.round} number {mb.number}")
        if mb.prev != tip.hash:
            raise Rejected(Kind.MODEL_BLOCK, Reason.WRONG_PARENT)
        if mb.spec is not None or mb.attempt >= len(self.committee):
            raise Rejected(Kind.MODEL_BLOCK, Reason.NOT_LEADER if mb.spec is None else Reason.BAD_POSITION)
        if tuple(ub.hash for ub in ubs) != mb.update_blocks:
            raise Rejected(Kind.UPDATE_BLOCK, Reason.BAD_POSITION, "the model block lists other update blocks")
        for j, ub in enumerate(ubs):
            if ub.round != tip.round or ub.number != tip.number + 1 + j:
                raise Rejected(Kind.UPDATE_BLOCK, Reason.BAD_POSITION, f"round {ub.round} number {ub.number}")
        members = [v.member for v in mb.scores]
        if members != sorted(set(members)) or (mb.scores and not self.params.scored):
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_SCORES, "score vectors must be unique, sorted by member")
        for vector in mb.scores:
            try:
                self.check_scores(vector)
            except Rejected as exc:
                raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_SCORES, str(exc)) from exc
        outcome = self.outcome(mb.scores, tuple(ub.uploader for ub in ubs))
        self._check_updates(ubs, outcome)
        if mb.committee != outcome.committee:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_COMMITTEE)
        if mb.blacklisted != outcome.blacklisted:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_BLACKLIST)
        if mb.rewards != outcome.rewards:
            raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_REWARDS)
        self._check_joins(mb)
        if endorsed:
            self._check_endorsements(mb)
        return outcome

    def _check_updates(self, ubs: tuple[UpdateBlock, ...], outcome: Outcome) -> None:
        trainers = set(self.trainers)
        uploaders = tuple(ub.uploader for ub in ubs)
        for ub in ubs:
            if ub.uploader not in trainers:
                raise Rejected(Kind.UPDATE_BLOCK, Reason.NOT_SELECTED, f"{ub.uploader.hex()[:16]} is not a trainer")
            if self.params.scored and ub.score != outcome.scores.get(ub.uploader):
                raise Rejected(Kind.UPDATE_BLOCK, Reason.BAD_MEDIAN, f"{ub.score} for {ub.uploader.hex()[:16]}")
            if not self.params.scored and ub.score != 0.0:
                raise Rejected(Kind.UPDATE_BLOCK, Reason.BAD_MEDIAN, "the baselines score nothing")
        if uploaders != outcome.packed:
            raise Rejected(Kind.UPDATE_BLOCK, Reason.NOT_SELECTED, "the packed updates are not the qualified ones")

    def _check_joins(self, mb: ModelBlock) -> None:
        for key in mb.members:
            node = node_id_of(key)
            if node in self.members or node in self.blacklist or len(key) != 32:
                raise Rejected(Kind.MODEL_BLOCK, Reason.BAD_JOINS, node.hex()[:16])

    def _check_endorsements(self, mb: ModelBlock) -> None:
        valid: set[bytes] = set()
        for e in mb.signatures:
            if (
                e.round == mb.round
                and e.block_hash == mb.hash
                and e.member in self.committee
                and e.signature_valid(e.member_key)
            ):
                valid.add(e.member)
        if len(valid) < self.quorum():
            raise Rejected(
                Kind.MODEL_BLOCK, Reason.INSUFFICIENT_SIGNATURES, f"{len(valid)} of {len(self.committee)} members"
            )

    def append(self, blocks: RoundBlocks) -> None:
        """Add a checked round: admit joins, expel the blacklisted, pay the rewards."""
        mb = blocks.model_block
        self.rounds.append(blocks)
        self._admit(mb.members)
        self.blacklist.update(mb.blacklisted)
        for reward in mb.rewards:
            self.balances[reward.recipient] = self.balances.get(reward.recipient, 0.0) + reward.amount

    def _admit(self, keys: tuple[bytes, ...]) -> None:
        for key in keys:
            self.members[node_id_of(key)] = key
