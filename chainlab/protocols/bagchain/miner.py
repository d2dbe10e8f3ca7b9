"""A BagChain miner: a full node that trains base models and produces all three block kinds."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Hashable
from typing import Any, ClassVar

from chainlab.ledger.hashing import short
from chainlab.ledger.pow import meets_target
from chainlab.protocols.bagchain import persist, rules
from chainlab.protocols.bagchain.fullnode import FullNode, ModelKey, Waiting
from chainlab.protocols.bagchain.messages import (
    NONCE_TAG,
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    ModelRequest,
    Reward,
    Task,
    model_hash,
)
from chainlab.protocols.bagchain.reasons import Reason, Rejected
from chainlab.protocols.bagchain.timers import Act, CloseCollection
from chainlab.protocols.base import Timer
from chainlab.protocols.effects import Broadcast, CancelJob, Compute, Effect, JobResult, Mine, StartTimer, TrainModel


class Miner(FullNode):
    """Algorithms 1.1-1.3 on top of the full node's validation."""

    role: ClassVar[str] = "miner"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trained: set[tuple[int, bytes, bytes]] = set()  # (height, task, parent scope) with an own MiniBlock
        self._training: set[tuple[int, bytes]] = set()  # (height, task) with a Train job in flight
        self._own: dict[bytes, MiniBlock] = {}  # ModelHash -> own MiniBlock
        self._ensembled: set[tuple[int, bytes, bytes]] = set()
        self._collection_closed: set[tuple[int, bytes]] = set()
        self._mining_job: int | None = None
        self._candidate: KeyBlock | None = None
        # Phase III keeps its ranking as Ensemble Blocks become valid and get their Metric_E, instead of scoring them
        # all again after every event: valid ones not yet scored on D_E, then the scored ones in rank order by
        # (height, task, fork scope).
        self._to_rank: defaultdict[tuple[int, bytes], set[bytes]] = defaultdict(set)
        self._rankings: defaultdict[tuple[int, bytes, bytes], rules.Ranking] = defaultdict(rules.Ranking)
        self._mined_for: tuple[int, bytes, int, int] | None = None  # what the candidate was built from
        # Of those not yet scored, the ones to look at again: new, or their evaluation has come (see _wake).
        self._rank_due: defaultdict[tuple[int, bytes], set[bytes]] = defaultdict(set)
        self._rank_waits: defaultdict[Hashable, set[tuple[tuple[int, bytes], bytes]]] = defaultdict(set)
        self._acted_on = -1  # FullNode._changes when the miner last acted (see _after_progress)
        self._act_asked = False  # an Act timer is on its way
        self._paid: tuple[tuple[bytes | None, int], tuple[Reward, ...], bytes] | None = None  # see _payments

    def start(self, now: int) -> list[Effect]:
        """Begin taking part; a restored miner also stops waiting for model fetches of a height already in Phase II
        (its wait was lost with the process) after ensemble_wait_rounds from now."""
        if self._restored:
            for height, task_id, kind in list(self.releases):
                if kind is DatasetKind.VALIDATION and height > self.chain.tip.height:
                    timer = CloseCollection(height, task_id)
                    self._emit(StartTimer(timer, self.params.ensemble_wait_rounds))
        return super().start(now)

    def _after_restore(self) -> None:
        """Its own MiniBlocks and Ensemble Blocks say what it already trained and aggregated: not done twice."""
        for mb in self.miniblocks.values():
            if mb.miner_key == self.identity.public_key and mb.model_hash in self.models:
                self._own[mb.model_hash] = mb
                self._trained.add((mb.height, mb.task_id, self._fork_scope(mb.prehash)))
        for eb in self.ensembles.values():
            if eb.miner_key == self.identity.public_key and eb.miniblocks and eb.miniblocks[0] in self.miniblocks:
                scope = self._fork_scope(self.miniblocks[eb.miniblocks[0]].prehash)
                self._ensembled.add((eb.height, eb.task_id, scope))

    def own_models(self) -> dict[bytes, bytes]:
        """The base models this miner trained, by ModelHash."""
        return {h: self.models[h] for h in self._own}

    # ----- serving -----------------------------------------------------------------------------------------

    def serve_model(self, request: ModelRequest, now: int) -> bytes | None:
        """Serve an own base model, but only once D_V is out (section VI-B): the request carries the release."""
        mb = self._own.get(request.model_hash)
        if mb is None:
            return super().serve_model(request, now)
        if (mb.height, mb.task_id, DatasetKind.VALIDATION) in self.releases:
            return self.models[mb.model_hash]
        release = request.release
        if release is None or not self._proves_release(release, mb):
            return None
        return self.models[mb.model_hash]

    def _proves_release(self, release: DatasetRelease, mb: MiniBlock) -> bool:
        task = self.tasks.get(mb.task_id)
        return (
            task is not None
            and release.kind is DatasetKind.VALIDATION
            and release.height == mb.height
            and release.task_id == mb.task_id
            and release.dataset == task.validation_commitment
            and release.signature_valid(task.requester_key)
        )

    # ----- the three phases ---------------------------------------------------------------------------------------

    def _after_progress(self) -> None:
        """Act once the round's arrivals are in: Ensemble Blocks, verdicts and metrics come by the hundred in one
        round, and each phase looks at all of them (a Key Block candidate is O(miners) to build). A zero-delay Act
        timer fires after everything already due this round."""
        if self._candidate is not None and self._candidate.height <= self.tip.height:
            self._stop_mining()  # at once: a nonce found later this round would make a stale Key Block
        if self._acted_on == self._changes or self._act_asked:
            return  # nothing it produces from has changed since it last acted (most events bring a MiniBlock)
        self._act_asked = True
        self._emit(StartTimer(Act(), 0))

    def _act(self) -> None:
        """The three phases, on the tip as it is now."""
        self._acted_on = self._changes
        tip = self.tip
        if not tip.task_queue:
            return
        task = self.tasks.get(tip.task_queue[0])
        if task is None:
            return
        height = tip.height + 1
        try:
            self._train_if_due(height, task)
            self._ensemble_if_due(height, task, tip)
            self._mine_if_due(height, task, tip)
        except Waiting:
            pass
        except Rejected as exc:
            # Its own ensemble could not be evaluated: nothing to produce at this height, and worth knowing.
            self._record("production_stopped", height=height, reason=str(exc.reason), detail=exc.detail)

    def _train_if_due(self, height: int, task: Task) -> None:
        """Phase I (Algorithm 1.1): a base model trained on a bootstrap of D_T and private data, once per confirmed
        parent KB_{h-1} while Phase I of the height is open (no D_V released).

        Without CFS a MiniBlock counts only on the fork its prehash names, so a miner that switches to another
        KB_{h-1} runs Algorithm 1.1 again on it: training is keyed on (height, task, parent). With CFS (section V)
        an Ensemble Block takes MiniBlocks of every fork at the height and the Key Block's parent is the majority
        vote of its winning MiniBlocks, so the MiniBlock already made still counts after a switch: training stays
        keyed on (height, task). A Train job still in flight is not doubled: its model is encapsulated for
        whichever parent is the tip when it finishes (the model itself does not depend on the parent).
        """
        scope = self._fork_scope(self.tip.hash)
        if (height, task.task_id, scope) in self._trained or (height, task.task_id) in self._training:
            return
        if (height, task.task_id, DatasetKind.VALIDATION) in self.releases:
            return
        # D_T of a task taken at run time is fetched from its requester first (planned ones are held from the start).
        self._dataset(task.train_commitment, task.requester_id)
        self._training.add((height, task.task_id))
        job = self._new_job("train", (height, task.task_id))
        # A height's first model is seeded by (task, height) alone, so that drivers whose Key Blocks differ (live
        # nonces and timestamps) train the same models. A second one, after a fork switch, is seeded by its parent
        # too: two MiniBlocks of one miner at one height (on two forks) hold different models.
        again = any(h == height and t == task.task_id for h, t, _ in self._trained)
        seed = self._seed_for(task.task_id, height.to_bytes(8, "big"), scope if again else b"")
        self._emit(Compute(job, TrainModel(task.train, (task.train_commitment,), True, seed)))
        self._record("training_started", height=height, task=task.task_id.hex(), parent=self.tip.hash.hex())

    def _fork_scope(self, parent: bytes) -> bytes:
        """What a MiniBlock, an Ensemble Block or a ranking counts on: its parent KB_{h-1} without CFS, every fork
        of the height with CFS (an Ensemble Block then takes MiniBlocks of every fork)."""
        return b"" if self.params.cfs else parent

    def _on_own_result(self, kind: str, key: Any, result: JobResult) -> None:
        if kind == "train" and isinstance(result, bytes):
            self._on_trained(key, result)
        elif kind == "mine" and isinstance(result, int) and not isinstance(result, bool):
            self._on_nonce(result)

    def _on_own_failure(self, kind: str, key: Any) -> None:
        # Forget the attempt so that _after_progress asks for it again.
        if kind == "train":
            self._training.discard(key)
        elif kind == "mine" and self._candidate is not None and self._candidate.hash == key:
            self._mining_job, self._candidate = None, None

    def _on_trained(self, key: tuple[int, bytes], model: bytes) -> None:
        """Encapsulate a finished base model in a MiniBlock on the current tip, if Phase I of its height is open.

        A model whose height or task the tip no longer executes is dropped (training_obsolete): a MiniBlock on a
        parent the miner has left could only join an Ensemble Block of a fork it no longer extends.
        """
        height, task_id = key
        self._training.discard(key)
        tip = self.tip
        if (height, task_id, DatasetKind.VALIDATION) in self.releases:
            self._record("miniblock_too_late", height=height)
            return
        scope = self._fork_scope(tip.hash)
        if (
            tip.height + 1 != height
            or not tip.task_queue
            or tip.task_queue[0] != task_id
            or (height, task_id, scope) in self._trained
        ):
            self._record("training_obsolete", height=height)
            return
        self._trained.add((height, task_id, scope))
        digest = model_hash(model, self.node_id)
        mb = MiniBlock(self.now, self.identity.public_key, task_id, digest, tip.hash, height).signed_by(self.identity)
        self.models[digest] = model
        self._persist(persist.of_model, digest, model)  # before its MiniBlock: a restarted miner can still serve it
        self._own[digest] = mb
        self._store_miniblock(mb)
        self._emit(Broadcast(mb, self.params.miniblock_size_mb))
        self._record(
            "miniblock_created",
            block=mb.hash.hex(),
            height=height,
            task=task_id.hex(),
            model_hash=digest.hex(),
            parent=tip.hash.hex(),
        )

    def _on_valid_ensemble(self, eb: EnsembleBlock) -> None:
        self._to_rank[(eb.height, eb.task_id)].add(eb.hash)
        self._rank_due[(eb.height, eb.task_id)].add(eb.hash)

    def _wake(self, key: Hashable) -> None:
        super()._wake(key)
        for at, eb_hash in self._rank_waits.pop(key, ()):
            self._rank_due[at].add(eb_hash)

    def _on_release(self, release: DatasetRelease) -> None:
        if release.kind is DatasetKind.VALIDATION:
            timer = CloseCollection(release.height, release.task_id)
            self._emit(StartTimer(timer, self.params.ensemble_wait_rounds))

    def _on_own_timer(self, timer: Timer) -> None:
        if isinstance(timer, CloseCollection):
            self._collection_closed.add((timer.height, timer.task_id))
        elif isinstance(timer, Act):
            self._act_asked = False
            self._act()

    def _ensemble_if_due(self, height: int, task: Task, tip: KeyBlock) -> None:
        """Phase II (Algorithm 1.2): aggregate every valid MiniBlock held and publish Metric_V."""
        if (height, task.task_id, DatasetKind.VALIDATION) not in self.releases:
            return  # before the phase (the common case, so no Waiting raised and caught)
        release = self._release(height, task.task_id, DatasetKind.VALIDATION)
        scope = self._fork_scope(tip.hash)
        if (height, task.task_id, scope) in self._ensembled:
            return
        unsettled = self._unsettled[(height, task.task_id, None if self.params.cfs else tip.hash)]
        if unsettled and (height, task.task_id) not in self._collection_closed:
            return
        candidates = [
            self.miniblocks[h]
            for h in self._mb_at[(height, task.task_id)]
            if self.params.cfs or self.miniblocks[h].prehash == tip.hash
        ]
        members = self._unique_models([mb for mb in candidates if mb.hash in self._valid_mbs])
        if not members:
            return
        value = self._metric(ModelKey.of(mb.model_hash for mb in members), task, release.dataset)
        self._ensembled.add((height, task.task_id, scope))
        if not value > task.metric_min:
            return
        eb = EnsembleBlock(
            tuple(sorted(mb.hash for mb in members)),
            value,
            self.identity.public_key,
            task.task_id,
            self.now,
            height,
        ).signed_by(self.identity)
        self._store_ensemble(eb)
        self._pending_ebs.discard(eb.hash)
        self._record_verdict(eb.hash, None)
        self._persist(persist.of_verdict, eb.hash, None)
        self._emit(Broadcast(eb, self.params.ensemble_block_size_mb))
        self._record("ensemble_created", block=eb.hash.hex(), height=height, size=len(members), metric_v=value)

    @staticmethod
    def _unique_models(members: list[MiniBlock]) -> list[MiniBlock]:
        """CFS condition 2: one MiniBlock per base model."""
        seen: dict[bytes, MiniBlock] = {}
        for mb in sorted(members, key=lambda m: m.hash):
            seen.setdefault(mb.model_hash, mb)
        return list(seen.values())

    def _mine_if_due(self, height: int, task: Task, tip: KeyBlock) -> None:
        """Phase III (Algorithm 1.3): rank the valid Ensemble Blocks on D_E and search a nonce."""
        if (height, task.task_id, DatasetKind.TEST) not in self.releases:
            return  # before the phase (the common case, so no Waiting raised and caught)
        release = self._release(height, task.task_id, DatasetKind.TEST)
        at = (height, task.task_id)
        due = self._rank_due[at]
        for eb_hash in sorted(due):  # every evaluation is asked for before waiting for any
            eb = self.ensembles[eb_hash]
            try:
                value = self._metric(self._model_key(eb), task, release.dataset)
            except Waiting as wait:
                for key in wait.on:
                    self._rank_waits[key].add((at, eb_hash))
                continue
            self._to_rank[at].discard(eb_hash)
            scope = self._fork_scope(self._members(eb)[0].prehash)
            self._rankings[(height, task.task_id, scope)].add(rules.ranked(eb_hash, value))
        due.clear()  # only once all are looked at: an evaluation that failed (raised) leaves them due
        if self._to_rank[at]:
            raise Waiting(Reason.EVALUATION_UNFINISHED)
        ranked = self._rankings[(height, task.task_id, self._fork_scope(tip.hash))]
        built_from = (height, tip.hash, len(ranked), len(self.tasks))
        if self._candidate is not None and self._mined_for == built_from:
            return  # nothing the candidate depends on has changed
        ranking = ranked.entries()
        winners = list(self._members(self.ensembles[ranking[0].ensemble_block])) if ranking else []
        parent = self._choose_parent(winners, tip)
        queue = rules.rotate_queue(parent.task_queue, self._next_task(parent))
        rewards, root = self._payments(ranking[0].ensemble_block if ranking else None, task.fee, winners)
        candidate = KeyBlock(
            merkle_root=root,
            timestamp=self.now,
            metric_best=ranking[0].metric_e if ranking else 0.0,
            ranking=ranking,
            miner_key=self.identity.public_key,
            task_id=task.task_id,
            task_queue=queue,
            prehash=parent.hash,
            height=height,
            rewards=rewards,
        )
        current = self._candidate
        if current is not None and dataclasses.replace(current, timestamp=self.now) == candidate:
            self._mined_for = built_from
            return
        self._stop_mining()
        self._candidate, self._mined_for = candidate, built_from
        self._mining_job = self._new_job("mine", candidate.hash)
        self._emit(Mine(self._mining_job, candidate.pow_prefix(), self.params.target, NONCE_TAG))
        self._record("mining", height=height, ranked=len(ranking), parent=short(parent.hash))

    def _payments(self, winner: bytes | None, fee: int, winners: list[MiniBlock]) -> tuple[tuple[Reward, ...], bytes]:
        """The candidate's rewards and their Merkle root, worked out again only when the winning Ensemble Block (or
        the fee) changes: O(miners) each, and the winner usually stays while later Ensemble Blocks are ranked."""
        key = (winner, fee)
        if self._paid is None or self._paid[0] != key:
            rewards = rules.allocate_rewards(fee if winners else 0, winners, self.node_id, self.params.key_block_reward)
            self._paid = (key, rewards, rules.rewards_root(rewards))
        return self._paid[1], self._paid[2]

    def _choose_parent(self, winners: list[MiniBlock], tip: KeyBlock) -> KeyBlock:
        """Without CFS the tip; with CFS the majority vote of the winning MiniBlocks (section V)."""
        if not self.params.cfs or not winners:
            return tip
        voted = [h for h in rules.majority_parents(winners) if h in self.key_blocks]
        if not voted:
            raise Waiting(Reason.UNKNOWN_PARENT)  # the voted parent is still on its way
        return tip if tip.hash in voted else self.key_blocks[min(voted)]

    def _next_task(self, parent: KeyBlock) -> bytes | None:
        """The waiting task with the highest fee (then earliest sequence) joins the queue's tail."""
        scheduled = self.scheduled_tasks(parent)
        waiting = [t for t in self.tasks.values() if t.task_id not in scheduled]
        if not waiting:
            return None
        return min(waiting, key=lambda t: (-t.fee, t.sequence, t.task_id)).task_id

    def _on_nonce(self, nonce: int) -> None:
        candidate = self._candidate
        if candidate is None:
            return
        kb = dataclasses.replace(candidate, nonce=nonce).signed_by(self.identity)
        self._mining_job, self._candidate = None, None
        if not meets_target(kb.hash, self.params.target):
            self._record("bad_nonce", nonce=nonce)
            return
        self._accept_key_block(kb)
        self._emit(Broadcast(kb, self.params.key_block_size_mb))
        self._record(
            "key_block_mined",
            block=kb.hash.hex(),
            height=kb.height,
            parent=kb.prehash.hex(),
            metric_best=kb.metric_best,
        )

    def _stop_mining(self) -> None:
        if self._mining_job is not None:
            self._jobs.pop(self._mining_job, None)
            self._emit(CancelJob(self._mining_job))
        self._mining_job, self._candidate = None, None
