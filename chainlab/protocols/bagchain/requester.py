"""The BagChain requester: publishes tasks and releases D_V and D_E on schedule after each Key Block."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from chainlab.ledger.chain import ChainEntry, ChainIndex
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import meets_target
from chainlab.protocols.bagchain import persist, rules
from chainlab.protocols.bagchain.messages import (
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    MiniBlock,
    Task,
)
from chainlab.protocols.bagchain.params import BagChainParams
from chainlab.protocols.bagchain.reasons import Reason, Rejected
from chainlab.protocols.bagchain.timers import ReleaseDataset
from chainlab.protocols.base import Answer, DataGrant, DataRequest, NodeStatus, RecordValue, Timer
from chainlab.protocols.effects import Broadcast, Effect, JobResult, Persist, Record, StartTimer
from chainlab.protocols.spec import ModelSpec


@dataclass(frozen=True)
class TaskResult:
    """A finished task as the requester's chain records it."""

    task_id: bytes
    height: int
    key_block: bytes
    winning_ensemble: bytes | None
    metric_best: float


class Requester:
    """Publishes tasks, follows Key Blocks as a light client (signature, PoW, linkage) and releases datasets.

    The paper assumes requesters are honest and lack motivation to disrupt (section II-A); the requester
    therefore does not re-run the miners' ML checks and relies on the full nodes for them.
    """

    role: ClassVar[str] = "requester"

    def __init__(self, identity: Identity, params: BagChainParams, genesis: KeyBlock, tasks: Sequence[Task]) -> None:
        self.identity = identity
        self.params = params
        self.tasks = {t.task_id: t for t in tasks}
        self.chain = ChainIndex(ChainEntry(genesis.hash, b"", 0, 0.0))
        self.key_blocks: dict[bytes, KeyBlock] = {genesis.hash: genesis}
        self.released: dict[tuple[int, DatasetKind], DatasetRelease] = {}
        # Kept by hash so the winning ensemble's base models can be collected once a task is done.
        self.ensembles: dict[bytes, EnsembleBlock] = {}
        self.miniblocks: dict[bytes, MiniBlock] = {}
        self._scheduled: set[int] = set()
        self._finished: set[bytes] = set()  # tasks already reported done
        self._orphans: dict[bytes, list[KeyBlock]] = {}
        self._out: list[Effect] = []
        self.persisting = True  # see Restorable.persisting

    @property
    def node_id(self) -> bytes:
        """This node's ID."""
        return self.identity.node_id

    def start(self, now: int) -> list[Effect]:
        """Publish every task, then schedule the releases for the height after its tip (a restored requester: only
        those it has not made yet, each a full phase from now, as the wait already spent was lost)."""
        for task in self.tasks.values():
            self._out.append(Broadcast(task, self.params.small_message_size_mb))
        self._schedule(self.key_blocks[self.chain.tip.block_hash])
        return self._flush()

    def restore(self, records: Iterable[Persist]) -> None:
        """Load its tasks taken at run time, its releases, the Key Blocks it followed and its tasks' blocks."""
        for record in records:
            if not persist.is_block(record):
                continue
            block = persist.read_block(record)
            if isinstance(block, Task):
                self.tasks.setdefault(block.task_id, block)
            elif isinstance(block, DatasetRelease):
                self.released[(block.height, block.kind)] = block
            elif isinstance(block, KeyBlock):
                self._on_key_block(block)
            elif isinstance(block, EnsembleBlock):
                self.ensembles.setdefault(block.hash, block)
            else:
                self.miniblocks.setdefault(block.hash, block)
        self._scheduled.clear()  # timers died with the process: start() schedules what is still due
        self._out.clear()  # restoring announces nothing: these records were acted on before

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """Follow Key Blocks, and keep Ensemble Blocks and MiniBlocks of its own tasks by hash."""
        if isinstance(message, KeyBlock):
            self._on_key_block(message)
        elif isinstance(message, EnsembleBlock | MiniBlock) and message.task_id in self.tasks:
            store: dict[bytes, Any] = self.ensembles if isinstance(message, EnsembleBlock) else self.miniblocks
            held = store.get(message.hash)
            # Checked even when the hash is known: the hash leaves the signature out, so a re-signed copy shares it.
            if held is not None and held.signature == message.signature:
                return []
            if not message.signature_valid(message.miner_key):
                self._reject(type(message).__name__, message.hash, Reason.BAD_SIGNATURE, "not signed by its author")
            elif held is None:
                store[message.hash] = message
                self._persist(message)
        return self._flush()

    def new_task(
        self,
        commitments: tuple[bytes, bytes, bytes],
        train: ModelSpec,
        aggregate: str,
        metric: str,
        metric_min: float,
        fee: int,
    ) -> Task:
        """A task over (D_T, D_V, D_E) commitments, signed by this requester with its next sequence number."""
        train_c, validation_c, test_c = commitments
        sequence = max((t.sequence for t in self.tasks.values()), default=-1) + 1
        return Task(
            train_commitment=train_c,
            validation_commitment=validation_c,
            test_commitment=test_c,
            train=train,
            aggregate=aggregate,
            metric=metric,
            metric_min=metric_min,
            fee=fee,
            requester_key=self.identity.public_key,
            sequence=sequence,
        ).signed_by(self.identity)

    def submit(self, task: Task, now: int) -> list[Effect]:
        """Take a task at run time and publish it, as every node will check it; Rejected names what is wrong.

        Its terms must be valid and the balance this requester's chain shows, less the fees still owed for its
        unfinished tasks, must cover the fee. Submitting a task already taken is a no-op.
        """
        if task.task_id in self.tasks:
            return []
        if task.requester_key != self.identity.public_key or not task.signature_valid(task.requester_key):
            raise Rejected(Reason.BAD_SIGNATURE, "a requester submits only tasks it signed")
        rules.check_task_terms(task, self.params)
        rules.check_funds(task, self._best_chain(), self.tasks)
        self.tasks[task.task_id] = task
        self._persist(task)
        self._out.append(Broadcast(task, self.params.small_message_size_mb))
        self._out.append(Record("task_submitted", {"task": task.task_id.hex(), "fee": task.fee}))
        # The queue may already name it (a Key Block that arrived first): schedule its releases then.
        self._schedule(self.key_blocks[self.chain.tip.block_hash])
        return self._flush()

    def balance(self) -> int:
        """This requester's balance along its chain, less the fees its unfinished tasks still owe."""
        chain = self._best_chain()
        finished = {kb.task_id for kb in chain}
        owed = sum(t.fee for t in self.tasks.values() if t.task_id not in finished)
        return rules.balances(chain, self.tasks).get(self.node_id, 0) - owed

    def _best_chain(self) -> list[KeyBlock]:
        return [self.key_blocks[e.block_hash] for e in self.chain.main_chain()]

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """The requester starts no jobs."""
        return []

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """Grant a DataRequest for a dataset it may serve now (see serve_dataset)."""
        if isinstance(request, DataRequest) and self.serve_dataset(request.commitment):
            return DataGrant(request.commitment)
        return None

    def status(self) -> NodeStatus:
        """Height and tip of the chain it follows as a light client (its tip does not vote on agreement); done
        once every task it has taken is finished on that chain."""
        tip = self.chain.tip
        done = {r.task_id for r in self.results()} >= set(self.tasks)
        return NodeStatus(self.role, tip.height, tip.block_hash, votes=False, done=done)

    def _on_key_block(self, kb: KeyBlock) -> None:
        held = self.key_blocks.get(kb.hash)
        if held is not None and held.signature == kb.signature:
            return
        reason = (
            Reason.BAD_SIGNATURE
            if not kb.miner_key or not kb.signature_valid(kb.miner_key)
            else Reason.BAD_POW
            if not meets_target(kb.hash, self.params.target)
            else None
        )
        if reason is not None:
            self._reject("KeyBlock", kb.hash, reason)
            return
        if held is not None:
            return
        parent = self.key_blocks.get(kb.prehash)
        if parent is None:
            if any(o.hash == kb.hash for o in self._orphans.get(kb.prehash, ())):
                return
            # An orphan waits for its parent in memory; a peer must not be able to fill it without bound.
            if sum(len(o) for o in self._orphans.values()) >= self.params.max_pending_blocks:
                self._reject("KeyBlock", kb.hash, Reason.TOO_MANY_PENDING, "too many Key Blocks wait for a parent")
                return
            self._orphans.setdefault(kb.prehash, []).append(kb)
            return
        if kb.height != parent.height + 1:
            return
        self.key_blocks[kb.hash] = kb
        self.chain.add(ChainEntry(kb.hash, kb.prehash, kb.height, kb.metric_best))
        self._persist(kb)
        self._schedule(kb)
        for result in self.results():
            if result.task_id not in self._finished:
                self._finished.add(result.task_id)
                done: dict[str, RecordValue] = {"task": result.task_id.hex(), "height": result.height}
                done["metric_best"] = result.metric_best
                self._out.append(Record("task_done", done))
        for child in self._orphans.pop(kb.hash, []):
            self._on_key_block(child)

    def _schedule(self, kb: KeyBlock) -> None:
        """Phase I starts with KB_{h-1}: D_V follows after phase1_rounds, D_E phase2_rounds later."""
        height = kb.height + 1
        if height in self._scheduled or not kb.task_queue or kb.task_queue[0] not in self.tasks:
            return
        self._scheduled.add(height)
        if (height, DatasetKind.TEST) in self.released:
            return
        if (height, DatasetKind.VALIDATION) in self.released:
            timer = ReleaseDataset(height, DatasetKind.TEST, kb.task_queue[0])
            self._out.append(StartTimer(timer, self.params.phase2_rounds))
            return
        timer = ReleaseDataset(height, DatasetKind.VALIDATION, kb.task_queue[0])
        self._out.append(StartTimer(timer, self.params.phase1_rounds))

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """Release the dataset the timer names."""
        if not isinstance(timer, ReleaseDataset):
            return []
        height, kind, task = timer.height, timer.kind, self.tasks[timer.task_id]
        dataset = task.validation_commitment if kind is DatasetKind.VALIDATION else task.test_commitment
        if (height, kind) in self.released:
            return []
        release = DatasetRelease(height, kind, now, task.task_id, dataset).signed_by(self.identity)
        self.released[(height, kind)] = release
        self._persist(release)
        self._out.append(Broadcast(release, self.params.small_message_size_mb))
        self._out.append(Record("release", {"kind": kind.name.lower(), "height": height}))
        if kind is DatasetKind.VALIDATION:
            self._out.append(
                StartTimer(ReleaseDataset(height, DatasetKind.TEST, task.task_id), self.params.phase2_rounds)
            )
        return self._flush()

    def serve_dataset(self, commitment: bytes) -> bool:
        """D_T is public from the start; D_V and D_E only once released."""
        if any(t.train_commitment == commitment for t in self.tasks.values()):
            return True
        return any(r.dataset == commitment for r in self.released.values())

    def winning_models(self, result: TaskResult) -> list[MiniBlock] | None:
        """The MiniBlocks of a finished task's winning ensemble, or None while any of them is unseen."""
        ensemble = self.ensembles.get(result.winning_ensemble) if result.winning_ensemble else None
        if ensemble is None:
            return None
        members = [self.miniblocks.get(h) for h in ensemble.miniblocks]
        return None if any(m is None for m in members) else [m for m in members if m is not None]

    def release_of(self, height: int, kind: DatasetKind) -> DatasetRelease | None:
        """The dataset release this requester signed for a height, if any."""
        return self.released.get((height, kind))

    def results(self) -> list[TaskResult]:
        """The tasks finished on the requester's best chain, by height."""
        out = []
        for entry in self.chain.main_chain()[1:]:
            kb = self.key_blocks[entry.block_hash]
            if kb.task_id in self.tasks:
                winner = kb.ranking[0].ensemble_block if kb.ranking else None
                out.append(TaskResult(kb.task_id, kb.height, kb.hash, winner, kb.metric_best))
        return out

    def _reject(self, kind: str, block_hash: bytes, reason: Reason, detail: str = "") -> None:
        data: dict[str, RecordValue] = {"kind": kind, "reason": str(reason), "block": block_hash.hex()}
        if detail:
            data["detail"] = detail
        self._out.append(Record("rejected", data))

    def _persist(self, block: persist.Block) -> None:
        """Emit the block's Persist record unless the driver keeps none (see Restorable.persisting)."""
        if self.persisting:
            self._out.append(persist.of_block(block))

    def _flush(self) -> list[Effect]:
        out, self._out = self._out, []
        return out
