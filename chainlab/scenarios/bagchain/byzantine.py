"""Byzantine BagChain miners: an honest Miner wrapped so that what it sends lies, each lie caught by a named Reason.

A wrapper feeds every input to the honest miner it holds and transforms the effects that come back: it re-signs
altered blocks with the miner's own key, so honest nodes see a well-authenticated lie and must catch it by
validation (Algorithms 2.1-2.3, section VI-B). The honest core is untouched. Like the core, a wrapper is pure:
every choice it makes is derived from hashes, never from a clock or a random source.

| behaviour        | what it sends                                                   | caught by (honest nodes)        |
|------------------|-----------------------------------------------------------------|---------------------------------|
| plagiarist       | another miner's ModelHash in a MiniBlock under its own ID, and  | model_unavailable (or           |
|                  | that miner's model when asked for it                            | model_hash_mismatch once it     |
|                  |                                                                 | holds the model itself)         |
| lazy             | a base model with no capacity (a decision stump; other families:| below_metric_min                |
|                  | random bytes)                                                   | (model_undecodable)             |
| false_metric_v   | besides its Ensemble Block, a copy claiming a better Metric_V   | false_metric_v                  |
| false_metric_best| Key Blocks whose Metric_best exceeds their ranking's best       | false_metric_best               |
| false_ranking    | Key Blocks ranking the ensembles out of order (one entry: a     | ranking_not_sorted              |
|                  | better Metric_E than it has)                                    | (false_metric_e)                |
| bad_pow          | Key Blocks with a nonce that misses the target                  | bad_pow                         |
| wrong_rewards    | Key Blocks paying the whole reward to itself                    | wrong_rewards                   |
| withholding      | MiniBlocks whose models it never serves                         | model_unavailable               |
| equivocation     | two MiniBlocks of one model at one height, and an Ensemble      | duplicate_model (with CFS)      |
|                  | Block listing both                                              |                                 |
| garbage_flood    | at most FLOOD_PER_ROUND MiniBlocks of noise per round, with     | bad_signature                   |
|                  | signatures that verify under nothing, FLOOD_BUDGET in all       |                                 |

A Byzantine miner's own tip does not vote (NodeStatus.votes is False): "the tips agree" is a claim about honest
nodes, and a liar's view of the chain may be its own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import ClassVar

from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import meets_target
from chainlab.protocols.bagchain import Miner, rules
from chainlab.protocols.bagchain.messages import (
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    ModelRequest,
    RankedEnsemble,
    Reward,
)
from chainlab.protocols.base import Answer, NodeStatus, ProtocolNode, RecordValue, Timer
from chainlab.protocols.effects import Broadcast, CancelJob, Compute, Effect, JobResult, Mine, Record, TrainModel
from chainlab.protocols.spec import ModelSpec

RECORD_BYZANTINE = "byzantine"  # data: behaviour, act, block (hex) where a block was forged
FLOOD_PER_ROUND = 4  # garbage messages a flooding miner sends in one round, at most
FLOOD_BUDGET = 400  # and in all: a flood is bounded, so a run still ends
_GRIND_TRIES = 64  # timestamps a plagiarist tries for its copy's hash
_BAD_NONCE_TRIES = 64  # a nonce missing the target is found at once unless the target lets nearly every hash pass


class ByzantineMiner:
    """An honest Miner whose effects are altered by one behaviour; every input goes to the miner first."""

    role: ClassVar[str] = "miner"
    behaviour: ClassVar[str] = ""

    def __init__(self, honest: Miner) -> None:
        self.honest = honest
        self.identity: Identity = honest.identity

    @property
    def node_id(self) -> bytes:
        """The honest miner's ID: the liar signs with its own key."""
        return self.honest.node_id

    def start(self, now: int) -> list[Effect]:
        """Start the honest miner; its first effects, altered."""
        return self._alter(self.honest.start(now), now)

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """Deliver to the honest miner; its effects, altered, then whatever the message prompts the liar to send."""
        return self._alter(self.honest.on_message(sender, message, now), now) + self._heard(message, now)

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Deliver the timer to the honest miner; its effects, altered."""
        return self._alter(self.honest.on_timer(timer, now), now)

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A job's result: the liar's own (a nonce for a forged Key Block), else the honest miner's."""
        own = self._own_result(job, result, now)
        if own is not None:
            return own
        return self._alter(self.honest.on_result(job, result, now), now)

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """The honest miner's answer."""
        return self.honest.on_request(sender, request, now)

    def status(self) -> NodeStatus:
        """The honest miner's status, not voting on tip agreement."""
        return dataclasses.replace(self.honest.status(), votes=False)

    # ----- hooks ---------------------------------------------------------------------------------------------

    def _transform(self, effect: Effect, now: int) -> Sequence[Effect]:
        """What the liar does instead of one effect of the honest miner (by default: the same)."""
        return (effect,)

    def _heard(self, message: object, now: int) -> list[Effect]:
        """Effects of the liar's own on hearing a message (by default none)."""
        return []

    def _own_result(self, job: int, result: JobResult, now: int) -> list[Effect] | None:
        """Effects for a result of a job the liar took over, or None to hand the result to the honest miner."""
        return None

    def _alter(self, effects: list[Effect], now: int) -> list[Effect]:
        return [out for effect in effects for out in self._transform(effect, now)]

    def _lie(self, act: str, **data: RecordValue) -> Record:
        """A record of what the liar did (logs and results show who lied, and how)."""
        return Record(RECORD_BYZANTINE, {"behaviour": self.behaviour, "act": act, **data})


class Plagiarist(ByzantineMiner):
    """Section VI-B's plagiarist: copies the first foreign MiniBlock of each height under its own ID and serves the
    original's model for it once it holds it (honest nodes check ModelHash = Hash(omega || M_i) against its ID).

    It grinds the copy's timestamp for a hash below the original's where it can: an ensemble keeps one MiniBlock per
    model, the one with the smallest hash (Miner._unique_models), so a node that takes the copy for valid (see
    test_byzantine.py: the victim does today) builds its Ensemble Block on the copy instead of the original."""

    behaviour = "plagiarist"

    def __init__(self, honest: Miner) -> None:
        super().__init__(honest)
        self._copied: set[tuple[int, bytes]] = set()
        self._stolen: set[bytes] = set()  # ModelHashes it claimed

    def _heard(self, message: object, now: int) -> list[Effect]:
        if not isinstance(message, MiniBlock) or message.miner_key == self.identity.public_key:
            return []
        key = (message.height, message.task_id)
        if key in self._copied or message.hash not in self.honest.miniblocks:
            return []  # one copy per height, of a MiniBlock the honest miner took in
        self._copied.add(key)
        drafts = (
            MiniBlock(
                now + k, self.identity.public_key, message.task_id, message.model_hash, message.prehash, message.height
            )
            for k in range(_GRIND_TRIES)
        )
        copy = min(drafts, key=lambda mb: mb.hash).signed_by(self.identity)
        self._stolen.add(message.model_hash)
        size = self.honest.params.miniblock_size_mb
        return [Broadcast(copy, size), self._lie("copied_miniblock", block=copy.hash.hex(), of=message.hash.hex())]

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """For a stolen ModelHash, the original model (if the honest miner fetched it yet); else the honest answer."""
        if isinstance(request, ModelRequest) and request.model_hash in self._stolen:
            return self.honest.models.get(request.model_hash)
        return super().on_request(sender, request, now)


class Lazy(ByzantineMiner):
    """Trains nothing worth the name: a decision stump where the task asks for a tree, random bytes otherwise."""

    behaviour = "lazy"

    def __init__(self, honest: Miner) -> None:
        super().__init__(honest)
        self._random: set[int] = set()  # training jobs whose model it replaces with noise

    def _transform(self, effect: Effect, now: int) -> Sequence[Effect]:
        if not isinstance(effect, Compute) or not isinstance(effect.op, TrainModel):
            return (effect,)
        spec = effect.op.spec
        if spec.family != "decision_tree":
            self._random.add(effect.job)
            return (effect, self._lie("random_model"))
        stump_spec = ModelSpec.of(spec.family, {**json.loads(spec.params_json), "max_depth": 1})
        stump = dataclasses.replace(effect.op, spec=stump_spec)
        return (Compute(effect.job, stump), self._lie("stump"))

    def _own_result(self, job: int, result: JobResult, now: int) -> list[Effect] | None:
        if job not in self._random:
            return None
        self._random.discard(job)
        if isinstance(result, bytes):
            result = sha256(result) * max(1, len(result) // 32)  # noise of the model's size
        return self._alter(self.honest.on_result(job, result, now), now)


class FalseMetricV(ByzantineMiner):
    """Sends, besides each Ensemble Block, a copy claiming a better Metric_V than its members reach on D_V."""

    behaviour = "false_metric_v"

    def _transform(self, effect: Effect, now: int) -> Sequence[Effect]:
        if not isinstance(effect, Broadcast) or not isinstance(effect.message, EnsembleBlock):
            return (effect,)
        eb = effect.message
        claimed = self.honest.params.round_metric(min(1.0, eb.metric_v + 0.1)) if eb.metric_v < 1.0 else 0.5
        forged = dataclasses.replace(eb, metric_v=claimed).signed_by(self.identity)
        return (effect, Broadcast(forged, effect.size_mb), self._lie("false_metric_v", block=forged.hash.hex()))


class Equivocator(ByzantineMiner):
    """Two MiniBlocks of one model at one height (the second a second later), and an Ensemble Block listing both
    (CFS condition 2: one MiniBlock per base model)."""

    behaviour = "equivocation"

    def __init__(self, honest: Miner) -> None:
        super().__init__(honest)
        self._twins: dict[bytes, MiniBlock] = {}  # own MiniBlock hash -> its twin

    def _transform(self, effect: Effect, now: int) -> Sequence[Effect]:
        if not isinstance(effect, Broadcast):
            return (effect,)
        message = effect.message
        if isinstance(message, MiniBlock) and message.miner_key == self.identity.public_key:
            twin = dataclasses.replace(message, timestamp=message.timestamp + 1).signed_by(self.identity)
            self._twins[message.hash] = twin
            return (effect, Broadcast(twin, effect.size_mb), self._lie("twin_miniblock", block=twin.hash.hex()))
        if isinstance(message, EnsembleBlock):
            twins = [self._twins[h].hash for h in message.miniblocks if h in self._twins]
            if twins:
                both = tuple(sorted((*message.miniblocks, *twins)))
                forged = dataclasses.replace(message, miniblocks=both).signed_by(self.identity)
                return (effect, Broadcast(forged, effect.size_mb), self._lie("both_twins", block=forged.hash.hex()))
        return (effect,)


class Withholder(ByzantineMiner):
    """Publishes its MiniBlocks but never serves their models (section VI-B's two-stage submission asks it to once
    D_V is out)."""

    behaviour = "withholding"

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """Nothing for a model; anything else as the honest miner answers it."""
        if isinstance(request, ModelRequest):
            return None
        return super().on_request(sender, request, now)


class GarbageFlood(ByzantineMiner):
    """Gossips noise shaped as MiniBlocks, with signatures that verify under no key: at most FLOOD_PER_ROUND in a
    round in which it hears anything, FLOOD_BUDGET in all."""

    behaviour = "garbage_flood"

    def __init__(self, honest: Miner) -> None:
        super().__init__(honest)
        self._sent = 0
        self._last_round = -1

    def _alter(self, effects: list[Effect], now: int) -> list[Effect]:
        out = super()._alter(effects, now)
        if now == self._last_round or self._sent >= FLOOD_BUDGET:
            return out
        self._last_round = now
        for _ in range(min(FLOOD_PER_ROUND, FLOOD_BUDGET - self._sent)):
            out.append(Broadcast(self._garbage(now), self.honest.params.small_message_size_mb))
            self._sent += 1
        out.append(self._lie("garbage", sent=self._sent))
        return out

    def _garbage(self, now: int) -> MiniBlock:
        noise = sha256(self.node_id, self._sent.to_bytes(8, "big"))
        return MiniBlock(
            timestamp=now,
            miner_key=self.identity.public_key,
            task_id=sha256(noise, b"task"),
            model_hash=sha256(noise, b"model"),
            prehash=sha256(noise, b"parent"),
            height=self.honest.tip.height + 1,
            signature=sha256(noise, b"r") + sha256(noise, b"s"),
        )


class KeyBlockLiar(ByzantineMiner):
    """Mines a forged candidate in place of the honest one: the Mine effect's prefix is the forgery's, and the nonce
    that comes back seals the forgery (the honest miner never hears it, and keeps to the honest chain). A forgery
    is mined to the end even once the honest miner has moved on, so that it is always sent."""

    def __init__(self, honest: Miner) -> None:
        super().__init__(honest)
        self._forged: dict[int, KeyBlock] = {}  # mining job -> the forgery it seals

    def _forge(self, candidate: KeyBlock) -> KeyBlock | None:
        """The lie told in place of candidate, or None where there is none to tell (it mines honestly then)."""
        raise NotImplementedError

    def _seal(self, forged: KeyBlock, nonce: int) -> KeyBlock | None:
        """The forgery with the nonce found for it, signed; None if it cannot be sealed."""
        return dataclasses.replace(forged, nonce=nonce).signed_by(self.identity)

    def _transform(self, effect: Effect, now: int) -> Sequence[Effect]:
        if isinstance(effect, CancelJob) and effect.job in self._forged:
            # The honest miner gave its candidate up (the chain moved on); the liar mines its forgery to the end, so
            # that every forgery it starts is sent and must be caught, however the PoW race goes.
            return ()
        if not isinstance(effect, Mine):
            return (effect,)
        candidate = encoding.decode(KeyBlock, effect.prefix)
        forged = self._forge(candidate)
        if forged is None:
            return (effect,)
        self._forged[effect.job] = forged
        return (dataclasses.replace(effect, prefix=forged.pow_prefix()),)

    def _own_result(self, job: int, result: JobResult, now: int) -> list[Effect] | None:
        forged = self._forged.pop(job, None)
        if forged is None:
            return None
        if isinstance(result, bool) or not isinstance(result, int):
            # The driver failed to mine: the honest miner hears it and asks again.
            return self._alter(self.honest.on_result(job, result, now), now)
        kb = self._seal(forged, result)
        if kb is None:
            return [self._lie("unsealed", height=forged.height)]
        size = self.honest.params.key_block_size_mb
        return [Broadcast(kb, size), self._lie(f"forged_{self.behaviour}", block=kb.hash.hex(), height=kb.height)]

    def _claim(self, value: float) -> float:
        """A better score than value (a worse one where value is already perfect), as blocks write it."""
        return self.honest.params.round_metric(min(1.0, value + 0.1) if value < 1.0 else 0.5)


class FalseMetricBest(KeyBlockLiar):
    """Key Blocks claiming a Metric_best above their ranking's best Metric_E (fork choice prefers it)."""

    behaviour = "false_metric_best"

    def _forge(self, candidate: KeyBlock) -> KeyBlock | None:
        return dataclasses.replace(candidate, metric_best=self._claim(candidate.metric_best))


class FalseRanking(KeyBlockLiar):
    """Key Blocks ranking the Ensemble Blocks worst first; with one entry, claiming a better Metric_E for it."""

    behaviour = "false_ranking"

    def _forge(self, candidate: KeyBlock) -> KeyBlock | None:
        ranking = candidate.ranking
        if len(ranking) >= 2:
            return dataclasses.replace(candidate, ranking=tuple(reversed(ranking)))
        if len(ranking) == 1:
            entry = RankedEnsemble(ranking[0].ensemble_block, self._claim(ranking[0].metric_e))
            return dataclasses.replace(candidate, ranking=(entry,), metric_best=entry.metric_e)
        return None


class WrongRewards(KeyBlockLiar):
    """Key Blocks paying every reward of the block, and a block reward more, to their producer (Merkle root kept
    consistent with the lie, so that the payments themselves are what is wrong)."""

    behaviour = "wrong_rewards"

    def _forge(self, candidate: KeyBlock) -> KeyBlock | None:
        total = sum(r.amount for r in candidate.rewards) + self.honest.params.key_block_reward
        rewards = (Reward(self.node_id, total),)
        return dataclasses.replace(candidate, rewards=rewards, merkle_root=rules.rewards_root(rewards))


class BadPow(KeyBlockLiar):
    """Key Blocks sealed with a nonce that misses the target (mined as long as an honest one, then spoilt)."""

    behaviour = "bad_pow"

    def _forge(self, candidate: KeyBlock) -> KeyBlock | None:
        return candidate

    def _seal(self, forged: KeyBlock, nonce: int) -> KeyBlock | None:
        target = self.honest.params.target
        for bad in range(nonce + 1, nonce + 1 + _BAD_NONCE_TRIES):
            kb = dataclasses.replace(forged, nonce=bad % 2**64)
            if not meets_target(kb.hash, target):
                return kb.signed_by(self.identity)
        return None


BEHAVIOURS: dict[str, type[ByzantineMiner]] = {
    cls.behaviour: cls
    for cls in (
        Plagiarist,
        Lazy,
        FalseMetricV,
        FalseMetricBest,
        FalseRanking,
        BadPow,
        WrongRewards,
        Withholder,
        Equivocator,
        GarbageFlood,
    )
}


def byzantine_miner(node: ProtocolNode, behaviour: str) -> ByzantineMiner:
    """node, a miner (or an earlier liar's miner), acting from now on with `behaviour`; ValueError naming the
    behaviour or the node that cannot have it."""
    cls = BEHAVIOURS.get(behaviour)
    if cls is None:
        raise ValueError(f"bagchain has no behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")
    honest = node.honest if isinstance(node, ByzantineMiner) else node
    if not isinstance(honest, Miner):
        raise ValueError(f"behaviour {behaviour!r} needs a miner, got a {honest.role}")
    return cls(honest)
